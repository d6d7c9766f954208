#!/usr/bin/env bash
# Installs the official x402 clients the payment interop tests drive as independent peers:
# the Python SDK into the project venv, the JS v2 packages (pinned by package-lock.json) with npm.
# Idempotent: skips what is already installed at the pinned version.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV="${VOUCH_VENV:-${VOUCH_CACHE:-$HOME/.cache/vouch}/venv}"
if ! "$VENV/bin/python" -c 'import importlib.metadata as m, sys; import requests; sys.exit(m.version("x402") != "2.25.0")' 2>/dev/null; then
  "$VENV/bin/python" -m pip install -q "x402[evm,requests]==2.25.0" >&2
fi
if [[ ! -d tests/interop/x402/node_modules/@x402/evm ]]; then
  npm ci --prefix tests/interop/x402 --no-audit --no-fund --loglevel=error >&2
fi
