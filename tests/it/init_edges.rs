//! Edges of `up` and `run` as a container's init (SPEC §13): durations
//! that overflow the clock, probes with deadlines, strict headers, and
//! results that belong to the server that accepted their start.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use crate::util::*;

const HUGE: &str = "9223372036854775807";

/// Writes an executable script `name` into `dir`.
fn script(dir: &std::path::Path, name: &str, text: &str) {
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn a_duration_past_the_clock_is_a_usage_error_naming_its_flag() {
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    let dir = sb.path("d");
    fs::create_dir(&dir).unwrap();
    let dir = dir.to_string_lossy();
    let too_long = format!("duration \"{HUGE}\" is too long: at most 100 years");
    for (flag, args) in [
        ("--timeout", &["start", "a", "--timeout", HUGE][..]),
        ("--poll", &["start", "a", "--poll", HUGE]),
        ("--timeout", &["wait", "a", "--timeout", HUGE]),
        ("--timeout", &["run", "a", "--timeout", HUGE, "--", "true"]),
        (
            "--ready-timeout",
            &["run", "a", "--ready", "tcp:1", "--ready-timeout", HUGE, "--", "true"],
        ),
        ("--stop-timeout", &["run", "a", "--ready", "tcp:1", "--stop-timeout", HUGE, "--", "true"]),
        ("--connect-timeout", &["--connect-timeout", HUGE, "ping"]),
        ("--grace", &["up", "--dir", &dir, "--grace", HUGE]),
        ("--stop-timeout", &["up", "--dir", &dir, "--stop-timeout", HUGE]),
        ("--script-timeout", &["up", "--dir", &dir, "--script-timeout", HUGE]),
    ] {
        sb.run(args).code(2).stderr_has(&format!("unitsync: {flag}: {too_long}"));
    }
    // Nothing was started or registered by any of them.
    sb.run(&["status", "a"]).ok().stdout_has("status:     not registered");
    // The same bound for the environment's defaults and for headers.
    let mut cmd = sb.cmd(&["start", "a"]);
    cmd.env("UNITSYNC_POLL", HUGE);
    let out = output("UNITSYNC_POLL=HUGE unitsync start a".into(), cmd);
    out.code(2).stderr_has(&format!("$UNITSYNC_POLL: {too_long}"));
    script(
        std::path::Path::new(&*dir),
        "10-a.sh",
        &format!("#!/bin/sh\n# unitsync: ready=tcp:1 ready-timeout={HUGE}\nexit 0\n"),
    );
    sb.run(&["up", "--dir", &dir]).code(1).stderr_has(&format!("ready-timeout=: {too_long}"));
    // The longest one accepted waits like any other.
    sb.run(&["start", "c", "--timeout", "876600h", "--poll", "876600h"]).ok();
    sb.run(&["run", "b", "--timeout", "876600h", "--", "true"]).ok();
}
