#!/usr/bin/env bash
# Installs what the OpenAPI test (crates/vouch-cli/tests/openapi.rs) drives as independent
# checkers of /openapi.json: openapi-spec-validator, and openapi-python-client, whose generated
# client then talks to a live node. Pinned; idempotent (skips what is installed at the pin).
set -euo pipefail
VENV="${VOUCH_VENV:-${VOUCH_CACHE:-$HOME/.cache/vouch}/venv}"
if ! "$VENV/bin/python" -c 'import importlib.metadata as m, sys; sys.exit(not (m.version("openapi-spec-validator") == "0.9.0" and m.version("openapi-python-client") == "0.29.1"))' 2>/dev/null; then
  "$VENV/bin/python" -m pip install -q "openapi-spec-validator==0.9.0" "openapi-python-client==0.29.1" >&2
fi
