#!/bin/sh
# The whole test suite: installs the tools the tests run (busybox, dash,
# bash, socat, graphviz, setpriv, python3-yaml, PostgreSQL, redis, nginx)
# when missing, then checks formatting, lints with warnings denied, checks
# the scripts' syntax under every shell, checks the static binary's size,
# and runs every test.
set -eu
cd "$(dirname "$0")/.."

need=""
have() { command -v "$1" >/dev/null 2>&1; }
# The chroot test needs a statically linked busybox: ldd succeeds only on a
# dynamically linked one.
if ! have busybox || ldd "$(command -v busybox)" >/dev/null 2>&1; then
	need="$need busybox-static"
fi
have dash || need="$need dash"
have bash || need="$need bash"
have socat || need="$need socat"
have dot || need="$need graphviz"
have setpriv || need="$need util-linux"
# Real services under `up` (tests/it/real_services.rs).
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need="$need postgresql"
have redis-server && have redis-cli || need="$need redis-server"
have nginx || need="$need nginx"
# tests/it/pods.rs reads the pod examples' YAML with Python's yaml module.
python3 -c 'import yaml' 2>/dev/null || need="$need python3-yaml"
if [ -n "$need" ]; then
	echo "scripts/test.sh: installing$need" >&2
	sudo=""
	[ "$(id -u)" = 0 ] || sudo="sudo"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $need >/dev/null
fi

for shell in "busybox sh" dash bash; do
	for script in scripts/*.sh tests/*.sh examples/*/*.sh examples/*/*/*.sh; do
		[ -f "$script" ] || continue
		$shell -n "$script" || { echo "scripts/test.sh: $script: syntax error under $shell" >&2; exit 1; }
	done
done
# Bashisms the POSIX shells would trip on.
if grep -nE '\[\[|^function |^[[:space:]]*[A-Za-z_]+=\(|\$\{[A-Za-z_]+\[' scripts/*.sh tests/*.sh examples/*/*.sh examples/*/*/*.sh | grep -v 'bashism-check'; then # bashism-check
	echo "scripts/test.sh: the lines above use bash-only syntax; scripts must be POSIX sh" >&2
	exit 1
fi

cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
# README.md, "Benchmarks": the static binary stays within 1.8x a static hello-world built
# the same way. tests/chroot.sh below reuses this build (cargo finds it
# fresh).
bin=$(sh scripts/build-static.sh | tail -n 1)
hello=$(sh scripts/hello-static.sh | tail -n 1)
us_bytes=$(wc -c <"$bin")
hello_bytes=$(wc -c <"$hello")
# Hundredths, in integer arithmetic: 1.8x is 180.
ratio=$((us_bytes * 100 / hello_bytes))
printf 'static size: unitsync %s bytes, hello-world %s bytes, %d.%02dx (limit 1.80x)\n' \
	"$us_bytes" "$hello_bytes" $((ratio / 100)) $((ratio % 100))
if [ "$ratio" -gt 180 ] || { [ "$ratio" -eq 180 ] && [ $((us_bytes * 100 % hello_bytes)) -ne 0 ]; }; then
	echo "scripts/test.sh: the static binary is above 1.8x a static hello-world (README.md, Benchmarks)" >&2
	exit 1
fi
# The static binary in a busybox-only root, then three such roots as a pod
# (needs root for chroot, mknod, unshare and other uids).
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
$sudo sh tests/chroot.sh
$sudo sh tests/pod.sh
cargo test --locked
