#!/usr/bin/env bash
# Provide the ONNX Runtime shared library (libonnxruntime.so) for Vouch without
# downloading anything from outside PyPI.
#
#   export ORT_DYLIB_PATH=$(scripts/setup-ort.sh | tail -1)
#
# What it does (idempotent; a second run only verifies and prints the path):
#   1. creates/uses a Python venv (default ${VOUCH_CACHE:-$HOME/.cache/vouch}/venv)
#      and pip-installs numpy, onnx and onnxruntime==1.32.0 into it (used by the
#      tests, the model generator and the benchmarks);
#   2. `pip download --no-deps onnxruntime==1.32.0` (the manylinux_2_28 x86_64
#      cp311 wheel), checks the wheel's SHA-256 against the value pinned below
#      and FAILS if it differs;
#   3. extracts onnxruntime/capi/libonnxruntime.so.1.32.0 from the wheel to
#      ${VOUCH_CACHE:-$HOME/.cache/vouch}/ort/libonnxruntime.so, checks its
#      SHA-256 too, and prints its absolute path as the LAST line of stdout.
# All progress messages go to stderr.
#
# Environment:
#   VOUCH_CACHE      cache root (default $HOME/.cache/vouch)
#   VOUCH_VENV       venv path (default $VOUCH_CACHE/venv)
#   PYTHON           interpreter used to create the venv (default python3)
#   VOUCH_SKIP_VENV  if 1, don't create/populate the venv; only provide the .so
#                    (then pip from $PYTHON is used for the download)
set -euo pipefail

ORT_VERSION=1.32.0
ORT_WHEEL=onnxruntime-1.32.0-cp311-cp311-manylinux_2_28_x86_64.whl
ORT_WHEEL_SHA256=5a34fc4dfeb5a7b4a74c95dcba1e773d722abda720b474edf1b0c419dc6d163d
ORT_SO_MEMBER=onnxruntime/capi/libonnxruntime.so.1.32.0
ORT_SO_SHA256=6c1585d1bbf45b0712ea4a21b705c5fcb4ba04ff2e30f1fbf81a49faf658638f
# Python packages for tests/benchmarks/model generation.
PY_PKGS=(numpy==2.4.6 onnx==1.23.2 "onnxruntime==${ORT_VERSION}")

CACHE="${VOUCH_CACHE:-$HOME/.cache/vouch}"
mkdir -p "$CACHE"
CACHE="$(cd "$CACHE" && pwd -P)"   # absolute, so the printed path is absolute
VENV="${VOUCH_VENV:-$CACHE/venv}"
ORT_DIR="$CACHE/ort"
SO="$ORT_DIR/libonnxruntime.so"

log() { echo "setup-ort: $*" >&2; }
die() { echo "setup-ort: ERROR: $*" >&2; exit 1; }

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

case "$(uname -s)/$(uname -m)" in
  Linux/x86_64) ;;
  *) die "only Linux x86_64 is supported (pinned wheel is manylinux_2_28_x86_64), got $(uname -s)/$(uname -m)" ;;
esac

# ---------------------------------------------------------------- 1. venv
PY="${PYTHON:-python3}"
if [[ "${VOUCH_SKIP_VENV:-0}" != "1" ]]; then
  if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating venv $VENV"
    mkdir -p "$(dirname "$VENV")"
    "$PY" -m venv "$VENV" >&2 || die "could not create venv at $VENV with $PY"
  fi
  PY="$VENV/bin/python"
  if ! "$PY" - "$ORT_VERSION" >/dev/null 2>&1 <<'EOF'
import sys
import numpy, onnx, onnxruntime
sys.exit(0 if onnxruntime.__version__ == sys.argv[1] else 1)
EOF
  then
    log "installing ${PY_PKGS[*]} into $VENV"
    "$PY" -m pip install --quiet --disable-pip-version-check "${PY_PKGS[@]}" >&2 \
      || die "pip install into $VENV failed"
  fi
fi

# ---------------------------------------------------------------- 2/3. the .so
if [[ -f "$SO" && "$(sha256_of "$SO")" == "$ORT_SO_SHA256" ]]; then
  log "already present: $SO"
  echo "$SO"
  exit 0
fi
[[ -e "$SO" ]] && log "existing $SO has the wrong hash; re-extracting"

mkdir -p "$ORT_DIR"
TMP="$(mktemp -d "$ORT_DIR/.tmp.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

log "downloading $ORT_WHEEL from PyPI"
# Explicit platform/ABI flags so that the pinned wheel is chosen whatever the
# local interpreter version is; the shared library inside is Python-independent.
"$PY" -m pip download --quiet --disable-pip-version-check --no-deps \
  --only-binary=:all: --implementation cp --python-version 311 --abi cp311 \
  --platform manylinux_2_28_x86_64 \
  -d "$TMP" "onnxruntime==${ORT_VERSION}" >&2 || die "pip download onnxruntime==${ORT_VERSION} failed"

WHEEL_PATH="$TMP/$ORT_WHEEL"
[[ -f "$WHEEL_PATH" ]] || die "expected wheel $ORT_WHEEL, pip downloaded: $(ls "$TMP")"

got="$(sha256_of "$WHEEL_PATH")"
if [[ "$got" != "$ORT_WHEEL_SHA256" ]]; then
  die "SHA-256 MISMATCH for $ORT_WHEEL
    expected $ORT_WHEEL_SHA256
    got      $got
  refusing to use this wheel"
fi
log "wheel sha256 OK ($got)"

"$PY" - "$WHEEL_PATH" "$ORT_SO_MEMBER" "$TMP/libonnxruntime.so" <<'EOF' || die "extracting $ORT_SO_MEMBER failed"
import shutil, sys, zipfile
wheel, member, dest = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(dest, "wb") as dst:
    shutil.copyfileobj(src, dst)
EOF

got="$(sha256_of "$TMP/libonnxruntime.so")"
[[ "$got" == "$ORT_SO_SHA256" ]] || die "SHA-256 mismatch for extracted $ORT_SO_MEMBER: expected $ORT_SO_SHA256, got $got"
chmod 0755 "$TMP/libonnxruntime.so"
mv -f "$TMP/libonnxruntime.so" "$SO"
log "installed $SO"
echo "$SO"
