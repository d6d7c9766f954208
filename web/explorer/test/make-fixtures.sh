#!/usr/bin/env bash
# Development fixtures for the explorer test: starts a node from a prebuilt `vouch` binary
# (private data dir), registers models/mlp.onnx as mlp@1, sets a config and a policy, runs
# signed and signed+tee (simulated) inferences with --log-proof, writes the fixture files and
# starts the dev server in front of the node. Prints the env lines for `npm test`.
# Usage: web/explorer/test/make-fixtures.sh [OUT_DIR]   (VOUCH_BIN defaults to /tmp/vouch-bin)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
bin="${VOUCH_BIN:-/tmp/vouch-bin}"
out="${1:-/tmp/explorer-fixtures}"
data="$out/node"
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-/root/.cache/vouch/ort/libonnxruntime.so}"
rm -rf "$out"; mkdir -p "$data"

url_of() { # waits for the first http://127.0.0.1:PORT in a log file
  for _ in $(seq 1 300); do
    u="$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$1" | head -1 || true)"
    [ -n "$u" ] && { echo "$u"; return; }
    sleep 0.1
  done
  echo "no URL in $1" >&2; cat "$1" >&2; exit 1
}
start_node() { # $1: config file
  "$bin" serve --config "$1" --listen 127.0.0.1:0 --data-dir "$data" --tee simulated >"$out/node.log" 2>&1 &
  echo $! >"$out/node.pid"
  url="$(url_of "$out/node.log")"
  for _ in $(seq 1 100); do curl -fsS "$url/health" >/dev/null 2>&1 && return; sleep 0.1; done
}

# First start to learn the log key; then a witness of that log; then the node with it.
: >"$out/empty.toml"
start_node "$out/empty.toml"
log_key="$(curl -fsS "$url/v1/log" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).log_key))')"
kill "$(cat "$out/node.pid")"; while kill -0 "$(cat "$out/node.pid")" 2>/dev/null; do sleep 0.1; done
"$bin" witness --listen 127.0.0.1:0 --dir "$out/witness" --name localhost/explorer-witness --log "$log_key" >"$out/witness.log" 2>&1 &
echo $! >"$out/witness.pid"
witness_url="$(url_of "$out/witness.log")"
witness_key="$(grep -o 'localhost/explorer-witness+[0-9a-f]\{8\}+[A-Za-z0-9+/=]*' "$out/witness.log" | head -1)"
printf '[[log.witnesses]]\nvkey = "%s"\nurl = "%s"\n' "$witness_key" "$witness_url" >"$out/vouch.toml"
start_node "$out/vouch.toml"
export VOUCH_SERVER="$url" VOUCH_DATA_DIR="$data"

"$bin" models add "$repo/models/mlp.onnx" --name mlp --version 1 >"$out/register.txt"
printf '{"system_prompt": "Answer with the class index only.", "temperature": 0}\n' >"$out/config1.json"
printf '{"system_prompt": "Answer with the class index only, please.", "temperature": 0}\n' >"$out/config2.json"
"$bin" models config mlp@1 --set "$out/config1.json" >/dev/null
"$bin" models config mlp@1 --set "$out/config2.json" >/dev/null
"$bin" models policy mlp --min signed >/dev/null

for i in 1 2 3; do
  "$bin" infer mlp@1 --input "$repo/models/mlp.input.json" --tiers signed --log-proof --out "$out/signed$i.bundle.json" >/dev/null
done
"$bin" infer mlp@1 --input "$repo/models/mlp.input.json" --tiers signed,tee --log-proof --out "$out/tee.bundle.json" >/dev/null
# Optional fixture: a zk bundle (the page must say to check it with `vouch verify`).
"$bin" infer mlp@1 --input "$repo/models/mlp.input.json" --tiers signed,zk --wait-proof --out "$out/zk.bundle.json" >/dev/null 2>&1
cp "$out/signed1.bundle.json" "$out/valid.bundle.json"
# A proof comes under the log-signed checkpoint; the witness cosigns it right after. Prove
# again under the latest checkpoint until the proof carries the cosignature.
for f in valid zk; do
  for _ in $(seq 1 50); do
    "$bin" log prove "$out/$f.bundle.json" >/dev/null
    grep -q 'explorer-witness' "$out/$f.bundle.json" && break
    sleep 0.2
  done
done
for f in valid zk; do
  grep -q 'explorer-witness' "$out/$f.bundle.json" || { echo "the $f bundle's proof carries no witness cosignature" >&2; exit 1; }
done

# Tamper: flip one hex digit of receipt.output_digest; the verifier must name that field.
node - "$out" <<'JS'
const fs = require('fs');
const dir = process.argv[2];
const b = JSON.parse(fs.readFileSync(`${dir}/valid.bundle.json`, 'utf8'));
const d = b.receipt.output_digest;
const i = d.length - 1;
b.receipt.output_digest = d.slice(0, i) + (d[i] === '0' ? '1' : '0');
fs.writeFileSync(`${dir}/tampered.bundle.json`, JSON.stringify(b, null, 2));
JS

log="$(curl -fsS "$url/v1/log")"
# The failure code is whatever the Rust verifier says for the tampered bundle.
export TAMPERED_CODE="$("$bin" verify --json "$out/tampered.bundle.json" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).code))' || true)"
node - "$out" "$url" "$log" <<'JS'
const fs = require('fs');
const [dir, url, logJson] = process.argv.slice(2);
const b = JSON.parse(fs.readFileSync(`${dir}/valid.bundle.json`, 'utf8'));
const log = JSON.parse(logJson);
const expected = {
  tampered_field: 'receipt.output_digest',
  tampered_code: process.env.TAMPERED_CODE,
  log_key: log.log_key,
  trust_key: b.receipt.node_key,
  request_id: b.receipt.request_id,
  log_index: b.evidence?.log?.index ?? null,
  model: 'mlp@1',
  witness_keys: log.witnesses,
};
fs.writeFileSync(`${dir}/expected.json`, JSON.stringify(expected, null, 2));
JS

port="${EXPLORER_PORT:-8765}"
VOUCH_NODE="$url" PORT="$port" node "$here/../dev-server.mjs" >"$out/dev-server.log" 2>&1 &
echo $! >"$out/dev-server.pid"
sleep 0.5
echo "VOUCH_NODE=$url"
echo "VOUCH_URL=http://127.0.0.1:$port"
echo "VOUCH_FIXTURES=$out"
echo "stop: kill \$(cat $out/node.pid) \$(cat $out/witness.pid) \$(cat $out/dev-server.pid)"
