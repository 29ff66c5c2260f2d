#!/bin/sh
# Builds a statically linked release binary (crt-static, with an explicit
# target as Cargo requires for it) and prints its path on the last line.
set -eu
cd "$(dirname "$0")/.."
target=$(rustc -vV | sed -n 's/^host: //p')
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
	cargo build --release --locked --quiet --target "$target" >&2
echo "$(pwd)/target/$target/release/unitsync"
