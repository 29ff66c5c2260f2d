#!/bin/sh
# supervision.sh UNITSYNC WORKDIR ROUNDS: what `up` does when a ready
# service dies after startup (README.md, "Supervision"), timed from the
# SIGKILL, ROUNDS times each. Prints one line per round:
#   failfast SECONDS   from the death to up's exit (no restart policy)
#   restart SECONDS    from the death to the unit ready again
#                      (restart=on-failure), the 1 s first delay excluded
# Part of scripts/bench.sh; runs alone too.
set -eu
us=$1 work=$2 rounds=$3
dir="$work/supervision"
export UNITSYNC_SOCKET="$dir/s.sock"
now() { date +%s.%N; }

# db.sh: a service ready by its fd whose pid is the script's own (exec).
service() {
	rm -rf "$dir"
	mkdir -p "$dir/startup"
	cat >"$dir/startup/db.sh" <<EOF
#!/bin/sh
# unitsync: ready=fd:3 $1
echo \$\$ >"$dir/db.pid.new" && mv "$dir/db.pid.new" "$dir/db.pid"
echo >&3
exec sleep 1000
EOF
	chmod +x "$dir/startup/db.sh"
}

# Waits for db to be ready, by the cheapest check there is.
until_ready() {
	until "$us" -q wait db --once 2>/dev/null; do :; done
}

# Starts `up` on db.sh (its pid in $up), waits until db is ready, then
# kills db; the kill's time in $t0.
up_then_kill() {
	service "$1"
	"$us" up --dir "$dir/startup" >"$dir/up.out" 2>&1 &
	up=$!
	"$us" --connect-timeout 30s -q ping >/dev/null
	until_ready
	pid=$(cat "$dir/db.pid")
	t0=$(now)
	kill -KILL "$pid"
}

i=1
while [ "$i" -le "$rounds" ]; do
	# Fail-fast: the death of db ends up.
	up_then_kill ""
	wait "$up" || true
	t1=$(now)
	echo "failfast $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", b - a }')"

	# Restart: the death of db has it run again and ready again.
	up_then_kill "restart=on-failure"
	# Not ready any more once the restart is recorded; then ready again.
	while "$us" -q wait db --once 2>/dev/null; do :; done
	until_ready
	t1=$(now)
	kill -TERM "$up"
	wait "$up" || true
	echo "restart $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", b - a - 1 }')"
	i=$((i + 1))
done
