#!/usr/bin/env bash
# Run a Vouch node on 127.0.0.1:8080 with SQLite + blobs under ./vouch-data. Fetches ONNX
# Runtime from PyPI (checksum-checked) the first time; without it the node serves with tract.
set -euo pipefail
cd "$(dirname "$0")/.."
if ORT="$(scripts/setup-ort.sh 2>/dev/null | tail -1)"; then
  export ORT_DYLIB_PATH="$ORT"
else
  echo "serve: ONNX Runtime unavailable; the node will use tract" >&2
fi
exec cargo run --release -p vouch -- serve "$@"
