#!/usr/bin/env bash
# The official OpenAI SDK that the chat tests (crates/vouch-cli/tests/chat.rs) drive against a
# live node with only the base URL changed. Pinned; idempotent.
set -euo pipefail
VENV="${VOUCH_VENV:-${VOUCH_CACHE:-$HOME/.cache/vouch}/venv}"
if ! "$VENV/bin/python" -c 'import importlib.metadata as m, sys; sys.exit(m.version("openai") != "2.8.1")' 2>/dev/null; then
  "$VENV/bin/python" -m pip install -q "openai==2.8.1" >&2
fi
