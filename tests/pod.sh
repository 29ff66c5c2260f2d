#!/bin/sh
# A pod, for real: three "containers", each in mount and PID namespaces of
# its own (unshare) and a root that holds only busybox and unitsync, each
# as its own uid in group 4343, sharing nothing but the socket's directory
# (a bind mount). The server runs 'serve --group 4343 --state'; containers
# a and b split the seeds' graph between them. Checks the order across
# containers, that a failure in a stops its dependent in b (exit 5), and
# that a and b carry on when the server's container is killed and started
# again on its state file. Nothing here relies on a pid meaning anything
# outside its namespace. Needs root. Called by scripts/test.sh.
set -eu
cd "$(dirname "$0")/.."

bin=$(sh scripts/build-static.sh | tail -n 1)
busybox=$(command -v busybox)
if ldd "$busybox" >/dev/null 2>&1; then
	echo "tests/pod.sh: $busybox is not statically linked; install busybox-static" >&2
	exit 1
fi
for tool in unshare chroot setpriv; do
	command -v "$tool" >/dev/null || { echo "tests/pod.sh: $tool is missing (util-linux, coreutils)" >&2; exit 1; }
done

top=$(mktemp -d)
chmod 755 "$top"
pids=""
# The process a container's unshare runs (its PID 1): killing unshare
# would not kill it, since changing uids cleared its parent-death signal.
init_of() { cat "/proc/$1/task/$1/children" 2>/dev/null || true; }
cleanup() {
	for pid in $pids; do kill -9 $(init_of "$pid") "$pid" 2>/dev/null || true; done
	rm -rf "$top"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

fail() {
	echo "tests/pod.sh: FAILED: $*" >&2
	for log in "$top"/*/out "$top"/server/run/log*; do
		[ -f "$log" ] && { echo "--- $log" >&2; cat "$log" >&2; }
	done
	exit 1
}

# Waits up to 60 s for a command to succeed.
until_ok() {
	tries=0
	until "$@" >/dev/null 2>&1; do
		tries=$((tries + 1))
		[ "$tries" -lt 1200 ] || return 1
		sleep 0.05
	done
}

# The shared socket directory: root's, group 4343, setgid, as a volume
# with an fsGroup is.
mkdir "$top/sock"
chown 0:4343 "$top/sock"
chmod 2770 "$top/sock"

# A busybox-only root for container $1, running as uid $2.
make_root() {
	root="$top/$1"
	mkdir -p "$root/bin" "$root/dev" "$root/tmp" "$root/run/unitsync"
	cp "$busybox" "$root/bin/busybox"
	cp "$bin" "$root/bin/unitsync"
	mknod -m 666 "$root/dev/null" c 1 3
	chmod 1777 "$root/tmp"
	chown "$2:$2" "$root/run"
	chroot "$root" /bin/busybox --install -s /bin
}
make_root server 4000
make_root a 4001
make_root b 4002

# Container a: git-clone, then apt-install (which fails with FAIL=1, and
# otherwise waits for /go, which the test creates).
cat >"$top/a/start.sh" <<'SCRIPT'
#!/bin/sh
unitsync run git-clone -- sh -c 'echo cloned > /run/repo' &
clone=$!
unitsync run apt-install -- sh -c '[ -z "$FAIL" ] || exit 3; until [ -e /go ]; do sleep 0.05; done' &
install=$!
code=0; wait "$clone" || code=$?; echo "git-clone $code" >> /run/codes
code=0; wait "$install" || code=$?; echo "apt-install $code" >> /run/codes
SCRIPT
# Container b: pip-install needs both of a's units; agent only git-clone.
cat >"$top/b/start.sh" <<'SCRIPT'
#!/bin/sh
unitsync run pip-install --after git-clone --after apt-install -- true &
pip=$!
unitsync run agent --after git-clone -- true &
agent=$!
code=0; wait "$pip" || code=$?; echo "pip-install $code" >> /run/codes
code=0; wait "$agent" || code=$?; echo "agent $code" >> /run/codes
SCRIPT

# Runs container $1 as uid $2 in group 4343: new mount and PID namespaces,
# the socket directory bound in, then chroot. Remembers its pid in $pid.
container() {
	name=$1 uid=$2
	shift 2
	unshare --mount --pid --fork --kill-child sh -c '
		mount --bind "$1" "$2/run/unitsync" && shift 2 && exec "$@"' sh \
		"$top/sock" "$top/$name" \
		env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin UNITSYNC_SOCKET=/run/unitsync/unitsync.sock \
		UNITSYNC_CONNECT_TIMEOUT=60s FAIL="${FAIL:-}" \
		chroot --userspec="$uid:$uid" --groups=4343 "$top/$name" "$@" \
		>>"$top/$name/out" 2>&1 &
	pid=$!
	pids="$pids $pid"
}

# The host's view of the server, as its owner.
us() { setpriv --reuid 4000 --regid 4000 --groups 4343 "$top/server/bin/unitsync" --socket "$top/sock/unitsync.sock" "$@"; }

serve() {
	container server 4000 unitsync serve --group 4343 --state /run/state
	server=$pid
	until_ok us ping || fail "the server did not come up"
}

# The line of the server's log (every run of it) where $1 happened first.
line_of() { grep -n -e " $1\$" -e " $1 " "$top/server/out" | head -n 1 | cut -d: -f1; }
before() {
	first=$(line_of "$1") second=$(line_of "$2")
	[ -n "$first" ] && [ -n "$second" ] && [ "$first" -lt "$second" ] || fail "'$1' is not before '$2'"
}

# 1. apt-install fails in a: pip-install in b exits 5; agent, which needs
# only git-clone, runs.
FAIL=1
serve
container a 4001 /bin/sh /start.sh
ca=$pid
container b 4002 /bin/sh /start.sh
cb=$pid
wait "$ca" || fail "container a exited $?"
wait "$cb" || fail "container b exited $?"
grep -qx "apt-install 3" "$top/a/run/codes" || fail "apt-install: $(cat "$top/a/run/codes")"
grep -qx "pip-install 5" "$top/b/run/codes" || fail "pip-install did not exit 5: $(cat "$top/b/run/codes")"
grep -qx "agent 0" "$top/b/run/codes" || fail "agent: $(cat "$top/b/run/codes")"
grep -q "dependency apt-install failed" "$top/b/out" || fail "b did not say why"
before "git-clone completed" "agent started"
kill $(init_of "$server")
wait "$server" 2>/dev/null || true
echo "tests/pod.sh: ok: a failure in container a stops its dependent in container b (exit 5), across PID namespaces and uids"

# 2. The whole graph; the server's container is killed while b waits, and
# started again on its state file; a and b carry on.
FAIL=""
rm -f "$top/a/run/codes" "$top/b/run/codes" "$top/server/run/state" "$top/server/out"
serve
container a 4001 /bin/sh /start.sh
ca=$pid
container b 4002 /bin/sh /start.sh
cb=$pid
waiting() { us status pip-install --json | grep -q '"waiting_since": [0-9]'; }
until_ok waiting || fail "pip-install never waited"
agent_done() { grep -q " agent completed" "$top/server/out"; }
until_ok agent_done || fail "agent never completed"
kill -9 $(init_of "$server")
wait "$server" 2>/dev/null || true
if us ping >/dev/null 2>&1; then fail "the server still answers after its container was killed"; fi
serve
touch "$top/a/go"
wait "$ca" || fail "container a exited $?"
wait "$cb" || fail "container b exited $?"
for unit in git-clone apt-install; do
	grep -qx "$unit 0" "$top/a/run/codes" || fail "$unit: $(cat "$top/a/run/codes")"
done
for unit in pip-install agent; do
	grep -qx "$unit 0" "$top/b/run/codes" || fail "$unit: $(cat "$top/b/run/codes")"
done
before "git-clone completed" "agent started"
before "git-clone completed" "pip-install started"
before "apt-install completed" "pip-install started"
[ "$(grep -c 'serving on' "$top/server/out")" = 2 ] || fail "the server did not serve twice"
us list | grep -q "^pip-install .*completed" || fail "pip-install is not completed: $(us list)"
echo "tests/pod.sh: ok: the seeds' graph across three containers in order, through a SIGKILL and restart of the server's container"
