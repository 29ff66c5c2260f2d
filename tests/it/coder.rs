//! The `coder` personality end to end: `coder exp sync` with Coder's
//! arguments, texts, layouts and exit codes, and the seed documents'
//! example scripts run unchanged (but for the real work they do) against a
//! real server, with `coder` on PATH a symlink to our binary.

use std::fs;
use std::os::unix::process::CommandExt;
use std::process::Stdio;

use crate::util::*;

const SHELLS: [&str; 3] = ["busybox sh", "dash", "bash"];

/// `coder ARGS`: our binary with argv[0] `coder`.
pub fn coder(sb: &Sandbox, args: &[&str]) -> Output {
    coder_with(sb, args, &[])
}

/// `coder ARGS` with extra environment variables.
pub fn coder_with(sb: &Sandbox, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = sb.cmd(args);
    cmd.arg0("coder").envs(env.iter().copied());
    output(format!("coder {}", args.join(" ")), cmd)
}

/// Coder's two-line error report, as `coder exp sync SUB` prints it.
pub fn coder_error(sub: &str, error: &str) -> String {
    format!(
        "Encountered an error running \"coder exp sync {sub}\", see \"coder exp sync {sub} --help\" for more information\nerror: {error}\n"
    )
}

#[test]
fn ping_want_start_complete_print_coders_texts() {
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    coder(&sb, &["exp", "sync", "ping"]).ok().stdout_is("Success\n");
    coder(&sb, &["exp", "sync", "want", "b", "a"])
        .ok()
        .stdout_is("Unit \"b\" declared dependencies: [a]\n");
    coder(&sb, &["exp", "sync", "start", "a"])
        .ok()
        .stdout_is("Unit \"a\" started with no dependencies\n");
    coder(&sb, &["exp", "sync", "complete", "a"]).ok().stdout_is("Success\n");
    coder(&sb, &["exp", "sync", "start", "b"])
        .ok()
        .stdout_is("Unit \"b\" started immediately, dependencies already satisfied: [a]\n");
    // One call, several dependencies, as the seeds' pip-install script does.
    coder(&sb, &["exp", "sync", "want", "c", "b", "a"])
        .ok()
        .stdout_is("Unit \"c\" declared dependencies: [b, a]\n");
    let status = coder(&sb, &["exp", "sync", "status", "c", "-o", "json"]);
    status.ok().stdout_has("\"depends_on\": \"a\"").stdout_has("\"depends_on\": \"b\"");
}

#[test]
fn start_waits_says_what_for_and_then_that_it_finished_waiting() {
    let sb = Sandbox::new();
    let server = sb.serve(&[]);
    let script = UNTIL_WAITING_SH.to_owned()
        + r#"coder exp sync want app db >/dev/null
           coder exp sync want app cache >/dev/null
           ( until_waiting app
             coder exp sync start db >/dev/null; coder exp sync complete db >/dev/null
             coder exp sync complete cache >/dev/null ) &
           coder exp sync start app
           echo "start: $?"
           wait"#;
    let out = sb.shell("dash", &script);
    out.ok().stdout_is(
        "Unit \"app\" is waiting for dependencies to be satisfied: [cache, db]\n\
         Unit \"app\" finished waiting for dependencies: [cache, db]\n\
         start: 0\n",
    );
    assert_eq!(out.stderr, "", "start waits quietly on stderr{out}");
    let log = server.log();
    assert!(at(&log, "app started") >= at(&log, "db completed"), "{log}");
    assert!(at(&log, "app started") >= at(&log, "cache completed"), "{log}");
}

