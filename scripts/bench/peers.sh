#!/bin/sh
# peers.sh UNITSYNC LOADGEN WORKDIR ROUNDS: unitsync side by side with the
# event-driven inits and the status quo (issue 22), each measure
# interleaved round by round. Part of scripts/bench.sh, which installs s6,
# runit, wait-for-it and netcat; s6-rc and dinit are measured only when
# they are installed (Debian ships neither). Writes into WORKDIR:
#   peers.ready, peers.chain, peers.stop: "round name microseconds" lines;
#   peers.versions: "name version" lines; peers.notes: one note a line;
#   peers.wait: "requests_first_2s requests_per_s_after_2s" per client;
#   peers.many: "clients window_s cpu_s_total cpu_s_per_s_steady launch_s".
set -eu
us=$1 load=$2 work=$3 rounds=$4
p="$work/peers"
rm -rf "$p"
mkdir -p "$p"
have() { command -v "$1" >/dev/null 2>&1; }
: >"$p/../peers.notes"
note() { echo "$*" >>"$work/peers.notes"; }
{
	echo "unitsync $("$us" --version 2>/dev/null | awk '{ print $NF }')"
	echo "s6 $(dpkg-query -W -f '${Version}' s6 2>/dev/null || echo '?')"
	echo "runit $(dpkg-query -W -f '${Version}' runit 2>/dev/null || echo '?')"
	echo "wait-for-it $(dpkg-query -W -f '${Version}' wait-for-it 2>/dev/null || echo '?')"
	# s6-rc prints no version; its build (build-peers.sh) installs its header.
	have s6-rc && echo "s6-rc $(sed -n 's/^#define S6RC_VERSION "\(.*\)"/\1/p' \
		"$(dirname "$(command -v s6-rc)")/../include/s6-rc/config.h" 2>/dev/null || echo '?')"
	have dinit && echo "dinit $(dinit --version 2>&1 | sed -n '1s/^Dinit version \(.*\)\.$/\1/p')"
} >"$work/peers.versions"
have s6-rc || note "s6-rc is not installed (Debian does not ship it; scripts/bench/build-peers.sh builds it from a source named by S6RC_SRC): its rows are left out."
have dinit || note "dinit is not installed (Debian 12 does not ship it; scripts/bench/build-peers.sh builds it from a source named by DINIT_SRC): its rows are left out."

# ---------------------------------------------- ready (fd) -> dependent
# Every contender's service is the load generator's `notify` (a newline on
# fd 3 once the harness pokes it), its dependent `poke` (one byte to the
# harness); readiness comes 100 to 600 ms into the dependent's wait.
export UNITSYNC_SOCKET="$p/us.sock"
"$us" serve 2>"$p/us.log" &
upid=$!
"$us" --connect-timeout 5s -q ping >/dev/null
mkdir -p "$p/s6/svc"
cat >"$p/s6/svc/run" <<EOF2
#!/bin/sh
exec "$load" notify "\$(cat trigger-path)"
EOF2
chmod +x "$p/s6/svc/run"
echo 3 >"$p/s6/svc/notification-fd"
touch "$p/s6/svc/down"
s6-svscan "$p/s6" >/dev/null 2>&1 &
s6pid=$!
until [ -p "$p/s6/svc/supervise/control" ]; do sleep 0.05; done
ours='@US@ -q run "svc$ROUND" --ready fd:3 -- @LOAD@ notify "$TRIGGER" &
s=$!
@US@ -q run "dep$ROUND" --after "svc$ROUND" -- @LOAD@ poke "$STAMP"
kill "$s"; wait "$s" || true'
s6='echo "$TRIGGER" >"@S6@/svc/trigger-path"
s6-svc -u "@S6@/svc"
s6-svwait -U "@S6@/svc"
@LOAD@ poke "$STAMP"
s6-svc -d "@S6@/svc"
s6-svwait -D "@S6@/svc"'
wfi='wait-for-it -q -t 0 "127.0.0.1:$PORT" -- @LOAD@ poke "$STAMP"'
loop='while [ ! -e "$TRIGGER" ]; do sleep 1; done; @LOAD@ poke "$STAMP"'
# The contenders' scripts name the binaries by placeholder.
q() { printf '%s' "$1" | sed "s|@US@|'$us'|g; s|@LOAD@|'$load'|g; s|@S6@|$p/s6|g"; }
"$load" peer-ready "$rounds" "$p" \
	unitsync fifo "$(q "$ours")" \
	s6 fifo "$(q "$s6")" \
	wait-for-it tcp "$(q "$wfi")" \
	sleep-loop file "$(q "$loop")" >"$work/peers.ready"
