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
chroot "$root" /bin/busybox --install -s /bin

fail() {
	echo "tests/chroot.sh: FAILED: $*" >&2
	exit 1
}

# 1. The whole graph succeeds; the main command runs last.
chroot "$root" /entrypoint.sh sh -c 'echo main >> /run/order' >"$root/stdout" 2>"$root/stderr" ||
	fail "entrypoint exited $?: $(cat "$root/stdout" "$root/stderr")"
expected="fetch
build
serve-config
main"
[ "$(cat "$root/run/order")" = "$expected" ] || fail "order was: $(cat "$root/run/order"); $(cat "$root/stderr")"
grep -q "config for fetched" "$root/run/app.conf" || fail "serve-config did not see the build"
grep -q "^build.sh *build *ok" "$root/stdout" || fail "no summary: $(cat "$root/stdout")"
echo "tests/chroot.sh: ok: fetch -> build -> serve-config -> main in a busybox-only root"

# 2. fetch fails: its dependents exit 5 at once, the main command never runs.
rm -f "$root/run/order" "$root/run/app."*
status=0
FETCH_FAIL=1 chroot "$root" /entrypoint.sh sh -c 'echo main >> /run/order' >"$root/stdout" 2>"$root/stderr" || status=$?
[ "$status" = 1 ] || fail "entrypoint exited $status with a failing fetch, want 1"
[ ! -e "$root/run/order" ] || fail "something ran after fetch failed: $(cat "$root/run/order")"
grep -q "build.sh *build *not run: dependency fetch failed: exit status 2" "$root/stdout" ||
	fail "no dependency failure: $(cat "$root/stdout" "$root/stderr")"
grep -q "serve-config.sh *serve-config *not run: dependency build failed" "$root/stdout" ||
	fail "no cascade: $(cat "$root/stdout")"
echo "tests/chroot.sh: ok: a failed fetch stops build and serve-config (exit 5) and the main command"