#[test]
fn status_shows_coders_header_table_and_json() {
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    coder(&sb, &["exp", "sync", "want", "pip-install", "git-clone", "apt-install"]).ok();
    coder(&sb, &["exp", "sync", "start", "apt-install"]).ok();
    coder(&sb, &["exp", "sync", "complete", "apt-install"]).ok();
    coder(&sb, &["exp", "sync", "status", "pip-install"]).ok().stdout_is(
        "\
Unit: pip-install
Status: pending
Ready: false

Dependencies:
DEPENDS ON   REQUIRED STATUS  CURRENT STATUS  SATISFIED  
apt-install  completed        completed       true       
git-clone    completed        not registered  false      
",
    );
    coder(&sb, &["exp", "sync", "status", "--output=json", "pip-install"]).ok().stdout_is(
        r#"{
  "unit_name": "pip-install",
  "status": "pending",
  "is_ready": false,
  "dependencies": [
    {
      "depends_on": "apt-install",
      "required_status": "completed",
      "current_status": "completed",
      "is_satisfied": true
    },
    {
      "depends_on": "git-clone",
      "required_status": "completed",
      "current_status": "",
      "is_satisfied": false
    }
  ]
}
"#,
    );
    // A unit nobody mentioned, as Coder's troubleshooting guide shows it.
    coder(&sb, &["exp", "sync", "status", "doesnotexist"]).ok().stdout_is(
        "Unit: doesnotexist\nStatus: not registered\nReady: true\n\nDependencies:\nNo dependencies found\n",
    );
    coder(&sb, &["exp", "sync", "status", "doesnotexist", "-ojson"]).ok().stdout_is(
        "{\n  \"unit_name\": \"doesnotexist\",\n  \"status\": \"\",\n  \"is_ready\": true,\n  \"dependencies\": null\n}\n",
    );
}

#[test]
fn list_shows_registered_units_only() {
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    coder(&sb, &["exp", "sync", "list"]).ok().stdout_is("No units registered\n");
    coder(&sb, &["exp", "sync", "list", "-o", "json"]).ok().stdout_is("null\n");
    // env-setup is only a dependency: a placeholder, which Coder does not list.
    coder(&sb, &["exp", "sync", "want", "ide-configure", "env-setup"]).ok();
    coder(&sb, &["exp", "sync", "start", "git-clone"]).ok();
    coder(&sb, &["exp", "sync", "complete", "git-clone"]).ok();
    coder(&sb, &["exp", "sync", "start", "agent"]).ok();
    coder(&sb, &["exp", "sync", "list"]).ok().stdout_is(
        "\
UNIT           STATUS     READY  
agent          started    true   
git-clone      completed  true   
ide-configure  pending    false  
",
    );
    coder(&sb, &["exp", "sync", "list", "--output", "json"]).ok().stdout_is(
        r#"[
  {
    "unit_name": "agent",
    "status": "started",
    "is_ready": true
  },
  {
    "unit_name": "git-clone",
    "status": "completed",
    "is_ready": true
  },
  {
    "unit_name": "ide-configure",
    "status": "pending",
    "is_ready": false
  }
]
"#,
    );
    // The native list still shows the placeholder.
    sb.run(&["list"]).ok().stdout_has("env-setup");
}

