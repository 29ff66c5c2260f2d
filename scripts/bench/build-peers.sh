#!/bin/sh
# build-peers.sh: builds s6-rc 0.5.4.1 from source into /usr/local when
# `s6-rc` is missing, so that scripts/bench/peers.sh can measure it (issue
# 22). Debian does not ship s6-rc, but it ships the libraries that this
# release of it was written against: skalibs-dev 2.13.1.1, libs6-dev 2.11.3.2
# and libexecline-dev 2.9.3.0, which this script installs with apt-get.
#
# The source comes from the environment, never from the network (the
# tarball's site may not be reachable): S6RC_SRC names either an unpacked
# s6-rc source tree (one with a `configure`) or a git directory of
# github.com/skarnet/s6-rc (a clone or a bare mirror), from which the tag
# v0.5.4.1 is exported with `git archive`. Then:
#   ./configure --prefix=/usr/local --with-sysdeps=<skalibs' sysdeps>
#   make && make install
# where skalibs' sysdeps is Debian's /usr/lib/<multiarch>/skalibs/sysdeps.
# Without S6RC_SRC, or when any step fails, it prints a note on stderr and
# exits 0: a benchmark run never fails for want of a peer (peers.sh then
# leaves the s6-rc rows out and says why).
set -u
tag=v0.5.4.1
skip() {
	echo "build-peers.sh: s6-rc not built: $*" >&2
	exit 0
}
command -v s6-rc >/dev/null 2>&1 && exit 0
[ -n "${S6RC_SRC:-}" ] || skip "S6RC_SRC is not set (an s6-rc source tree or git directory)"
[ -d "$S6RC_SRC" ] || skip "S6RC_SRC=$S6RC_SRC is not a directory"

sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
need=""
for pkg in skalibs-dev libs6-dev libexecline-dev s6 execline make gcc; do
	dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || need="$need $pkg"
done
if [ -n "$need" ]; then
	echo "build-peers.sh: installing$need" >&2
	$sudo apt-get update -qq || skip "apt-get update failed"
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $need >/dev/null ||
		skip "apt-get install$need failed"
fi
multiarch=$(gcc -print-multiarch 2>/dev/null || dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null)
sysdeps=/usr/lib/$multiarch/skalibs/sysdeps
[ -f "$sysdeps/sysdeps" ] || skip "skalibs' sysdeps are not at $sysdeps"

build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
if [ -x "$S6RC_SRC/configure" ]; then
	cp -R "$S6RC_SRC/." "$build/" || skip "cannot copy $S6RC_SRC"
else
	git -C "$S6RC_SRC" rev-parse -q --verify "refs/tags/$tag" >/dev/null ||
		skip "$S6RC_SRC is neither an s6-rc source tree nor a git directory with the tag $tag"
	git -C "$S6RC_SRC" archive "$tag" | tar -x -C "$build" || skip "git archive $tag failed"
fi
cd "$build" || skip "cannot enter the build directory"
log="$build/build.log"
{
	./configure --prefix=/usr/local --with-sysdeps="$sysdeps" &&
		make -j"$(nproc)" &&
		$sudo make install
} >"$log" 2>&1 || {
	tail -n 20 "$log" >&2
	skip "its build failed (the log's end is above)"
}
command -v s6-rc >/dev/null 2>&1 || skip "installed, but s6-rc is not on PATH (is /usr/local/bin?)"
echo "build-peers.sh: s6-rc $tag installed into /usr/local" >&2
