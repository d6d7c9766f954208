// @vouch/client: an independent TypeScript verifier of Vouch bundles (not the Rust code
// compiled to WebAssembly), browser-safe: Uint8Array, TextEncoder and @noble/* only.
import { sha256 } from "@noble/hashes/sha2.js";
import { hexEncode, utf8Decode } from "./bytes.js";
import { VerifyFailure } from "./fail.js";
import { isObj } from "./serde.js";
import { parseJson } from "./json.js";
import { failureOf, parseBundle, readOptions, verifyReceiptBundle, type Verdict, type VerifyOptions } from "./verify.js";
import { SSE_START, verifyChat } from "./chat.js";

export type { VerifyOptions, Verdict, TierReport } from "./verify.js";
export { canonicalJson } from "./jcs.js";
export { receiptHash } from "./receipt.js";
export { tensorMapDigest } from "./tensor.js";
export { parseSignedNote, verifyCheckpoint, verifyInclusion, verifyConsistency, leafHash, parseTlogProof, type SignedNote, type CheckpointVerified } from "./log.js";
export { bindingReportData, envelopeDigest } from "./tee.js";
export { verifyNitroDocument, AWS_NITRO_ROOT_SHA256 } from "./nitro.js";
export { VerifyFailure } from "./fail.js";
export { VouchClient } from "./client.js";
export { b64decode, b64encode, hexDecode, hexEncode } from "./bytes.js";
export { parseJson, numberValue } from "./json.js";

export function sha256Hex(bytes: Uint8Array): string {
  return hexEncode(sha256(bytes));
}

/**
 * Verifies a receipt bundle, a chat bundle, a `chat.completion` / `text_completion` object
 * (bundle in `vouch`) or a streamed answer's raw SSE text, as `vouch verify --json` does.
 */
export async function verifyBundle(file: unknown, opts: VerifyOptions = {}): Promise<Verdict> {
  return verifyBundleSync(file, opts);
}

/** verifyBundle without the Promise (nothing in verification is asynchronous). */
export function verifyBundleSync(file: unknown, opts: VerifyOptions = {}): Verdict {
  try {
    // A file given as text: an SSE stream, or JSON to parse (as the CLI tells them apart).
    if (typeof file === "string" || file instanceof Uint8Array) {
      // A byte-order mark is kept (and then refused by the JSON parser), as serde_json does.
      const text = typeof file === "string" ? file : utf8Decode(file);
      if (text === null) throw new VerifyFailure("invalid_argument", "not a valid receipt bundle: not UTF-8");
      if (SSE_START.test(text)) return verifyChat(text, opts);
      try {
        file = parseJson(text);
      } catch (e) {
        throw new VerifyFailure("invalid_argument", `not a valid receipt bundle: ${(e as Error).message}`);
      }
    }
    const chatLike = isObj(file) && (file.format === "vouch.chat-bundle.v1" || file.object === "chat.completion" || file.object === "text_completion");
    if (chatLike) return verifyChat(file, opts);
    if (opts.request !== undefined) throw new VerifyFailure("invalid_argument", "--request applies to chat bundles; this is an ONNX receipt bundle");
    // The CLI reads the file, then the options: a file that does not parse is named first.
    const bundle = parseBundle(file);
    return verifyReceiptBundle(bundle, readOptions(opts));
  } catch (e) {
    return failureOf(e);
  }
}
