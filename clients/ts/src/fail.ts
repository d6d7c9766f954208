// A verification failure with the Rust verifier's stable code (docs/verify.md) and, where one
// bundle field caused it, that field as a JSON path for the explorer.

export class VerifyFailure extends Error {
  constructor(
    public readonly code: string,
    message: string,
    public readonly field?: string,
  ) {
    super(message);
    this.name = "VerifyFailure";
  }
}

/** The verifier's own input is unusable: `vouch verify` exits 1 with `invalid_argument`. */
export class InvalidArgument extends VerifyFailure {
  constructor(message: string, field?: string) {
    super("invalid_argument", message, field);
  }
}

/** Codes for TEE evidence that is genuine but falls short of policy (`below_policy`). */
export const BELOW_POLICY = new Set([
  "tee_expired",
  "tee_tcb_status",
  "tee_debug_mode",
  "tee_measurement_mismatch",
  "tee_measurement_unknown",
  "tee_platform_not_allowed",
  "tee_simulated_not_allowed",
  "tee_too_old",
]);
