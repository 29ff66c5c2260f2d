#!/bin/sh
# build-peers.sh: builds the peers that Debian does not ship, from source,
# into /usr/local, each only when it is missing, so that
# scripts/bench/peers.sh can measure them (issue 22):
#
# s6-rc 0.5.4.1, against the libraries this release was written for, which
# Debian ships: skalibs-dev 2.13.1.1, libs6-dev 2.11.3.2 and libexecline-dev
# 2.9.3.0 (installed here with apt-get). S6RC_SRC names either an unpacked
# s6-rc source tree (one with a `configure`) or a git directory of
# github.com/skarnet/s6-rc (a clone or a bare mirror), from which the tag
# v0.5.4.1 is exported with `git archive`. Then:
#   ./configure --prefix=/usr/local --with-sysdeps=<skalibs' sysdeps>
#   make && make install
# where skalibs' sysdeps is Debian's /usr/lib/<multiarch>/skalibs/sysdeps.
#
# dinit 0.22.1 (C++, no library beyond libc): DINIT_SRC names a source
# tree or a git directory of github.com/davmac314/dinit (tag v0.22.1).
#   ./configure --prefix=/usr/local && make -C build && make -C src
# and only `dinit` and `dinitctl` are installed into /usr/local/sbin: its
# `make install` would also install a `shutdown`, `halt`, `reboot` and
# `poweroff` that would come before the system's on PATH.
#
# The sources come from the environment, never from the network (the
# tarballs' sites may not be reachable). Without S6RC_SRC or DINIT_SRC, or
# when a step fails, it prints a note on stderr, skips that peer and exits
# 0: a benchmark run never fails for want of a peer (peers.sh then leaves
# its rows out and says why).
set -u
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
note() { echo "build-peers.sh: $*" >&2; }
# unpack SRC TAG DIR: SRC (a source tree, or a git directory holding TAG)
# into DIR.
unpack() {
	if [ -x "$1/configure" ]; then
		cp -R "$1/." "$3/"
	elif git -C "$1" rev-parse -q --verify "refs/tags/$2" >/dev/null 2>&1; then
		git -C "$1" archive "$2" | tar -x -C "$3"
	else
		note "$1 is neither a source tree nor a git directory with the tag $2"
		return 1
	fi
}
# apt PACKAGE...: installs those that are missing.
apt() {
	need=""
	for pkg in "$@"; do
		dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || need="$need $pkg"
	done
	[ -n "$need" ] || return 0
	note "installing$need"
	$sudo apt-get update -qq &&
		# shellcheck disable=SC2086
		DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $need >/dev/null
}
build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT

# s6-rc: in a subshell, so that a skip ends only this part.
(
	tag=v0.5.4.1
	skip() {
		note "s6-rc not built: $*"
		exit 0
	}
	command -v s6-rc >/dev/null 2>&1 && exit 0
	[ -n "${S6RC_SRC:-}" ] || skip "S6RC_SRC is not set (an s6-rc source tree or git directory)"
	[ -d "$S6RC_SRC" ] || skip "S6RC_SRC=$S6RC_SRC is not a directory"
	apt skalibs-dev libs6-dev libexecline-dev s6 execline make gcc || skip "apt-get failed"
	multiarch=$(gcc -print-multiarch 2>/dev/null || dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null)
	sysdeps=/usr/lib/$multiarch/skalibs/sysdeps
	[ -f "$sysdeps/sysdeps" ] || skip "skalibs' sysdeps are not at $sysdeps"
	mkdir "$build/s6-rc" && unpack "$S6RC_SRC" "$tag" "$build/s6-rc" || skip "no source"
	cd "$build/s6-rc" || skip "cannot enter the build directory"
	{
		./configure --prefix=/usr/local --with-sysdeps="$sysdeps" &&
			make -j"$(nproc)" &&
			$sudo make install
	} >build.log 2>&1 || {
		tail -n 20 build.log >&2
		skip "its build failed (the log's end is above)"
	}
	command -v s6-rc >/dev/null 2>&1 || skip "installed, but s6-rc is not on PATH (is /usr/local/bin?)"
	note "s6-rc $tag installed into /usr/local"
)

# dinit
(
	tag=v0.22.1
	skip() {
		note "dinit not built: $*"
		exit 0
	}
	command -v dinit >/dev/null 2>&1 && exit 0
	[ -n "${DINIT_SRC:-}" ] || skip "DINIT_SRC is not set (a dinit source tree or git directory)"
	[ -d "$DINIT_SRC" ] || skip "DINIT_SRC=$DINIT_SRC is not a directory"
	apt make g++ || skip "apt-get failed"
	mkdir "$build/dinit" && unpack "$DINIT_SRC" "$tag" "$build/dinit" || skip "no source"
	cd "$build/dinit" || skip "cannot enter the build directory"
	{
		./configure --prefix=/usr/local --sbindir=/usr/local/sbin &&
			make -C build && make -C src -j"$(nproc)" &&
			$sudo install -D -m 755 src/dinit src/dinitctl -t /usr/local/sbin
	} >build.log 2>&1 || {
		tail -n 20 build.log >&2
		skip "its build failed (the log's end is above)"
	}
	command -v dinit >/dev/null 2>&1 || skip "installed, but dinit is not on PATH (is /usr/local/sbin?)"
	note "dinit $tag installed into /usr/local/sbin"
)
