#!/usr/bin/env bash
# Issue 14 figures: per-request CPU of POST /v1/infer (MLP, ["signed"], durably logged) and
# requests/s of the node ÷ a minimal axum + ONNX Runtime server without receipts, measured
# side by side with the same wrk command, round after round (crates/vouch-cli/benches/node.rs).
#
#   scripts/bench-node.sh [VOUCH_BINARY ...] [-- --rounds 5 --secs 10 --min-requests 20000]
#
# With no binary, the `vouch` of this checkout's release build. Give two (e.g. a copy of
# target/release/vouch from before a change, then the current one) to compare them: the harness
# prints per-round and median figures and the ratio of each to the first.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "bench-node: wrk missing (apt-get install -y wrk)" >&2; exit 1; }
if [ -z "${ORT_DYLIB_PATH:-}" ]; then
  ORT_DYLIB_PATH="$(scripts/setup-ort.sh | tail -1)"
  export ORT_DYLIB_PATH
fi
bins=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
  bins+=("$(realpath "$1")")
  shift
done
[ "${1:-}" = "--" ] && shift
exec cargo bench -p vouch --bench node -- "$@" "${bins[@]}"
