#!/bin/sh
# Runs the test suite (the unit tests and the integration tests) many times
# in a row, 20 unless told otherwise, while two busy loops keep two cores
# loaded, and stops at the first failure. A test that waits for time
# instead of for an event fails here sooner or later. Not part of CI: run it
# after changing how a test waits.
#
# Usage: scripts/soak-tests.sh [RUNS]
set -eu
cd "$(dirname "$0")/.."

runs=${1:-20}
case $runs in
'' | *[!0-9]*)
	echo "usage: scripts/soak-tests.sh [RUNS]" >&2
	exit 2
	;;
esac

load=""
tests=""
log=$(mktemp)
stop_load() {
	for pid in $load $tests; do
		kill "$pid" 2>/dev/null || :
	done
	load=""
	tests=""
}
# dash and busybox sh run no EXIT trap on a signal: stop the load on each.
# The tests run in the background, so that a signal is handled at once
# rather than when the run in progress ends; that run's test binary is left
# to finish (killed, it could not stop the servers it started). A
# background job of a script starts with SIGINT and SIGQUIT ignored: the
# tests must not care.
trap 'stop_load; rm -f "$log"' EXIT
trap 'stop_load; exit 130' INT
trap 'stop_load; exit 143' TERM

# Build once, before the load starts; each run then only runs.
echo "soak: building the tests"
cargo test --locked --bins --test it --no-run --quiet

for core in 1 2; do
	sh -c 'while :; do :; done' &
	load="$load $!"
done
echo "soak: $runs runs, two busy loops running (pids$load)"

began=$(date +%s)
run=1
while [ "$run" -le "$runs" ]; do
	start=$(date +%s)
	cargo test --locked --bins --test it >"$log" 2>&1 &
	tests=$!
	if ! wait "$tests"; then
		# The failures and the summary, or everything if there is none.
		sed -n '/^failures:$/,$p' "$log" | grep . || cat "$log"
		echo "soak: run $run of $runs failed after $(($(date +%s) - began))s" >&2
		exit 1
	fi
	tests=""
	echo "soak: run $run of $runs passed ($(($(date +%s) - start))s)"
	run=$((run + 1))
done
echo "soak: $runs runs passed in $(($(date +%s) - began))s"
