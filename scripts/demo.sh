#!/bin/sh
# The main job: the seeds' startup graph, run for real by 'unitsync up'.
#
# Four startup scripts start at the same moment, as a container's
# entrypoint would start them. git-clone and apt-install run in parallel;
# pip-install needs both; the agent needs only git-clone. Short sleeps stand
# in for the real work. Three scripts declare their order in a header line;
# the agent uses the CLI itself. The server's log shows each state change,
# the summary shows that every unit started only after what it depends on
# had completed, and the main command prints the critical chain.
# Set UNITSYNC_BIN to run it with a given binary instead of a release build.
set -eu
cd "$(dirname "$0")/.."

dir=$(mktemp -d)
if [ -n "${UNITSYNC_BIN:-}" ]; then
	# A given binary (the tests pass theirs): put it on PATH as unitsync.
	mkdir "$dir/bin"
	ln -s "$UNITSYNC_BIN" "$dir/bin/unitsync"
	PATH="$dir/bin:$PATH"
else
	if [ ! -x target/release/unitsync ] || [ -n "$(find src Cargo.toml -newer target/release/unitsync 2>/dev/null | head -n 1)" ]; then
		echo "scripts/demo.sh: building the release binary (about half a minute the first time)" >&2
		cargo build --release --locked --quiet
	fi
	PATH="$(pwd)/target/release:$PATH"
fi
trap 'rm -rf "$dir"' EXIT INT TERM
export UNITSYNC_SOCKET="$dir/unitsync.sock"
mkdir "$dir/startup"

cat >"$dir/startup/git-clone.sh" <<'SCRIPT'
#!/bin/sh
# unitsync: unit=git-clone
echo "cloning the repository"
sleep 0.6
SCRIPT
cat >"$dir/startup/apt-install.sh" <<'SCRIPT'
#!/bin/sh
# unitsync: unit=apt-install
echo "installing python3-dev"
sleep 1.0
SCRIPT
cat >"$dir/startup/pip-install.sh" <<'SCRIPT'
#!/bin/sh
# unitsync: after=git-clone,apt-install
echo "pip install -r requirements.txt"
sleep 0.4
SCRIPT
cat >"$dir/startup/agent.sh" <<'SCRIPT'
#!/bin/sh
# No header: this one speaks to unitsync itself.
unitsync -q want agent git-clone
unitsync -q start agent
echo "starting the coding agent"
sleep 0.3
unitsync -q complete agent
SCRIPT
chmod +x "$dir/startup/"*

unitsync up --dir "$dir/startup" -- sh -c '
	echo
	echo "== the critical chain: what decided when startup finished"
	unitsync list --critical'
echo
echo "pip-install started only once git-clone and apt-install had completed;"
echo "agent started as soon as git-clone completed, without waiting for apt-install."
