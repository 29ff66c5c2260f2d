//! `unitsync ready`: a started unit that keeps running releases its
//! dependents; refusals say what to do; `$UNITSYNC_UNIT` names the unit;
//! `status --json` shows `startable` and the ready time, which `complete`
//! keeps; `--state` keeps it too.

use std::process::Stdio;

use crate::util::*;

#[test]
fn ready_releases_a_waiting_dependent_while_the_unit_runs() {
    let sb = Sandbox::new();
    let server = sb.serve(&[]);
    sb.run(&["want", "b", "a"]).ok();
    sb.run(&["start", "a"]).ok();
    let mut waiting = sb.cmd(&["start", "b", "--timeout", "60s", "--poll", "10ms"]);
    let mut waiting = waiting.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    eventually("b waits for a", || {
        !sb.run(&["status", "b", "--json"]).stdout.contains("\"waiting_since\": null")
    });
    sb.run(&["ready", "a"]).ok();
    let status = waiting.wait().unwrap();
    assert!(status.success(), "start b failed after a became ready; log:\n{}", server.log());
    assert!(server.log().contains("a ready (after "), "{}", server.log());
    let a = sb.run(&["status", "a", "--json"]);
    a.ok().stdout_has("\"status\": \"ready\"").stdout_has("\"startable\": true");
    ready_at(&a);
    sb.run(&["status", "b"]).ok().stdout_has("status:     started");
    // Repeating it changes nothing; the unit still ends as any other, and
    // keeps when it became ready.
    sb.run(&["ready", "a"]).ok();
    sb.run(&["complete", "a"]).ok();
    let done = sb.run(&["status", "a", "--json"]);
    done.ok().stdout_has("\"status\": \"completed\"");
    assert_eq!(ready_at(&done), ready_at(&a), "{done}");
}

/// The `ready_at` line of `status --json`, which must say a time.
fn ready_at(out: &Output) -> &str {
    let line = out.stdout.lines().find(|l| l.contains("\"ready_at\": ")).unwrap_or_default();
    assert!(!line.is_empty() && !line.contains("null"), "no ready time:{out}");
    line
}

#[test]
fn ready_of_a_unit_not_running_exits_1_saying_why() {
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    sb.run(&["want", "b"]).ok();
    sb.run(&["ready", "b"])
        .code(1)
        .stderr_is("unitsync: b is pending: start it first, then mark it ready\n");
    sb.run(&["complete", "b"]).ok();
    sb.run(&["ready", "b"])
        .code(1)
        .stderr_has("b already completed, so it cannot become ready: start it again first");
}

#[test]
fn ready_without_a_unit_takes_unitsync_unit() {
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    sb.run(&["start", "db"]).ok();
    let mut cmd = sb.cmd(&["ready"]);
    cmd.env("UNITSYNC_UNIT", "db");
    output("UNITSYNC_UNIT=db unitsync ready".into(), cmd).ok();
    sb.run(&["status", "db"]).ok().stdout_has("status:     ready");
    sb.run(&["ready"]).code(2).stderr_has("missing UNIT: name it, or set $UNITSYNC_UNIT");
}

#[test]
fn a_restarted_server_keeps_a_ready_unit() {
    let sb = Sandbox::new();
    let state = sb.path("state");
    let state = state.to_string_lossy().into_owned();
    let mut server = sb.serve(&["--state", &state]);
    sb.run(&["start", "db"]).ok();
    sb.run(&["ready", "db"]).ok();
    server.stop_with("KILL");
    let _server = sb.serve(&["--state", &state]);
    let db = sb.run(&["status", "db", "--json"]);
    db.ok().stdout_has("\"status\": \"ready\"");
    assert!(!db.stdout.contains("\"ready_at\": null"), "{db}");
    sb.run(&["want", "web", "db"]).ok();
    sb.run(&["start", "web", "--timeout", "10s"]).ok();
}
