#!/usr/bin/env python3
"""Independent peer for Vouch's payment verifier: the official x402 Python SDK signs a payment.

Reads a 402 answer from stdin as JSON, {"header": <PAYMENT-REQUIRED value or null>,
"body": <402 JSON body or null>}, lets the SDK's own client (x402ClientSync with the exact EVM
scheme and an eth_account key) choose a requirement and sign it, and prints
{"header_name", "header", "address", "version"} for the Rust test to verify.

With VOUCH_X402_SCHEME=upto the SDK's upto scheme (UptoEvmClientScheme, Permit2) is
registered instead of exact. A fresh key is generated unless VOUCH_PAYER_KEY (0x + 64 hex) is set. The SDK's default spend
controls stay on: Vouch's default asset (Base Sepolia USDC) must pass them as offered.

Needs: pip install "x402[evm]"  (exit code 3 with a message when it is missing).
"""

import json
import os
import sys

try:
    from eth_account import Account
    from x402 import x402ClientSync
    from x402.http.utils import decode_payment_required_header, encode_payment_signature_header
    from x402.mechanisms.evm.exact import register_exact_evm_client
    from x402.mechanisms.evm.signers import EthAccountSigner
    from x402.mechanisms.evm.upto import UptoEvmClientScheme
    from x402.schemas.v1 import PaymentRequiredV1
except ImportError as e:  # pragma: no cover - environment check
    print(f"x402 SDK not installed ({e}); run: pip install 'x402[evm]'", file=sys.stderr)
    sys.exit(3)


def main() -> None:
    request = json.load(sys.stdin)
    if request.get("header"):
        payment_required = decode_payment_required_header(request["header"])
    else:
        payment_required = PaymentRequiredV1.model_validate(request["body"])

    key = os.environ.get("VOUCH_PAYER_KEY")
    account = Account.from_key(key) if key else Account.create()
    client = x402ClientSync()
    if os.environ.get("VOUCH_X402_SCHEME", "exact") == "upto":
        client.register("eip155:*", UptoEvmClientScheme(EthAccountSigner(account)))
    else:
        register_exact_evm_client(client, EthAccountSigner(account))

    payload = client.create_payment_payload(payment_required)
    version = payload.x402_version
    json.dump(
        {
            "header_name": "PAYMENT-SIGNATURE" if version == 2 else "X-PAYMENT",
            "header": encode_payment_signature_header(payload),
            "address": account.address,
            "version": version,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
