//! Edges of `up` and `run` as a container's init (README.md, "As a container's init"): durations
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

/// Pids of live (not zombie) `sleep TIME` processes (not the `run` or `sh`
/// whose arguments only mention it).
fn sleeping(time: &str) -> Vec<String> {
    let token = format!("sleep\0{time}\0");
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.parse::<u32>().is_err() || proc_state(&name).is_some_and(|(s, _)| s == "Z") {
            continue;
        }
        let cmdline = fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(&token) {
            found.push(name);
        }
    }
    found
}

/// A `sleep` argument no other test uses, to find its processes by.
fn unique_sleep(tag: u32) -> String {
    format!("{}.{tag}{}", 7000 + tag, std::process::id())
}

#[test]
fn a_probe_still_running_at_the_ready_deadline_is_killed_with_its_group() {
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    let probe = unique_sleep(1);
    // A pipeline, so that the probe's shell has children of its own.
    let ready = format!("exec:sleep {probe} | cat");
    let out =
        sb.run(&["run", "x", "--ready", &ready, "--ready-timeout", "1s", "--", "sleep", "300"]);
    out.code(4).stderr_has("x: marked failed: not ready within 1.00s");
    eventually("the probe is gone with run", || sleeping(&probe).is_empty());
}

#[test]
fn a_hung_probe_is_killed_after_the_probe_timeout_and_the_next_one_runs() {
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    let hang = unique_sleep(2);
    let mark = sb.path("probed");
    let mark = mark.to_string_lossy();
    // The first probe hangs; the second, once the first is killed, passes.
    let ready = format!("exec:test -e {mark} && exit 0; touch {mark}; sleep {hang} | cat");
    let mut run = sb
        .cmd(&["run", "x", "--ready", &ready, "--probe-timeout", "300ms", "--", "sleep", "300"])
        .spawn()
        .unwrap();
    eventually("x is ready", || json_status(&sb, "x").contains("\"status\": \"ready\""));
    eventually("the hung probe is gone", || sleeping(&hang).is_empty());
    send_signal(run.id(), "TERM");
    wait_for_exit(&mut run, PATIENCE, || "run did not stop".into());
    // The same from an `up` header.
    let sb = Sandbox::new();
    let dir = sb.path("d");
    fs::create_dir(&dir).unwrap();
    let hang = unique_sleep(3);
    let mark = sb.path("probed");
    let mark = mark.to_string_lossy();
    script(
        &dir,
        "db.sh",
        &format!(
            "#!/bin/sh\n# unitsync: ready=\"exec:test -e {mark} && exit 0; touch {mark}; sleep {hang} | cat\"\n# unitsync: probe-timeout=300ms ready-timeout=60s\nexec sleep 300\n"
        ),
    );
    let out = sb.run(&["up", "--dir", &dir.to_string_lossy(), "--", "unitsync", "wait", "db"]);
    out.ok();
    assert!(sleeping(&hang).is_empty(), "the hung probe outlived up{out}");
}

#[test]
fn every_dir_runs_and_links_that_lead_nowhere_count_as_failed() {
    let sb = Sandbox::new();
    let (one, two) = (sb.path("one"), sb.path("two"));
    fs::create_dir(&one).unwrap();
    fs::create_dir(&two).unwrap();
    script(&one, "10-db.sh", "#!/bin/sh\necho db up\n");
    script(&two, "app.v2.sh", "#!/bin/sh\n# unitsync: after=10-db\necho app up\n");
    let (one, two) = (one.to_string_lossy(), two.to_string_lossy());
    // Both directories run; the unit is named without the last extension.
    let out = sb.run(&["up", "--dir", &one, "--dir", &two, "--", "unitsync", "wait", "app.v2"]);
    out.ok().stdout_has("10-db.sh  | db up").stdout_has("app.v2.sh | app up");
    // A bare name next to a numbered script gets it as its did-you-mean.
    script(&sb.path("two"), "app.v2.sh", "#!/bin/sh\n# unitsync: after=db\necho app up\n");
    let out = sb.run(&["up", "--dir", &one, "--dir", &two, "--script-timeout", "1s"]);
    out.code(1).stderr_has(&format!(
        "warning: {two}/app.v2.sh: no script provides db (did you mean 10-db? it must come from another process, or app.v2 will wait for it)"
    ));
    // A dangling link and a loop are reported and fail, like a file that
    // is not executable; the rest still runs.
    fs::remove_file(sb.path("two/app.v2.sh")).unwrap();
    std::os::unix::fs::symlink("nowhere", sb.path("two/dangling.sh")).unwrap();
    std::os::unix::fs::symlink("loop-b", sb.path("two/loop-a")).unwrap();
    std::os::unix::fs::symlink("loop-a", sb.path("two/loop-b")).unwrap();
    let out = sb.run(&["up", "--dir", &one, "--dir", &two]);
    out.code(1)
        .stdout_has("10-db.sh    | db up")
        .stderr_has(&format!(
            "up: {two}/dangling.sh: a dangling symlink to nowhere; fix or remove the link; counted as failed"
        ))
        .stderr_has(&format!("up: {two}/loop-a: a symlink loop; fix or remove the link; counted as failed"))
        .stderr_has(&format!("up: {two}/loop-b: a symlink loop"))
        .stderr_has("10-db completed");
}

