#!/usr/bin/env bash
# Fuzzes every parser that takes outside bytes (docs/fuzzing.md): builds the targets in fuzz/
# (their own workspace, nightly, AddressSanitizer) and runs each for a bounded time, starting
# from the committed corpus (fuzz/corpus/<target>) plus what earlier runs on this machine found
# (kept beside the build, never in the repository). Exits non-zero if any target crashes, fails
# an invariant, leaks, times out or runs out of memory; prints one summary line per target.
#
#   bash scripts/fuzz.sh                 every target, VOUCH_FUZZ_SECS (default 20) seconds each
#   bash scripts/fuzz.sh x402 log_note   only these targets
#
# Environment: VOUCH_FUZZ_SECS (seconds per target), VOUCH_FUZZ_TOOLCHAIN (default nightly),
# CARGO_TARGET_DIR (the fuzz build goes to "$CARGO_TARGET_DIR-fuzz", default
# ~/.cache/vouch/target-fuzz), CARGO_BUILD_JOBS (default 2).
set -euo pipefail

cd "$(dirname "$0")/.."
CARGO_FUZZ_VERSION=0.13.2
TOOLCHAIN=${VOUCH_FUZZ_TOOLCHAIN:-nightly}
SECS=${VOUCH_FUZZ_SECS:-20}
RSS_MB=2048
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vouch/target}-fuzz"
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
TRIPLE=$(rustc -vV | sed -n 's/^host: //p')
BIN_DIR="$CARGO_TARGET_DIR/$TRIPLE/release"
WORK_CORPUS="$CARGO_TARGET_DIR/corpus"
ARTIFACTS="$CARGO_TARGET_DIR/artifacts"

# Longest input per target: the largest real seed with room to grow, so seeds are not cut.
max_len() {
	case "$1" in
	onnx_tract | onnx_zk) echo 262144 ;;
	zk_proof) echo 131072 ;;
	tee_envelope | verify_bundle | receipt_bundle) echo 65536 ;;
	*) echo 16384 ;;
	esac
}

if ! rustup run "$TOOLCHAIN" rustc --version >/dev/null 2>&1; then
	echo "fuzz: the $TOOLCHAIN toolchain is missing (rustup toolchain install $TOOLCHAIN)" >&2
	exit 1
fi
if [ "$(cargo fuzz --version 2>/dev/null || true)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
	echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION"
	cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

all_targets=$(cargo "+$TOOLCHAIN" fuzz list)
targets=${*:-$all_targets}
for t in $targets; do
	grep -qx "$t" <<<"$all_targets" || { echo "fuzz: no target $t (have: $(echo $all_targets))" >&2; exit 2; }
done

start=$(date +%s)
# Release code with debug assertions and overflow checks, AddressSanitizer (cargo-fuzz's default).
cargo "+$TOOLCHAIN" fuzz build -O --debug-assertions
echo "fuzz: built in $(($(date +%s) - start)) s"

failed=()
for t in $targets; do
	mkdir -p "$WORK_CORPUS/$t" "$ARTIFACTS/$t"
	log="$ARTIFACTS/$t/last-run.log"
	# New inputs go to the first directory (outside the repository); the committed corpus is read.
	set +e
	ASAN_OPTIONS="detect_odr_violation=0:${ASAN_OPTIONS:-}" "$BIN_DIR/$t" \
		"$WORK_CORPUS/$t" "fuzz/corpus/$t" \
		-max_total_time="$SECS" -rss_limit_mb="$RSS_MB" -malloc_limit_mb="$RSS_MB" \
		-max_len="$(max_len "$t")" -timeout=60 -print_final_stats=1 \
		-artifact_prefix="$ARTIFACTS/$t/" >"$log" 2>&1
	rc=$?
	set -e
	# The log can hold raw input bytes: grep reads it as text (-a).
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
	cov=$(grep -aEo 'cov: [0-9]+' "$log" | tail -1 | grep -Eo '[0-9]+' || true)
	corpus=$(find "$WORK_CORPUS/$t" "fuzz/corpus/$t" -type f 2>/dev/null | wc -l)
	if [ "$rc" -eq 0 ]; then
		echo "fuzz $t: ok, ${execs:-?} runs in ${SECS} s, coverage ${cov:-?}, corpus $corpus, peak ${rss:-?} MB"
	else
		failed+=("$t")
		echo "fuzz $t: FAILED (exit $rc) after ${execs:-?} runs; log $log; input:" \
			"$(grep -aEo "$ARTIFACTS/$t/[^ ]+" "$log" | grep -v last-run | head -1)"
		grep -aE 'panicked at|ERROR: (libFuzzer|AddressSanitizer)|SUMMARY' "$log" | head -5 | sed 's/^/    /'
	fi
done

echo "fuzz: $(wc -w <<<"$targets") targets in $(($(date +%s) - start)) s"
if [ "${#failed[@]}" -gt 0 ]; then
	echo "fuzz: FAILED: ${failed[*]} (reproduce: $BIN_DIR/<target> <input>)" >&2
	exit 1
fi
