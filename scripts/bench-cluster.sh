#!/usr/bin/env bash
# Issue 16's cluster figures (crates/vouch-cli/benches/cluster.rs): starts a real PostgreSQL and
# an S3-compatible server (tests/services), runs the bench, stops them. Arguments go to the bench.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vouch/target}"
ORT_DYLIB_PATH="$(scripts/setup-ort.sh | tail -1)"
export ORT_DYLIB_PATH
eval "$(tests/services/postgres.sh start)"
eval "$(tests/services/s3.sh start)"
export VOUCH_TEST_POSTGRES VOUCH_TEST_POSTGRES_DIR VOUCH_TEST_S3_ENDPOINT
trap 'tests/services/s3.sh stop "$VOUCH_TEST_S3_DIR"; tests/services/postgres.sh stop "$VOUCH_TEST_POSTGRES_DIR"' EXIT
cargo bench -p vouch --bench cluster -- "$@"