s6-svscanctl -t "$p/s6" 2>/dev/null || kill "$s6pid"
wait "$s6pid" 2>/dev/null || true

# ------------------------------------------ the cost of a long wait
# One client's requests: its writes to the socket (one per request),
# traced with their times, in its first 2 s and over the 10 s after them.
"$us" -q want lw never-completed
strace -f -ttt -e trace=write,sendto -o "$p/lw.trace" "$us" -q start lw --timeout 12s 2>/dev/null || true
awk '$3 !~ /^write\(2,/ && $3 ~ /^(write|sendto)\(/ { if (!t0) t0 = $2; d = $2 - t0; if (d < 2) a++; else if (d < 12) b++ }
	END { printf "%d %.1f\n", a, b / 10 }' "$p/lw.trace" >"$work/peers.wait"
kill "$upid"
wait "$upid" 2>/dev/null || true

# 1,000 real `unitsync start` clients at the default poll, waiting 20 s
# (not 60: the run would take too long): the server's CPU over the whole
# window, ramps included, and its rate once every client has waited 5 s
# (past its 2 s ramp, with room for a slow launch).
clients=1000 window=20
"$us" serve 2>"$p/many.log" &
spid=$!
"$us" --connect-timeout 5s -q ping >/dev/null
ticks=$(getconf CLK_TCK)
cpu() { awk -v t="$ticks" '{ sub(/.*\) /, ""); print ($12 + $13) / t }' "/proc/$1/stat"; }
i=0
while [ "$i" -lt "$clients" ]; do
	echo "{\"op\":\"want\",\"unit\":\"m$i\",\"deps\":[\"gate\"]}"
	i=$((i + 1))
done | socat -t 30 - "UNIX-CONNECT:$UNITSYNC_SOCKET" >/dev/null
c0=$(cpu "$spid")
t0=$(date +%s.%N)
pids=""
i=0
while [ "$i" -lt "$clients" ]; do
	"$us" start "m$i" --timeout 10m 2>/dev/null &
	pids="$pids $!"
	i=$((i + 1))
done
launched=$(date +%s.%N)
sleep 5
c1=$(cpu "$spid")
t1=$(date +%s.%N)
rest=$(awk -v a="$t0" -v b="$t1" -v w="$window" 'BEGIN { r = w - (b - a); print (r > 5 ? r : 5) }')
sleep "$rest"
c2=$(cpu "$spid")
t2=$(date +%s.%N)
# shellcheck disable=SC2086
kill $pids 2>/dev/null || true
# shellcheck disable=SC2086
wait $pids 2>/dev/null || true
kill "$spid"
wait "$spid" 2>/dev/null || true
awk -v n="$clients" -v t0="$t0" -v t1="$t1" -v t2="$t2" -v l="$launched" -v c0="$c0" -v c1="$c1" -v c2="$c2" \
	'BEGIN { printf "%d %.1f %.2f %.3f %.1f\n", n, t2 - t0, c2 - c0, (c2 - c1) / (t2 - t1), l - t0 }' >"$work/peers.many"

# ------------------------------------------------ 20 oneshots in a chain
mkdir -p "$p/chain"
i=1
while [ "$i" -le 20 ]; do
	after=""
	[ "$i" -eq 1 ] || after="after=c$((i - 1))"
	printf '#!/bin/sh\n# unitsync: %s\ntrue\n' "$after" >"$p/chain/c$i.sh"
	chmod +x "$p/chain/c$i.sh"
	i=$((i + 1))