#[test]
fn a_ready_unit_shows_as_completed() {
    // `ready` is unitsync's (a service that runs and satisfies its
    // dependents); Coder has no such status, and its scripts proceed as
    // after a completed unit.
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    coder(&sb, &["exp", "sync", "want", "app", "db"]).ok();
    coder(&sb, &["exp", "sync", "start", "db"]).ok();
    let answer = raw_exchange(&sb.socket(), &[br#"{"op":"ready","unit":"db"}"#]);
    assert!(answer[0].contains(r#""result":"ready""#), "{answer:?}");
    coder(&sb, &["exp", "sync", "list"]).ok().stdout_is(
        "UNIT  STATUS     READY  \napp   pending    true   \ndb    completed  true   \n",
    );
    coder(&sb, &["exp", "sync", "status", "app"])
        .ok()
        .stdout_has("db          completed        completed       true       \n");
    coder(&sb, &["exp", "sync", "status", "db", "-o", "json"])
        .ok()
        .stdout_has("\"status\": \"completed\",\n  \"is_ready\": true,");
    // Unlike a completed unit, it still runs: it cannot start again.
    coder(&sb, &["exp", "sync", "start", "db"])
        .code(1)
        .stderr_has("start unit failed: cannot start unit \"db\": checking status for unit \"db\": same status already set");
}

#[test]
fn timeout_takes_go_durations_and_zero_or_less_waits_forever() {
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    coder(&sb, &["exp", "sync", "want", "app", "db"]).ok();
    coder(&sb, &["exp", "sync", "start", "app", "--timeout", "500us"])
        .code(1)
        .stderr_has(&coder_error("start", "timeout waiting for dependencies of unit 'app'"));
    // A negative timeout is no deadline: the start waits until db completes.
    // (Another unit, so that the wait seen is this start's, not the one
    // that timed out above.)
    coder(&sb, &["exp", "sync", "want", "web", "db"]).ok();
    let mut cmd = sb.cmd(&["exp", "sync", "start", "web", "--timeout", "-1s"]);
    cmd.arg0("coder").stdout(Stdio::piped()).stderr(Stdio::piped());
    let start = cmd.spawn().expect("coder runs");
    until_waiting(&sb, "web");
    coder(&sb, &["exp", "sync", "start", "db"]).ok();
    coder(&sb, &["exp", "sync", "complete", "db"]).ok();
    let out = start.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .ends_with("Unit \"web\" finished waiting for dependencies: [db]\n"),
        "{out:?}"
    );
}

#[test]
fn every_error_exits_1_with_coders_report() {
    let sb = Sandbox::new();
    // Unreachable.
    let out = coder(&sb, &["exp", "sync", "ping"]);
    out.code(1).stderr_has(&coder_error(
        "ping",
        &format!(
            "connect to agent socket: cannot reach the server at {}: no such socket; \
             is the server running? start it with 'unitsync serve'",
            sb.socket().display()
        ),
    ));
    assert_eq!(out.stdout, "", "{out}");
    coder(&sb, &["exp", "sync", "start", "a"])
        .code(1)
        .stderr_has("error: connect to agent socket: cannot reach the server at");

    let _server = sb.serve(&[]);
    // A cycle.
    coder(&sb, &["exp", "sync", "want", "a", "b"]).ok();
    coder(&sb, &["exp", "sync", "want", "b", "a"])
        .code(1)
        .stderr_has(&coder_error("want", "declare dependency failed: cycle: b -> a -> b"));
    // A timeout, then what it waited for.
    let out = coder(&sb, &["exp", "sync", "start", "a", "--timeout", "200ms"]);
    out.code(1)
        .stdout_is("Unit \"a\" is waiting for dependencies to be satisfied: [b]\n")
        .stderr_has(&coder_error("start", "timeout waiting for dependencies of unit 'a'"))
        .stderr_has("unitsync: a: timed out after 200ms waiting for b (never registered");
    // Refused by the server, in the words of Coder's agent.
    coder(&sb, &["exp", "sync", "start", "c"]).ok();
    coder(&sb, &["exp", "sync", "start", "c"]).code(1).stderr_is(&coder_error(
        "start",
        "start unit failed: cannot start unit \"c\": checking status for unit \"c\": \
         same status already set",
    ));
    coder(&sb, &["exp", "sync", "complete", "c"]).ok();
    coder(&sb, &["exp", "sync", "complete", "c"]).code(1).stderr_is(&coder_error(
        "complete",
        "complete unit failed: cannot complete unit \"c\": checking status for unit \"c\": \
         same status already set",
    ));
    coder(&sb, &["exp", "sync", "status", "has space"])
        .code(1)
        .stderr_has("error: get status failed: invalid unit name \"has space\"");
    // Bad usage exits 1 too, as Coder's does.
    coder(&sb, &["exp", "sync", "start"])
        .code(1)
        .stderr_has(&coder_error("start", "exactly one unit name is required"));
    coder(&sb, &["exp", "sync", "want", "a"]).code(1).stderr_has(&coder_error(
        "want",
        "at least two arguments are required: unit and one or more depends-on",
    ));
    // An empty name, refused before it reaches the server.
    coder(&sb, &["exp", "sync", "complete", ""]).code(1).stderr_is(&coder_error(
        "complete",
        "complete unit failed: cannot complete unit \"\": updating status for unit \"\": \
         unit name is required",
    ));
    // A flag error is one line, naming every argument, as serpent says it.
    coder(&sb, &["exp", "sync", "list", "-o", "yaml"]).code(1).stderr_is(
        "parsing flags ([exp sync list -o yaml]) for \"coder exp sync list\": invalid argument \
         \"yaml\" for \"-o, --output\" flag: invalid choice: yaml, should be one of [table json]\n",
    );
    coder(&sb, &["exp", "sync", "start", "a", "--timeout", "soon"]).code(1).stderr_is(
        "parsing flags ([exp sync start a --timeout soon]) for \"coder exp sync start\": \
         invalid argument \"soon\" for \"--timeout\" flag: time: invalid duration \"soon\"\n",
    );
    coder(&sb, &["exp", "sync", "complete", "a", "--bogus"]).code(1).stderr_is(
        "parsing flags ([exp sync complete a --bogus]) for \"coder exp sync complete\": \
         unknown flag: --bogus\n",
    );
    coder(&sb, &["exp", "sync", "frob"]).code(1).stderr_is(
        "Encountered an error running \"coder exp sync\", see \"coder exp sync --help\" for \
         more information\nerror: unrecognized subcommand \"frob\"\n",
    );
    coder_with(&sb, &["exp", "sync", "start", "d"], &[("UNITSYNC_POLL", "0")])
        .code(1)
        .stderr_has("error: $UNITSYNC_POLL must be more than 0");
}

#[test]
fn other_coder_commands_are_refused_clearly() {
    let sb = Sandbox::new();
    for args in [&[][..], &["list"], &["exp", "foo"], &["ssh", "dev"], &["exp"]] {
        let out = coder(&sb, args);
        let typed = ["coder"].iter().chain(args).copied().collect::<Vec<_>>().join(" ");
        out.code(1)
            .stderr_has(&format!("error: '{typed}' is not available: this 'coder' is unitsync"));
        out.stderr_has(
            "which provides only 'coder exp sync' (ping, want, start, complete, status, list)",
        );
        assert_eq!(out.stdout, "", "{out}");
    }
}

#[test]
fn help_goes_to_stdout_and_succeeds() {
    let sb = Sandbox::new();
    // Outside `coder exp sync`: what this `coder` is.
    for args in [&["--help"][..], &["-h"], &["list", "--help"]] {
        let out = coder(&sb, args);
        out.ok().stdout_has("Usage: coder exp sync COMMAND").stdout_has("only\n'coder exp sync'");
        assert_eq!(out.stderr, "", "{out}");
    }
    // Inside: Coder's page for the command.
    for (args, usage) in [
        (&["exp", "sync"][..], "coder exp sync [flags]"),
        (&["exp", "sync", "--help"], "coder exp sync [flags]"),
        (&["exp", "sync", "start", "-h"], "coder exp sync start [flags] <unit>"),
        (
            &["exp", "sync", "want", "--help"],
            "coder exp sync want <unit> <depends-on> [depends-on...]",
        ),
    ] {
        let out = coder(&sb, args);
        out.ok().stdout_has(&format!("\nUSAGE:\n  {usage}\n"));
        assert_eq!(out.stderr, "", "{out}");
    }
}

#[test]
fn socket_path_flag_then_coders_variable_then_ours() {
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    let real = sb.socket().display().to_string();
    let nowhere = sb.path("nowhere.sock").display().to_string();
    let ours_elsewhere = [("UNITSYNC_SOCKET", nowhere.as_str())];
    coder_with(&sb, &["exp", "sync", "ping"], &ours_elsewhere).code(1).stderr_has("nowhere.sock");
    coder_with(&sb, &["exp", "sync", "--socket-path", &real, "ping"], &ours_elsewhere)
        .ok()
        .stdout_is("Success\n");
    let coders = [("UNITSYNC_SOCKET", nowhere.as_str()), ("CODER_AGENT_SOCKET_PATH", &real)];
    coder_with(&sb, &["exp", "sync", "ping"], &coders).ok().stdout_is("Success\n");
    // The flag beats Coder's variable.
    let coders_elsewhere = [("CODER_AGENT_SOCKET_PATH", nowhere.as_str())];
    coder_with(&sb, &["exp", "sync", "ping"], &coders_elsewhere).code(1).stderr_has("nowhere.sock");
    coder_with(&sb, &["exp", "sync", "ping", &format!("--socket-path={real}")], &coders_elsewhere)
        .ok()
        .stdout_is("Success\n");
    // An empty flag means the default path, unitsync's own rules, not the variable.
    coder_with(&sb, &["exp", "sync", "ping", "--socket-path", ""], &coders_elsewhere)
        .ok()
        .stdout_is("Success\n");
}

#[test]
fn unitsync_optional_turns_a_missing_server_into_a_warning() {
    let sb = Sandbox::new();
    let out = coder_with(&sb, &["exp", "sync", "start", "a"], &[("UNITSYNC_OPTIONAL", "1")]);
    out.ok().stdout_is("").stderr_has("unitsync: warning: cannot reach the server at");
    out.stderr_has("continuing without coordination ($UNITSYNC_OPTIONAL=1)");
}

// The seed documents' examples, each run as written. Only the real work
// (cloning, apt, pip, claude, code-server) is replaced by something harmless
// that still proves the order: it reads what the dependency wrote.

pub const CLAUDE_CODE: &str = r#"#!/bin/bash
set -euo pipefail

UNIT_NAME="claude-code"
DEPENDENCIES="git-clone"
REPO_DIR="/workspace/repo"

# Track if sync started successfully
SYNC_STARTED=0

# Declare dependencies
if [ -n "$DEPENDENCIES" ]; then
  if command -v coder > /dev/null 2>&1; then
    IFS=',' read -ra DEPS <<< "$DEPENDENCIES"
    for dep in "${DEPS[@]}"; do
      dep=$(echo "$dep" | xargs)
      if [ -n "$dep" ]; then
        echo "Waiting for dependency: $dep"
        coder exp sync want "$UNIT_NAME" "$dep" > /dev/null 2>&1 || \
          echo "Warning: Failed to register dependency $dep, continuing..."
      fi
    done
  else
    echo "Coder CLI not found, running without sync coordination"
  fi
fi

# Start sync and track success
if [ -n "$UNIT_NAME" ]; then
  if command -v coder > /dev/null 2>&1; then
    if coder exp sync start "$UNIT_NAME" > /dev/null 2>&1; then
      SYNC_STARTED=1
      echo "Started sync: $UNIT_NAME"
    else
      echo "Sync start failed or not available, continuing without sync..."
    fi
  fi
fi

# Ensure completion on exit (even if script fails)
cleanup_sync() {
  if [ "$SYNC_STARTED" -eq 1 ] && [ -n "$UNIT_NAME" ]; then
    echo "Completing sync: $UNIT_NAME"
    coder exp sync complete "$UNIT_NAME" > /dev/null 2>&1 || \
      echo "Warning: Sync complete failed, but continuing..."
  fi
}
trap cleanup_sync EXIT

# Now do the actual work
echo "Repository cloned, starting Claude Code"
cat repo/README > claude.out
"#;

/// What the git-clone module does: clone, then its post_clone_script. The
/// clone lasts until `dependent` waits for it, so that it has to.
fn git_clone(dependent: &str) -> String {
    format!(
        "{UNTIL_WAITING_SH}until_waiting {dependent}
mkdir -p repo && echo \"cloned\" > repo/README && echo \"flask\" > repo/requirements.txt
coder exp sync start git-clone && coder exp sync complete git-clone
"
    )
}

#[test]
fn seed_claude_code_waits_for_git_clone_and_completes_on_exit() {
    let sb = Sandbox::new();
    let server = sb.serve(&[]);
    fs::write(sb.path("claude.sh"), CLAUDE_CODE).unwrap();
    fs::write(sb.path("git-clone.sh"), git_clone("claude-code")).unwrap();
    let out = sb.shell(
        "bash",
        "bash claude.sh > claude.log 2>&1 & c=$!
         bash git-clone.sh > git-clone.log 2>&1; g=$?
         wait $c; echo \"claude=$? git-clone=$g\"",
    );
    out.ok().stdout_is("claude=0 git-clone=0\n");
    let log = fs::read_to_string(sb.path("claude.log")).unwrap();
    assert_eq!(
        log,
        "Waiting for dependency: git-clone\nStarted sync: claude-code\n\
         Repository cloned, starting Claude Code\nCompleting sync: claude-code\n"
    );
    assert_eq!(fs::read_to_string(sb.path("claude.out")).unwrap(), "cloned\n");
    let slog = server.log();
    assert!(at(&slog, "claude-code started") >= at(&slog, "git-clone completed"), "{slog}");
    assert!(at(&slog, "claude-code completed") >= at(&slog, "claude-code started"), "{slog}");
}

#[test]
fn seed_claude_code_degrades_gracefully_without_a_server() {
    let sb = Sandbox::new();
    fs::create_dir(sb.path("repo")).unwrap();
    fs::write(sb.path("repo/README"), "cloned\n").unwrap();
    fs::write(sb.path("claude.sh"), CLAUDE_CODE).unwrap();
    let out = sb.shell("bash", "bash claude.sh");
    out.ok().stdout_is(
        "Waiting for dependency: git-clone\n\
         Warning: Failed to register dependency git-clone, continuing...\n\
         Sync start failed or not available, continuing without sync...\n\
         Repository cloned, starting Claude Code\n",
    );
    // Blocked, its start would wait for its timeout: five minutes.
    assert!(out.elapsed < PATIENCE, "graceful degradation must not block{out}");
    assert_eq!(fs::read_to_string(sb.path("claude.out")).unwrap(), "cloned\n");
}

const QUICK_START: &str = r#"#!/bin/bash
UNIT_NAME="my-setup"

# Declare dependency on git-clone
coder exp sync want "$UNIT_NAME" "git-clone"

# Wait for dependencies and mark as started
coder exp sync start "$UNIT_NAME"

# Do your work here
echo "Running after git-clone completes"

# Signal completion
coder exp sync complete "$UNIT_NAME"
"#;

#[test]
fn seed_quick_start_under_every_shell() {
    for shell in SHELLS {
        let sb = Sandbox::new();
        let server = sb.serve(&[]);
        fs::write(sb.path("quick.sh"), QUICK_START).unwrap();
        fs::write(sb.path("git-clone.sh"), git_clone("my-setup")).unwrap();
        let out = sb.shell(
            shell,
            &format!("{shell} git-clone.sh > git-clone.log 2>&1 & {shell} quick.sh; wait"),
        );
        out.ok().stdout_is(
            "Unit \"my-setup\" declared dependencies: [git-clone]\n\
             Unit \"my-setup\" is waiting for dependencies to be satisfied: [git-clone]\n\
             Unit \"my-setup\" finished waiting for dependencies: [git-clone]\n\
             Running after git-clone completes\n\
             Success\n",
        );
        let log = server.log();
        assert!(at(&log, "my-setup started") >= at(&log, "git-clone completed"), "{shell}: {log}");
        assert!(at(&log, "my-setup completed") > at(&log, "my-setup started"), "{shell}: {log}");
    }
}

const MULTIPLE_DEPENDENCIES: &str = r#"#!/bin/bash
UNIT_NAME="my-app"
DEPENDENCIES="git-clone,env-setup,database-migration"

# Declare all dependencies
if [ -n "$DEPENDENCIES" ]; then
  IFS=',' read -ra DEPS <<< "$DEPENDENCIES"
  for dep in "${DEPS[@]}"; do
    dep=$(echo "$dep" | xargs)  # Trim whitespace
    if [ -n "$dep" ]; then
      coder exp sync want "$UNIT_NAME" "$dep"
    fi
  done
fi

# Wait for all dependencies
coder exp sync start "$UNIT_NAME"

# Your work here
echo "All dependencies satisfied, starting application"

# Signal completion
coder exp sync complete "$UNIT_NAME"
"#;

#[test]
fn seed_multiple_dependencies_from_a_comma_list() {
    let sb = Sandbox::new();
    let server = sb.serve(&[]);
    fs::write(sb.path("my-app.sh"), MULTIPLE_DEPENDENCIES).unwrap();
    // Each dependency completes once my-app waits for all three.
    let script = UNTIL_WAITING_SH.to_owned()
        + "for dep in git-clone env-setup database-migration; do
             ( coder exp sync start $dep >/dev/null
               until_waiting my-app
               coder exp sync complete $dep >/dev/null ) &
           done
           bash my-app.sh; wait";
    let out = sb.shell("bash", &script);
    out.ok().stdout_is(
        "Unit \"my-app\" declared dependencies: [git-clone]\n\
         Unit \"my-app\" declared dependencies: [env-setup]\n\
         Unit \"my-app\" declared dependencies: [database-migration]\n\
         Unit \"my-app\" is waiting for dependencies to be satisfied: [database-migration, env-setup, git-clone]\n\
         Unit \"my-app\" finished waiting for dependencies: [database-migration, env-setup, git-clone]\n\
         All dependencies satisfied, starting application\n\
         Success\n",
    );
    let log = server.log();
    for dep in ["git-clone", "env-setup", "database-migration"] {
        assert!(at(&log, "my-app started") >= at(&log, &format!("{dep} completed")), "{log}");
    }
}

const MIGRATION_AFTER: &str = r#"#!/bin/bash
set -euo pipefail

SYNC_STARTED=0
trap 'if [ $SYNC_STARTED -eq 1 ]; then coder exp sync complete "ide-setup"; fi' EXIT

coder exp sync want "ide-setup" "git-clone"

if coder exp sync start "ide-setup"; then
  SYNC_STARTED=1
fi

cat repo/README > ide-setup.out
"#;

#[test]
fn seed_migration_after_replaces_the_sleep() {
    let sb = Sandbox::new();
    let server = sb.serve(&[]);
    fs::write(sb.path("ide-setup.sh"), MIGRATION_AFTER).unwrap();
    fs::write(sb.path("git-clone.sh"), git_clone("ide-setup")).unwrap();
    let out = sb.shell("bash", "bash git-clone.sh > git-clone.log 2>&1 & bash ide-setup.sh; wait");
    out.ok().stdout_is(
        "Unit \"ide-setup\" declared dependencies: [git-clone]\n\
         Unit \"ide-setup\" is waiting for dependencies to be satisfied: [git-clone]\n\
         Unit \"ide-setup\" finished waiting for dependencies: [git-clone]\n\
         Success\n",
    );
    assert_eq!(fs::read_to_string(sb.path("ide-setup.out")).unwrap(), "cloned\n");
    let log = server.log();
    assert!(at(&log, "ide-setup started") >= at(&log, "git-clone completed"), "{log}");
    assert!(at(&log, "ide-setup completed") > at(&log, "ide-setup started"), "{log}");
}

/// The template's `apt-install` coder_script; apt-get is replaced by
/// waiting until pip-install waits for it (`until_waiting`, prepended).
const APT_INSTALL: &str = r#"
    trap 'coder exp sync complete apt-install' EXIT
    coder exp sync start apt-install

    until_waiting pip-install
    echo "python-dev-is-python3" > apt.out
"#;

/// The template's `pip-install` coder_script; the venv and pip are replaced
/// by reading what git-clone and apt-install left.
const PIP_INSTALL: &str = r#"
    trap 'coder exp sync complete pip-install' EXIT
    coder exp sync want pip-install git-clone apt-install
    coder exp sync start pip-install

    cd repo
    cat requirements.txt ../apt.out > ../pip.out
"#;

#[test]
fn seed_template_scripts_run_concurrently_in_order_under_every_shell() {
    for shell in SHELLS {
        let sb = Sandbox::new();
        let server = sb.serve(&[]);
        fs::write(sb.path("apt-install.sh"), UNTIL_WAITING_SH.to_owned() + APT_INSTALL).unwrap();
        fs::write(sb.path("pip-install.sh"), PIP_INSTALL).unwrap();
        fs::write(sb.path("git-clone.sh"), git_clone("pip-install")).unwrap();
        // The agent starts every script at once, pip-install first to make
        // it wait for both.
        let out = sb.shell(
            shell,
            &format!(
                "{shell} pip-install.sh > pip.log 2>&1 & p=$!
                 {shell} apt-install.sh > apt.log 2>&1 & a=$!
                 {shell} git-clone.sh > git.log 2>&1 & g=$!
                 wait $p; rp=$?; wait $a; ra=$?; wait $g; rg=$?
                 echo \"pip=$rp apt=$ra git=$rg\""
            ),
        );
        out.ok().stdout_is("pip=0 apt=0 git=0\n");
        assert_eq!(
            fs::read_to_string(sb.path("pip.out")).unwrap(),
            "flask\npython-dev-is-python3\n",
            "{shell}"
        );
        let pip_log = fs::read_to_string(sb.path("pip.log")).unwrap();
        assert!(
            pip_log.ends_with(
                "Unit \"pip-install\" finished waiting for dependencies: [apt-install, git-clone]\nSuccess\n"
            ),
            "{shell}: {pip_log}"
        );
        let log = server.log();
        let pip = at(&log, "pip-install started");
        assert!(pip >= at(&log, "git-clone completed"), "{shell}: {log}");
        assert!(pip >= at(&log, "apt-install completed"), "{shell}: {log}");
        for unit in ["apt-install", "git-clone", "pip-install"] {
            at(&log, &format!("{unit} completed"));
        }
        let list = coder(&sb, &["exp", "sync", "list"]);
        list.ok().stdout_is(
            "\
UNIT         STATUS     READY  
apt-install  completed  true   
git-clone    completed  true   
pip-install  completed  true   
",
        );
    }
}

#[test]
fn seed_best_practice_snippets_under_every_shell() {
    for shell in SHELLS {
        let sb = Sandbox::new();
        let server = sb.serve(&[]);
        // "Handle missing CLI gracefully", "Always complete units that start
        // successfully", "Document dependencies", the long-operation timeout,
        // then "Testing Sync Availability".
        let out = sb.shell(
            shell,
            r#"UNIT_NAME="env-setup"
if command -v coder > /dev/null 2>&1; then
  coder exp sync start "$UNIT_NAME"
else
  echo "Sync not available, continuing without coordination"
fi
coder exp sync complete "$UNIT_NAME"

UNIT_NAME="git-clone"
(
SYNC_STARTED=0
if coder exp sync start "$UNIT_NAME"; then
  SYNC_STARTED=1
fi

cleanup_sync() {
  if [ "$SYNC_STARTED" -eq 1 ]; then
    coder exp sync complete "$UNIT_NAME"
  fi
}
trap cleanup_sync EXIT
)

coder exp sync want "ide-setup" "git-clone"
coder exp sync want "ide-setup" "env-setup"
coder exp sync start "long-operation" --timeout 10m

# Test connectivity
coder exp sync ping

# List all units
coder exp sync list

# Check specific unit status
coder exp sync status git-clone
"#,
        );
        out.ok().stdout_is(
            "\
Unit \"env-setup\" started with no dependencies
Success
Unit \"git-clone\" started with no dependencies
Success
Unit \"ide-setup\" declared dependencies: [git-clone]
Unit \"ide-setup\" declared dependencies: [env-setup]
Unit \"long-operation\" started with no dependencies
Success
UNIT            STATUS     READY  
env-setup       completed  true   
git-clone       completed  true   
ide-setup       pending    true   
long-operation  started    true   
Unit: git-clone
Status: completed
Ready: true

Dependencies:
No dependencies found
",
        );
        let log = server.log();
        assert!(at(&log, "git-clone completed") > at(&log, "git-clone started"), "{log}");
    }
}
