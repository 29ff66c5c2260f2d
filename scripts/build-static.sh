#!/bin/sh
# Builds a statically linked release binary (crt-static, with an explicit
# target as Cargo requires for it), writes its SHA-256 next to it
# (unitsync.sha256, in sha256sum's format: check it with
# 'sha256sum -c unitsync.sha256' in that directory) and prints the binary's
# path on the last line.
set -eu
cd "$(dirname "$0")/.."
target=$(rustc -vV | sed -n 's/^host: //p')
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
	cargo build --release --locked --quiet --target "$target" >&2
dir="$(pwd)/target/$target/release"
(cd "$dir" && sha256sum unitsync >unitsync.sha256)
echo "$dir/unitsync"
