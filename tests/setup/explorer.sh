#!/usr/bin/env bash
# The explorer's and the TypeScript verifier's npm packages (exact versions from their lock
# files): clients/ts (@noble/*, esbuild, typescript) and web/explorer (esbuild, typescript,
# playwright — which drives Debian's chromium from tests/setup/tee.sh; no browser download).
# Idempotent: a folder is installed again only when its lock file changed.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
for dir in clients/ts web/explorer; do
  [ -f "$dir/package-lock.json" ] || continue
  stamp="$dir/node_modules/.vouch-lock-sha256"
  want="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error >&2
    echo "$want" > "$stamp"
  fi
done
