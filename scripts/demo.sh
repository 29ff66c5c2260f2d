#!/bin/sh
# The main job: the seeds' startup graph, run for real.
#
# Four startup scripts start at the same moment, as a container's agent
# would start them. git-clone and apt-install run in parallel; pip-install
# needs both; the agent needs only git-clone. Short sleeps stand in for the
# real work. The server logs each state change; the table at the end shows
# that every unit started only after what it depends on had completed.
set -eu
cd "$(dirname "$0")/.."

if [ ! -x target/release/unitsync ] || [ -n "$(find src Cargo.toml -newer target/release/unitsync 2>/dev/null | head -n 1)" ]; then
	cargo build --release --locked --quiet
fi
PATH="$(pwd)/target/release:$PATH"
dir=$(mktemp -d)
export UNITSYNC_SOCKET="$dir/unitsync.sock"
trap 'kill "$server" 2>/dev/null; rm -rf "$dir"' EXIT INT TERM

echo "== server log (time since the server started)"
unitsync serve &
server=$!
unitsync --connect-timeout 5s -q ping >/dev/null

# Each script is what a user would write: declare, start, work, complete.
pids=""
(
	unitsync -q start git-clone
	sleep 0.6 # git clone
	unitsync complete git-clone
) &
pids="$pids $!"
(
	unitsync -q start apt-install
	sleep 1.0 # apt-get install
	unitsync complete apt-install
) &
pids="$pids $!"
(
	unitsync want pip-install git-clone apt-install
	unitsync -q start pip-install
	sleep 0.4 # pip install -r requirements.txt
	unitsync complete pip-install
) &
pids="$pids $!"
(
	unitsync want agent git-clone
	unitsync -q start agent
	sleep 0.3 # start the coding agent
	unitsync complete agent
) &
pids="$pids $!"
# shellcheck disable=SC2086 # one word per pid
wait $pids

echo
echo "== unitsync list"
unitsync list
echo
echo "pip-install started only once git-clone and apt-install had completed;"
echo "agent started as soon as git-clone completed, without waiting for apt-install."