done
# s6-rc: the same scripts as oneshots (each the \`up\` of one, which depends
# on the one before), compiled once; each round has its own scan directory
# (made beforehand) and live directory. Timed: s6-svscan's launch (it
# says when it scans: \`-d 3\`), s6-rc-init, \`s6-rc -u change c20\`, and
# s6-svscan's exit, as \`up\` is timed from its launch to its exit.
s6rc=""
if have s6-rc; then
	i=1
	while [ "$i" -le 20 ]; do
		mkdir -p "$p/s6rc/src/c$i"
		echo oneshot >"$p/s6rc/src/c$i/type"
		echo "$p/chain/c$i.sh" >"$p/s6rc/src/c$i/up"
		if [ "$i" -gt 1 ]; then
			mkdir -p "$p/s6rc/src/c$i/dependencies.d"
			: >"$p/s6rc/src/c$i/dependencies.d/c$((i - 1))"
		fi
		i=$((i + 1))
	done
	s6-rc-compile "$p/s6rc/db" "$p/s6rc/src"
	r=0
	while [ "$r" -lt "$rounds" ]; do
		mkdir -p "$p/s6rc/r$r/scan"
		mkfifo "$p/s6rc/r$r/scanning"
		r=$((r + 1))
	done
	s6rc='d="@P@/s6rc/r$ROUND"
s6-svscan -d 3 "$d/scan" 3>"$d/scanning" &
s=$!
read -r _ <"$d/scanning"
s6-rc-init -c "@P@/s6rc/db" -l "$d/live" "$d/scan" &&
	s6-rc -l "$d/live" -u change c20 &&
	s6-svscanctl -t "$d/scan" || { kill "$s"; exit 1; }
wait "$s"'
	s6rc=$(printf '%s' "$s6rc" | sed "s|@P@|$p|g")
fi
set -- unitsync "exec '$us' --socket '$p/chain.sock' -q up --dir '$p/chain' >/dev/null 2>&1" \
	sequence "i=1; while [ \$i -le 20 ]; do sh '$p/chain/c'\$i.sh; i=\$((i + 1)); done"
[ -z "$s6rc" ] || set -- "$@" s6-rc "$s6rc"
# dinit: the same scripts as scripted services (each the \`command\` of
# one, which \`depends-on\` the one before), a user-mode dinit started on
# c20; timed from its launch (it says when its socket listens: \`-F 3\`) through
# \`dinitctl start c20\` (which returns once c20 has started) and
# \`dinitctl shutdown\` to its exit.
if have dinit; then
	mkdir -p "$p/dinit"
	i=1
	while [ "$i" -le 20 ]; do
		{
			echo "type = scripted"
			echo "command = $p/chain/c$i.sh"
			[ "$i" -eq 1 ] || echo "depends-on = c$((i - 1))"
		} >"$p/dinit/c$i"
		i=$((i + 1))
	done
	r=0
	while [ "$r" -lt "$rounds" ]; do
		mkfifo "$p/dinit/listening$r"
		r=$((r + 1))
	done
	dinit='d="@P@/dinit"
dinit -u -q -d "$d" -p "$d/sock$ROUND" -F 3 c20 3>"$d/listening$ROUND" &
s=$!
read -r _ <"$d/listening$ROUND"
dinitctl -p "$d/sock$ROUND" start c20 &&
	dinitctl -p "$d/sock$ROUND" shutdown || { kill "$s"; exit 1; }
wait "$s"'
	set -- "$@" dinit "$(printf '%s' "$dinit" | sed "s|@P@|$p|g")"
fi
"$load" peer-time "$rounds" "$p" "$@" >"$work/peers.chain"
have s6-rc || note "20 oneshots: without s6-rc, the floor is a shell running the 20 scripts one after another (no supervisor at all)."

