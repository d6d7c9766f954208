#!/usr/bin/env node
// The TypeScript verifier from the command line, for differential testing against `vouch verify`.
//
//   node bin/vouch-verify-ts.mjs < cases.jsonl
//     Each input line: {"id": string, "file": <bundle JSON, or its text as a string>,
//     "options": <VerifyOptions as JSON; the model file as base64 in "model_b64", tee.time as an
//     RFC 3339 string>}; or "file_b64" (the file's bytes in base64) instead of "file", for
//     byte-level tamperings that may not be UTF-8. With "full": true, a success line also
//     carries tiers, proven (the checks), not_proven and summary. Each output line, in order: {"id", "ok", "code"} (code null when ok).
//
//   node bin/vouch-verify-ts.mjs FILE [--trust-key K] [--log-key K] [--witness K]...
//       [--witness-threshold N] [--require T[,T]] [--model F] [--inputs F] [--outputs F]
//       [--config F] [--request F] [--allow-simulated] [--tee-evidence F]... [--tee-expect N=HEX]...
//     Prints the `vouch verify --json` report; exit 0 ok, 2 failed, 1 invalid argument.
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { verifyBundleSync, b64decode, parseJson, numberValue } from "../dist/index.js";

// Lines are read with parseJson (integer and float spellings kept, as serde_json reads them);
// the options' own numbers are plain numbers.
function options(o = {}) {
  const out = { ...o };
  if (o.witnessThreshold !== undefined) out.witnessThreshold = numberValue(o.witnessThreshold);
  if (typeof o.model_b64 === "string") {
    out.model = b64decode(o.model_b64) ?? new Uint8Array(Buffer.from(o.model_b64, "base64"));
    delete out.model_b64;
  }
  if (o.tee && typeof o.tee.time === "string") out.tee = { ...o.tee, time: new Date(o.tee.time) };
  return out;
}

async function jsonl() {
  const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
  const out = [];
  const flush = () => {
    if (out.length) process.stdout.write(out.join(""));
    out.length = 0;
  };
  for await (const line of rl) {
    if (!line.trim()) continue;
    let id = null;
    let full = false;
    let v;
    try {
      const c = parseJson(line);
      id = c.id ?? null;
      full = c.full === true;
      const file = typeof c.file_b64 === "string" ? new Uint8Array(Buffer.from(c.file_b64, "base64")) : c.file;
      v = verifyBundleSync(file, options(c.options));
    } catch (e) {
      v = { ok: false, code: "invalid_argument", message: String(e) };
    }
    const result = { id, ok: v.ok, code: v.ok ? null : v.code };
    // "full": true in a case adds what a success reports, to compare with `vouch verify --json`.
    if (full && v.ok) Object.assign(result, { tiers: v.tiers.map((t) => t.tier), proven: v.proven.map((p) => p.check), not_proven: v.not_proven, summary: v.summary });
    out.push(JSON.stringify(result) + "\n");
    if (out.length >= 256) flush();
  }
  flush();
}

function single(argv) {
  const o = { witnessKeys: [], tee: { evidence: [], expect: {} } };
  let file;
  const readJson = (p) => parseJson(readFileSync(p, "utf8"));
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => argv[++i];
    switch (a) {
      case "--trust-key": o.trustKey = val(); break;
      case "--log-key": o.logKey = val(); break;
      case "--witness": case "--witness-key": o.witnessKeys.push(val()); break;
      case "--witness-threshold": o.witnessThreshold = Number(val()); break;
      case "--require": o.require = [...(o.require ?? []), ...val().split(",")]; break;
      case "--model": o.model = new Uint8Array(readFileSync(val())); break;
      case "--inputs": o.inputs = readJson(val()); break;
      case "--outputs": o.outputs = readJson(val()); break;
      case "--config": o.config = readJson(val()); break;
      case "--request": o.request = readFileSync(val(), "utf8"); break;
      case "--allow-simulated": o.tee.allowSimulated = true; break;
      case "--tee-evidence": o.tee.evidence.push(readJson(val())); break;
      case "--tee-expect": { const [n, h] = val().split("="); o.tee.expect[n] = h ?? ""; break; }
      case "--json": break;
      default: file = a;
    }
  }
  if (!file) {
    console.error("usage: vouch-verify-ts FILE [options]  |  vouch-verify-ts < cases.jsonl");
    process.exit(1);
  }
  const v = verifyBundleSync(new Uint8Array(readFileSync(file)), o);
  console.log(JSON.stringify(v, null, 2));
  process.exit(v.ok ? 0 : v.code === "invalid_argument" ? 1 : 2);
}

if (process.argv.length > 2) single(process.argv.slice(2));
else await jsonl();
