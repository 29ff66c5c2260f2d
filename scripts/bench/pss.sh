#!/bin/sh
# pss.sh UNITSYNC WORKDIR: the memory of supervising 10 services (each
# `exec sleep 600`), as PSS (proportional set size: shared pages split
# among the processes that map them) summed over the supervisor's own
# processes, the services left out. Prints:
#   unitsync TOTAL_KB UP_KB WRAPPER_KB   (up, and the median `run` wrapper)
#   s6 TOTAL_KB SVSCAN_KB SUPERVISE_KB   (s6-svscan, the median s6-supervise)
# s6's line is left out without s6-svscan. Part of scripts/bench.sh.
set -eu
us=$1 work=$2
dir="$work/pss"
rm -rf "$dir"
mkdir -p "$dir/up" "$dir/s6"
pss() { awk '/^Pss:/ { print $2 }' "/proc/$1/smaps_rollup"; }
med() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
i=1
while [ "$i" -le 10 ]; do
	after=""
	[ "$i" -gt 1 ] && after="after=s$((i - 1))"
	printf '#!/bin/sh\n# unitsync: %s ready=file:%s/s%s.up\ntouch %s/s%s.up\nexec sleep 600\n' \
		"$after" "$dir" "$i" "$dir" "$i" >"$dir/up/s$i.sh"
	chmod +x "$dir/up/s$i.sh"
	mkdir -p "$dir/s6/s$i"
	printf '#!/bin/sh\nexec sleep 600\n' >"$dir/s6/s$i/run"
	chmod +x "$dir/s6/s$i/run"
	i=$((i + 1))
done

"$us" --socket "$dir/s.sock" -q up --dir "$dir/up" >/dev/null 2>&1 &
up=$!
"$us" --socket "$dir/s.sock" --connect-timeout 10s -q wait s10 --timeout 30s
sleep 1 # let every wrapper settle into its wait
wrappers=$(pgrep -P "$up" | while read -r pid; do pss "$pid"; done)
own=$(pss "$up")
total=$(echo "$wrappers" | awk -v t="$own" '{ t += $1 } END { print t }')
echo "unitsync $total $own $(echo "$wrappers" | med)"
kill -TERM "$up"
wait "$up" || true

if command -v s6-svscan >/dev/null 2>&1; then
	s6-svscan "$dir/s6" >/dev/null 2>&1 &
	scan=$!
	until [ "$(pgrep -c -P "$scan")" -ge 10 ] && [ "$(pgrep -c -x sleep -P "$(pgrep -d, -P "$scan")")" -ge 10 ]; do
		sleep 0.05
	done
	sleep 1
	supervisors=$(pgrep -P "$scan" | while read -r pid; do pss "$pid"; done)
	own=$(pss "$scan")
	total=$(echo "$supervisors" | awk -v t="$own" '{ t += $1 } END { print t }')
	echo "s6 $total $own $(echo "$supervisors" | med)"
	kill -TERM "$scan"
	wait "$scan" 2>/dev/null || true
fi
