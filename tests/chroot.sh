#!/bin/sh
# The static binary in a root that holds only busybox (static), /dev/null
# and unitsync: runs examples/container's entry script and startup graph
# there, as a container would, and checks the order and the exit codes.
# Needs root (chroot, mknod). Called by scripts/test.sh.
set -eu
cd "$(dirname "$0")/.."

bin=$(sh scripts/build-static.sh | tail -n 1)
busybox=$(command -v busybox)
if ldd "$busybox" >/dev/null 2>&1; then
	echo "tests/chroot.sh: $busybox is not statically linked; install busybox-static" >&2
	exit 1
fi

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/dev" "$root/tmp" "$root/run" "$root/startup"
cp "$busybox" "$root/bin/busybox"
cp "$bin" "$root/bin/unitsync"
mknod -m 666 "$root/dev/null" c 1 3
chmod 1777 "$root/tmp"
cp examples/container/entrypoint.sh "$root/entrypoint.sh"
cp examples/container/startup/*.sh "$root/startup/"
# The example's web service listens on 8080; another test on this machine
# may hold that port, so this run takes one of its own.
port=$((20000 + $$ % 20000))
sed -i "s/8080/$port/g" "$root/startup/web.sh" "$root/startup/probe.sh"
chroot "$root" /bin/busybox --install -s /bin

fail() {
	echo "tests/chroot.sh: FAILED: $*" >&2
	exit 1
}

# The build's checksum file matches the binary, in sha256sum's format.
(cd "$(dirname "$bin")" && sha256sum -c unitsync.sha256 >/dev/null) ||
	fail "$(dirname "$bin")/unitsync.sha256 does not match the binary"

# Processes whose root is the chroot: none may outlive the entry script.
left_in_root() {
	for proc in /proc/[0-9]*; do
		[ "$(readlink "$proc/root" 2>/dev/null)" = "$root" ] && echo "${proc#/proc/}"
	done
	return 0
}

# 1. The whole graph succeeds; the main command runs while the web service
# serves, and the service is stopped after it.
main="wget -q -O /run/main.out http://127.0.0.1:$port/ && echo main >> /run/order"
chroot "$root" /entrypoint.sh sh -c "$main" >"$root/stdout" 2>"$root/stderr" ||
	fail "entrypoint exited $?: $(cat "$root/stdout" "$root/stderr")"
expected="fetch
build
serve-config
web
probe
main
web stopped"
[ "$(cat "$root/run/order")" = "$expected" ] || fail "order was: $(cat "$root/run/order"); $(cat "$root/stderr")"
grep -q "config for fetched" "$root/run/app.conf" || fail "serve-config did not see the build"
grep -q "config for fetched" "$root/run/fetched" || fail "probe did not reach the web service"
grep -q "config for fetched" "$root/run/main.out" || fail "the main command did not reach the web service"
grep -q "^build.sh *build *ok" "$root/stdout" || fail "no summary: $(cat "$root/stdout")"
grep -q "^web.sh *web *ready" "$root/stdout" || fail "web is not ready in the summary: $(cat "$root/stdout")"
grep -q "^web.sh *web *stopped" "$root/stdout" || fail "web is not stopped in the summary: $(cat "$root/stdout")"
[ -z "$(left_in_root)" ] || fail "processes outlived the entrypoint: $(left_in_root)"
if busybox wget -q -T 2 -O /dev/null "http://127.0.0.1:$port/" 2>/dev/null; then
	fail "the web service still answers on port $port"
fi
echo "tests/chroot.sh: ok: fetch -> build -> serve-config -> web (a service) -> probe -> main, then web stopped, in a busybox-only root"

# 2. fetch fails: its dependents exit 5 at once, the main command never runs.
rm -rf "$root/run/"*
status=0
FETCH_FAIL=1 chroot "$root" /entrypoint.sh sh -c 'echo main >> /run/order' >"$root/stdout" 2>"$root/stderr" || status=$?
[ "$status" = 1 ] || fail "entrypoint exited $status with a failing fetch, want 1"
[ ! -e "$root/run/order" ] || fail "something ran after fetch failed: $(cat "$root/run/order")"
grep -q "build.sh *build *not run: dependency fetch failed: exit status 2" "$root/stdout" ||
	fail "no dependency failure: $(cat "$root/stdout" "$root/stderr")"
grep -q "serve-config.sh *serve-config *not run: dependency build failed" "$root/stdout" ||
	fail "no cascade: $(cat "$root/stdout")"
grep -q "web.sh *web *not run: dependency serve-config failed" "$root/stdout" ||
	fail "the service started after a failure: $(cat "$root/stdout")"
[ -z "$(left_in_root)" ] || fail "processes outlived the entrypoint: $(left_in_root)"
echo "tests/chroot.sh: ok: a failed fetch stops build, serve-config and web (exit 5) and the main command"

# 3. user= in a header: the static binary reads /etc/passwd and /etc/group
# itself (no NSS here), and the script runs as that user with its primary
# and supplementary groups, HOME, USER and LOGNAME; a script without one
# stays root. An unknown user is refused before anything runs.
mkdir -p "$root/etc" "$root/users" "$root/home/app"
# mktemp made the root 0700: a container's / is searchable by every user.
chmod 755 "$root" "$root/bin"
printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'app:x:1234:1234:app:/home/app:/bin/sh' >"$root/etc/passwd"
printf '%s\n' 'root:x:0:' 'app:x:1234:' 'extra:x:2345:app' 'other:x:3456:root' >"$root/etc/group"
cat >"$root/users/who.sh" <<'SCRIPT'
#!/bin/sh
# unitsync: user=app
echo "ids $(id -u) $(id -g) $(id -G | tr ' ' '\n' | sort -n | tr '\n' ' ')"
echo "env $HOME $USER $LOGNAME"
SCRIPT
cat >"$root/users/boss.sh" <<'SCRIPT'
#!/bin/sh
# unitsync: after=who
echo "ids $(id -u)"
SCRIPT
chmod 755 "$root/users/who.sh" "$root/users/boss.sh"
chroot "$root" /bin/unitsync up --dir /users >"$root/stdout" 2>"$root/stderr" ||
	fail "up with user= exited $?: $(cat "$root/stdout" "$root/stderr")"
grep -q "^who.sh *| ids 1234 1234 1234 2345 $" "$root/stdout" ||
	fail "who.sh did not run as app with its groups: $(cat "$root/stdout" "$root/stderr")"
grep -q "^who.sh *| env /home/app app app$" "$root/stdout" ||
	fail "who.sh did not get app's environment: $(cat "$root/stdout")"
grep -q "^boss.sh *| ids 0$" "$root/stdout" || fail "boss.sh did not run as root: $(cat "$root/stdout")"
printf '%s\n' '#!/bin/sh' '# unitsync: user=ghost' 'echo ran' >"$root/users/ghost.sh"
chmod 755 "$root/users/ghost.sh"
status=0
chroot "$root" /bin/unitsync up --dir /users >"$root/stdout" 2>"$root/stderr" || status=$?
[ "$status" = 1 ] || fail "up with an unknown user= exited $status, want 1"
grep -q 'ghost.sh: user=: no user "ghost" in /etc/passwd' "$root/stderr" ||
	fail "no error for an unknown user: $(cat "$root/stderr")"
! grep -q "ids" "$root/stdout" || fail "a script ran despite an unknown user: $(cat "$root/stdout")"
[ -z "$(left_in_root)" ] || fail "processes outlived up: $(left_in_root)"
echo "tests/chroot.sh: ok: user=app runs a script as app (uid, groups, HOME/USER/LOGNAME) from /etc/passwd and /etc/group in a busybox-only root; an unknown user is refused before anything runs"
# 4. examples/devcontainer: its scripts from up's default directory
# (/etc/unitsync.d, no --dir), with stand-ins for dockerd (a unix socket that
# accepts connections) and docker (the database is busybox httpd), and its
# postStartCommand as the main command. The env file reaches the database
# and the stop script; the stop script dumps the database while it still
# serves, before it gets its stop signal. (No `wget -T` in the stand-in:
# Debian's static busybox 1.35 crashes with it.)
rm -rf "$root/run/"*
mkdir -p "$root/etc/unitsync.d" "$root/var/run" "$root/www" "$root/workspaces"
cp examples/devcontainer/unitsync.d/* "$root/etc/unitsync.d/"
echo "the database" >"$root/www/index.html"
cat >"$root/bin/dockerd" <<'STANDIN'
#!/bin/sh
# A stand-in for dockerd: a unix socket that accepts connections.
exec unitsync --socket /var/run/docker.sock serve
STANDIN
cat >"$root/bin/docker" <<STANDIN
#!/bin/sh
# A stand-in for docker: run serves the database (busybox httpd on port
# $port), exec pg_isready asks it, exec pg_dump dumps it.
[ -S /var/run/docker.sock ] || { echo "docker: cannot connect to the Docker daemon" >&2; exit 1; }
case "\$1 \$3" in
"run "*)
	echo "db \$POSTGRES_USER/\$POSTGRES_DB" >>/run/order
	trap 'echo "db stopped" >>/run/order; kill \$pid; exit 0' INT TERM
	httpd -f -p $port -h /www &
	pid=\$!
	wait \$pid ;;
"exec pg_isready") exec wget -q -O /dev/null http://127.0.0.1:$port/ ;;
"exec pg_dump")
	wget -q -O - http://127.0.0.1:$port/ || exit 1
	echo "backup" >>/run/order ;;
*) echo "docker: unexpected \$*" >&2; exit 1 ;;
esac
STANDIN
chmod 755 "$root/bin/dockerd" "$root/bin/docker"
poststart=$(sed -n 's/^ *"postStartCommand": *"\(.*\)",$/\1/p' examples/devcontainer/devcontainer.json)
[ -n "$poststart" ] || fail "no postStartCommand in examples/devcontainer/devcontainer.json"
status=0
env -i PATH=/bin UNITSYNC_SOCKET=/run/unitsync/unitsync.sock \
	"$(command -v chroot)" "$root" /bin/unitsync up --grace 50s -- sh -c "$poststart && echo main >>/run/order" \
	>"$root/stdout" 2>"$root/stderr" || status=$?
[ "$status" = 0 ] || fail "the devcontainer's up exited $status: $(cat "$root/stdout" "$root/stderr")"
expected="db dev/app
main
backup
db stopped"
[ "$(cat "$root/run/order")" = "$expected" ] ||
	fail "devcontainer order was: $(cat "$root/run/order"); $(cat "$root/stdout" "$root/stderr")"
grep -q "the database" "$root/workspaces/.devdb/dump.sql" || fail "no dump: $(cat "$root/stderr")"
grep -q "^90-db-backup.sh *db-backup *ran at stop" "$root/stdout" ||
	fail "the backup is not in the summary: $(cat "$root/stdout")"
grep -q "^20-db.sh *db *stopped" "$root/stdout" || fail "db is not stopped in the summary: $(cat "$root/stdout")"
[ -z "$(left_in_root)" ] || fail "processes outlived the devcontainer's up: $(left_in_root)"
echo "tests/chroot.sh: ok: examples/devcontainer from /etc/unitsync.d: dockerd -> db (env file) -> postStartCommand, then the backup before db stopped"
