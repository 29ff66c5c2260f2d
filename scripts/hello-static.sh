#!/bin/sh
# Builds a static hello-world the way scripts/build-static.sh builds
# unitsync (the main crate's release profile copied verbatim, the same
# flags), in target/hello, and prints its path on the last line: the
# baseline of the size limit (README.md, "Benchmarks").
set -eu
cd "$(dirname "$0")/.."
target=$(rustc -vV | sed -n 's/^host: //p')
dir="$(pwd)/target/hello"
mkdir -p "$dir/src"
{
	printf '[package]\nname = "hello"\nversion = "0.0.0"\nedition = "2024"\n\n[workspace]\n\n'
	awk '/^\[profile\.release\]/ { p = 1; print; next } /^\[/ { p = 0 } p' Cargo.toml
} >"$dir/Cargo.toml.new"
# Rewritten only when changed, so that cargo's rebuild stays a no-op.
if cmp -s "$dir/Cargo.toml.new" "$dir/Cargo.toml"; then rm "$dir/Cargo.toml.new"; else mv "$dir/Cargo.toml.new" "$dir/Cargo.toml"; fi
main='fn main() { println!("Hello, world!"); }'
[ "$(cat "$dir/src/main.rs" 2>/dev/null)" = "$main" ] || echo "$main" >"$dir/src/main.rs"
(
	cd "$dir"
	RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" CARGO_TARGET_DIR="$dir/target" \
		cargo build --release --quiet --target "$target" >&2
)
echo "$dir/target/$target/release/hello"