# --------------------------------------- ordered shutdown, 10 services
# Each service writes its pid and then is \`sleep\`, which dies at once on
# SIGTERM. unitsync: a chain under \`up\` (each stopped only after its
# dependents are gone); s6-svscan and runsvdir know no order: all at once.
mkdir -p "$p/stop/up" "$p/stop/s6" "$p/stop/runit"
i=1
while [ "$i" -le 10 ]; do
	after=""
	[ "$i" -eq 1 ] || after="after=s$((i - 1))"
	cat >"$p/stop/up/s$i.sh" <<EOF2
#!/bin/sh
# unitsync: $after ready=file:$p/stop/s$i.up
echo \$\$ >"\$PIDS/s$i"
touch "$p/stop/s$i.up"
exec sleep 600
EOF2
	chmod +x "$p/stop/up/s$i.sh"
	for sup in s6 runit; do
		mkdir -p "$p/stop/$sup/s$i"
		printf '#!/bin/sh\necho $$ >"$PIDS/s%s"\nexec sleep 600\n' "$i" >"$p/stop/$sup/s$i/run"
		chmod +x "$p/stop/$sup/s$i/run"
	done
	i=$((i + 1))
done
set -- unitsync -TERM "rm -f '$p'/stop/*.up; exec '$us' --socket '$p/stop.sock' -q up --dir '$p/stop/up' >/dev/null 2>&1" \
	s6-svscan -TERM "exec s6-svscan '$p/stop/s6' >/dev/null 2>&1" \
	runsvdir -HUP "exec runsvdir '$p/stop/runit' >/dev/null 2>&1"
# s6-rc: the same services as longruns in the same chain, brought up by
# \`s6-rc -u change s10\` under an s6-svscan of their own each round. On
# SIGTERM the shell that did so runs \`s6-rc -da change\` (each one brought
# down only once its dependents are down) and then \`s6-svscanctl -t\`,
# and exits once s6-svscan has: that is an init's ordered shutdown.
if have s6-rc; then
	i=1
	while [ "$i" -le 10 ]; do
		mkdir -p "$p/stop/s6rc/s$i"
		echo longrun >"$p/stop/s6rc/s$i/type"
		cp "$p/stop/s6/s$i/run" "$p/stop/s6rc/s$i/run"
		if [ "$i" -gt 1 ]; then
			mkdir -p "$p/stop/s6rc/s$i/dependencies.d"
			: >"$p/stop/s6rc/s$i/dependencies.d/s$((i - 1))"
		fi
		i=$((i + 1))
	done
	s6-rc-compile "$p/stop/s6rc.db" "$p/stop/s6rc"
	s6rc='d=$(mktemp -d "@P@/r.XXXXXX") && mkdir "$d/scan" && mkfifo "$d/scanning" || exit 1
trap '\''s6-rc -l "$d/live" -da change; s6-svscanctl -t "$d/scan"'\'' TERM
s6-svscan -d 3 "$d/scan" 3>"$d/scanning" &
s=$!
read -r _ <"$d/scanning"
s6-rc-init -c "@P@/s6rc.db" -l "$d/live" "$d/scan" &&
	s6-rc -l "$d/live" -u change s10 || { kill "$s"; exit 1; }
# The first wait ends with the signal, the trap runs, the second waits
# for s6-svscan to be gone.
wait "$s"
wait "$s"'
	set -- "$@" s6-rc -TERM "$(printf '%s' "$s6rc" | sed "s|@P@|$p/stop|g")"
fi
# dinit: the same chain as process services (each \`depends-on\` the one
# before), a user-mode dinit started on s10; SIGTERM stops them in order.
if have dinit; then
	mkdir -p "$p/stop/dinit"
	i=1
	while [ "$i" -le 10 ]; do
		{
			echo "type = process"
			echo "command = $p/stop/s6/s$i/run"
			[ "$i" -eq 1 ] || echo "depends-on = s$((i - 1))"
		} >"$p/stop/dinit/s$i"
		i=$((i + 1))
	done
	set -- "$@" dinit -TERM "exec dinit -u -q -d '$p/stop/dinit' -p '$p/stop/dinit.sock' s10 >/dev/null 2>&1"
fi
"$load" peer-stop "$rounds" "$p/stop" 10 "$@" >"$work/peers.stop"
