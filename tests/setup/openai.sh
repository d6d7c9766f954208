#!/usr/bin/env bash
# The official OpenAI SDKs that the chat tests (crates/vouch-cli/tests/chat.rs) drive against a
# live node with only the base URL changed: PyPI `openai` and npm `openai` (6.49.0, the newest
# whose engines allow this machine's Node 20). Pinned (npm through its lock file); idempotent.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV="${VOUCH_VENV:-${VOUCH_CACHE:-$HOME/.cache/vouch}/venv}"
if ! "$VENV/bin/python" -c 'import importlib.metadata as m, sys; sys.exit(m.version("openai") != "2.8.1")' 2>/dev/null; then
  "$VENV/bin/python" -m pip install -q "openai==2.8.1" >&2
fi
if ! grep -qs '"version": "6.49.0"' tests/interop/llm/js/node_modules/openai/package.json; then
  npm ci --prefix tests/interop/llm/js --no-audit --no-fund --loglevel=error >&2
fi