#[test]
fn header_mistakes_are_refused_before_anything_runs() {
    let sb = Sandbox::new();
    let dir = sb.path("d");
    fs::create_dir(&dir).unwrap();
    let ran = sb.path("ran");
    let d = dir.to_string_lossy();
    for (head, error) in [
        ("# unitsync: unit=x unit=y", "header key \"unit\" is given twice; give it once"),
        (
            "# unitsync: ready=tcp:1\n# unitsync: ready=tcp:2",
            "header key \"ready\" is given twice; give it once",
        ),
        ("# UNITSYNC: after=a", "'# UNITSYNC:' is not a header: write '# unitsync:' in lower case"),
    ] {
        script(&dir, "a.sh", &format!("#!/bin/sh\n{head}\ntouch {}\n", ran.display()));
        let out = sb.run(&["up", "--dir", &d, "--", "touch", &ran.to_string_lossy()]);
        out.code(1).stderr_has(&format!("up: {d}/a.sh: {error}"));
        assert!(!ran.exists(), "a script or CMD ran despite {head:?}{out}");
    }
}

/// The instance id a server answers with.
fn instance_of(sb: &Sandbox) -> String {
    let pong = &raw_exchange(&sb.socket(), &[br#"{"op":"ping"}"#])[0];
    let value: serde_json::Value = serde_json::from_str(pong).unwrap();
    value["instance"].as_str().unwrap().to_owned()
}

#[test]
fn a_result_for_another_instance_is_refused_and_changes_nothing() {
    let sb = Sandbox::new();
    let server = sb.serve(&[]);
    let me = instance_of(&sb);
    sb.run(&["start", "x"]).ok();
    let answers = raw_exchange(
        &sb.socket(),
        &[
            br#"{"op":"ready","unit":"x","instance":"0123456789abcdef"}"#,
            br#"{"op":"complete","unit":"x","instance":"0123456789abcdef"}"#,
            br#"{"op":"fail","unit":"x","reason":"gone","instance":"0123456789abcdef"}"#,
        ],
    );
    for (answer, op) in answers.iter().zip(["ready", "complete", "fail"]) {
        assert_eq!(
            answer.trim_end(),
            format!(
                r#"{{"ok":false,"instance":"{me}","result":"error","error":{{"kind":"other_instance","message":"{op} x belongs to the server instance 0123456789abcdef, which accepted its start; this server is {me} (restarted without --state since): not recorded"}}}}"#
            )
        );
    }
    assert!(json_status(&sb, "x").contains("\"status\": \"started\""), "{}", server.log());
    // Its own instance, and none (the CLI's, coder's), are taken.
    let own = format!(r#"{{"op":"ready","unit":"x","instance":"{me}"}}"#);
    let answer = &raw_exchange(&sb.socket(), &[own.as_bytes()])[0];
    assert!(answer.contains(r#""result":"ready""#), "{answer}");
    sb.run(&["complete", "x"]).ok();
    assert!(json_status(&sb, "x").contains("\"status\": \"completed\""));
}

#[test]
fn a_run_from_a_dead_server_writes_nothing_into_the_next_one() {
    let sb = Sandbox::new();
    let mut old = sb.serve(&[]);
    let go = sb.path("go");
    let wait_then_fail = format!("while [ ! -e {} ]; do sleep 0.02; done; exit 3", go.display());
    let mut run = sb
        .cmd(&["run", "x", "--", "sh", "-c", &wait_then_fail])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    eventually("x started", || json_status(&sb, "x").contains("\"status\": \"started\""));
    old.stop_with("KILL");
    // A new server, without --state, on the same socket.
    let new = sb.serve(&[]);
    sb.run(&["want", "y", "x"]).ok();
    fs::write(&go, "").unwrap();
    let status = wait_for_exit(&mut run, PATIENCE, || "run did not end".into());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut run.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(
            "x: its result was not recorded: the server restarted with a fresh state since it started x"
        ),
        "{stderr}"
    );
    // The new server's x is the one y declared, untouched.
    assert!(json_status(&sb, "x").contains("\"status\": \"not registered\""), "{}", new.log());
    let log = new.log();
    assert!(!log.contains("x failed") && !log.contains("x completed"), "{log}");
}
