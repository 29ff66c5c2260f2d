#!/bin/sh
# journal.sh UNITSYNC WORKDIR CHANGES: the state file's size, and how long
# a restart takes to replay it, after CHANGES accepted changes of 50 units
# (issue 19 §3: it is compacted past max(1 MiB, 4x its snapshot)). Prints
#   CHANGES BYTES REPLAY_SECONDS
# Part of scripts/bench.sh; runs alone too (needs socat).
set -eu
us=$1 work=$2 changes=$3
export UNITSYNC_SOCKET="$work/journal.sock"
state="$work/journal.state"
rm -f "$state"
"$us" serve --state "$state" 2>"$work/journal.log" &
spid=$!
"$us" --connect-timeout 5s -q ping >/dev/null
# Failing a unit again is a change too: every line is journaled.
awk -v n="$changes" 'BEGIN { for (i = 0; i < n; i++) printf "{\"op\":\"fail\",\"unit\":\"u%d\",\"reason\":\"r%d\"}\n", i % 50, i }' |
	socat -t 60 - "UNIX-CONNECT:$UNITSYNC_SOCKET" | tail -n 1 | grep -q '"ok":true'
kill -KILL "$spid"
wait "$spid" 2>/dev/null || true
bytes=$(wc -c <"$state")
began=$(date +%s.%N)
"$us" serve --state "$state" 2>>"$work/journal.log" &
spid=$!
"$us" --connect-timeout 30s -q ping >/dev/null
ended=$(date +%s.%N)
kill "$spid"
wait "$spid" 2>/dev/null || true
echo "$changes $bytes $(awk -v a="$began" -v b="$ended" 'BEGIN { printf "%.3f", b - a }')"
