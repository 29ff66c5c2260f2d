#!/bin/sh
# Copies the Targets table of BENCHMARKS.md into README.md, between the
# markers of its Benchmarks section, so that every figure the README
# quotes comes from the last run of scripts/bench.sh (a test checks that
# the two agree). Run by scripts/bench.sh after it writes BENCHMARKS.md.
set -eu
cd "$(dirname "$0")/../.."

table=$(awk '
	/^## Targets/ { on = 1; next }
	on && /^\|/ { print; seen = 1; next }
	on && seen { exit }
' BENCHMARKS.md)
[ -n "$table" ] || { echo "scripts/bench/readme.sh: no Targets table in BENCHMARKS.md" >&2; exit 1; }
grep -q '^<!-- bench:targets -->$' README.md || {
	echo "scripts/bench/readme.sh: README.md lacks the <!-- bench:targets --> markers" >&2
	exit 1
}
printf '%s\n' "$table" >README.md.table
awk '
	/^<!-- bench:targets -->$/ && !done { print; while ((getline line < "README.md.table") > 0) print line; skip = 1; done = 1; next }
	/^<!-- \/bench:targets -->$/ { skip = 0 }
	!skip { print }
' README.md >README.md.new
mv README.md.new README.md
rm -f README.md.table
