#!/bin/sh
# waiters.sh UNITSYNC WORKDIR CLIENTS UNITS: the server's cost of CLIENTS
# `unitsync start --poll 200ms` processes waiting, with UNITS other units
# registered, once for a dependency that is registered (pending) and once
# for one nobody registered (issue 19 §2: each used to fetch the whole list
# for its did-you-mean). Prints one line per case:
#   CASE RSS_KIB CPU_SECONDS_PER_SECOND
# Part of scripts/bench.sh; runs alone too (needs socat).
set -eu
us=$1 work=$2 clients=$3 units=$4
export UNITSYNC_SOCKET="$work/waiters.sock"
ticks=$(getconf CLK_TCK)
cpu() { awk -v t="$ticks" '{ sub(/.*\) /, ""); print ($12 + $13) / t }' "/proc/$1/stat"; }
for case in registered unregistered; do
	"$us" serve 2>"$work/waiters.log" &
	spid=$!
	"$us" --connect-timeout 5s -q ping >/dev/null
	dep=gate
	[ "$case" = registered ] || dep=nope
	{
		i=0
		while [ "$i" -lt "$units" ]; do
			echo "{\"op\":\"want\",\"unit\":\"other-unit-with-a-longish-name-$i\"}"
			i=$((i + 1))
		done
		[ "$case" = unregistered ] || echo '{"op":"want","unit":"gate"}'
		i=0
		while [ "$i" -lt "$clients" ]; do
			echo "{\"op\":\"want\",\"unit\":\"w$i\",\"deps\":[\"$dep\"]}"
			i=$((i + 1))
		done
	} | socat -t 30 - "UNIX-CONNECT:$UNITSYNC_SOCKET" >/dev/null
	pids=""
	i=0
	while [ "$i" -lt "$clients" ]; do
		"$us" start "w$i" --poll 200ms --timeout 10m 2>/dev/null &
		pids="$pids $!"
		i=$((i + 1))
	done
	# Until every client is waiting, then 2 s for the first polls to settle.
	n=0
	until [ "$n" -ge "$clients" ]; do
		sleep 0.5
		n=$("$us" list --json | grep -c '"waiting_since": [0-9]' || true)
	done
	sleep 2
	c0=$(cpu "$spid")
	sleep 5
	c1=$(cpu "$spid")
	rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$spid/status")
	echo "$case $rss $(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.3f", (b - a) / 5 }')"
	# shellcheck disable=SC2086
	kill $pids 2>/dev/null || true
	wait $pids 2>/dev/null || true
	kill "$spid"
	wait "$spid" 2>/dev/null || true
done
