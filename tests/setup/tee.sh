#!/usr/bin/env bash
# Installs what the `tee`/status-page tests need: headless Chromium (Debian `chromium`), used by
# crates/vouch-cli/tests/status_page.rs to render /status and take a screenshot.
# Idempotent and quick when already installed: apt-get update runs only when the package is missing.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [[ "$(id -u)" != 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
command -v chromium >/dev/null
