//! The views of a startup, end to end: `list --timeline`, `list --critical`,
//! `status`'s one-sentence readiness and `list --dot` through Graphviz, and
//! how they show a service that became ready, over a real server and real
//! timings. Exact output is pinned by the unit tests
//! in `src/render.rs`; these check only what does not depend on timing.

use std::fs;
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::util::*;

/// Spawns `unitsync ARGS` in the background.
fn spawn(sb: &Sandbox, args: &[&str]) -> Child {
    sb.cmd(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap()
}

/// Waits until `unit` has the given status.
fn until_status(sb: &Sandbox, unit: &str, status: &str) {
    eventually(&format!("{unit} is {status}"), || {
        sb.run(&["status", unit, "--json"]).stdout.contains(&format!("\"status\": \"{status}\""))
    });
}

/// Waits until the server's clock reads at least a millisecond past the
/// moment `unit`'s status began (its wire times are to the millisecond).
fn until_a_millisecond_on(sb: &Sandbox, unit: &str) {
    eventually(&format!("a millisecond passes after {unit}'s start"), || {
        let status = sb.run(&["status", unit]).stdout;
        status.contains(" ago)") && !status.contains("(0ms ago)")
    });
}

/// The chart's rows (the lines drawn between borders), as (unit, bar).
fn rows(chart: &str) -> Vec<(String, String)> {
    chart
        .lines()
        .filter_map(|line| {
            let (name, bar) = line.split_once(" |")?;
            Some((name.trim_end().to_owned(), bar.strip_suffix('|')?.to_owned()))
        })
        .collect()
}

/// a starts, then c, then b, which needs both and so waits; c completes,
/// then a, 0.3s after it is let go, so that b waits mostly for a. The
/// order is the test's doing, whatever the machine's speed; each start
/// waits for the server's clock to move a millisecond past the one before,
/// so that no two share a time stamp.
fn a_c_then_b(sb: &Sandbox) {
    let (go_a, go_c) = (sb.path("go-a"), sb.path("go-c"));
    sb.run(&["want", "b", "a", "c"]).ok();
    let a = spawn(sb, &["run", "a", "--", "sh", "-c", &(until_file_sh(&go_a) + "; sleep 0.3")]);
    until_status(sb, "a", "started");
    until_a_millisecond_on(sb, "a");
    let c = spawn(sb, &["run", "c", "--", "sh", "-c", &(until_file_sh(&go_c) + "; sleep 0.1")]);
    until_status(sb, "c", "started");
    until_a_millisecond_on(sb, "c");
    let b = spawn(sb, &["run", "b", "--after", "a", "--after", "c", "--", "sleep", "0.1"]);
    until_waiting(sb, "b");
    fs::write(&go_c, "").unwrap();
    until_status(sb, "c", "completed");
    fs::write(&go_a, "").unwrap();
    for mut child in [a, b, c] {
        assert!(child.wait().unwrap().success());
    }
}

#[test]
fn the_timeline_draws_each_unit_in_start_order_within_its_width() {
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    a_c_then_b(&sb);
    for width in ["20", "40", "72", "120"] {
        let out = sb.run(&["list", "--timeline", "--width", width]);
        out.ok();
        let width: usize = width.parse().unwrap();
        for line in out.stdout.lines() {
            assert!(line.chars().count() <= width, "a line is wider than {width}:{out}");
            // A row (name, bar, borders) takes the whole width.
            if line.ends_with('|') {
                assert_eq!(line.chars().count(), width, "{out}");
            }
        }
        let lines: Vec<&str> = out.stdout.lines().collect();
        assert!(lines[0].starts_with("UNIT") && lines[0].contains("0ms"), "no axis:{out}");
        assert!(lines.last().unwrap().starts_with(". waiting"), "no legend:{out}");
        let rows = rows(&out.stdout);
        let names: Vec<&str> = rows.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["a", "c", "b"], "{out}");
        // b waited, then ran: dots first, then hashes, nothing after.
        let b = rows[2].1.trim();
        let (waiting, running) = b.split_at(b.find('#').expect("b ran"));
        assert!(!waiting.is_empty() && waiting.chars().all(|c| c == '.'), "{out}");
        assert!(running.chars().all(|c| c == '#'), "{out}");
        // a and c never waited.
        assert!(!rows[0].1.contains('.') && !rows[1].1.contains('.'), "{out}");
    }
}

#[test]
fn the_critical_chain_blames_the_dependency_that_completed_last() {
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    a_c_then_b(&sb);
    let out = sb.run(&["list", "--critical"]);
    out.ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert_eq!(lines[0], "critical chain (@ when a unit started, + how long it ran):", "{out}");
    assert!(lines[1].starts_with("a  @") && !lines[1].contains("waited"), "{out}");
    assert!(lines[2].starts_with("b  @") && lines[2].ends_with(" for a)"), "{out}");
    assert!(lines[2].contains(" (waited "), "{out}");
    assert!(lines[3].starts_with("total: ") && lines[3].ends_with(" until b completed"), "{out}");
}

#[test]
fn the_views_show_what_is_still_going_and_what_failed() {
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    sb.run(&["start", "git-clone"]).ok();
    sb.run(&["want", "pip-install", "git-clone", "gti-clone"]).ok();
    // Its start gives up, and says so: nobody waits for it any more.
    sb.run(&["start", "pip-install", "--timeout", "100ms"]).code(4);
    sb.run(&["start", "lint"]).ok();
    sb.run(&["fail", "lint", "--reason", "exit status 1"]).ok();

    let out = sb.run(&["status", "pip-install"]);
    out.ok().stdout_has("startable:  no, waiting for git-clone (started ");
    out.stdout_has(" ago) and gti-clone (never registered)\n");

    let out = sb.run(&["list", "--timeline", "--width", "60"]);
    out.ok().stdout_has("! failed").stdout_has("> still going");
    let rows = rows(&out.stdout);
    let names: Vec<&str> = rows.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["git-clone", "lint", "pip-install", "gti-clone"], "{out}");
    assert!(rows[0].1.ends_with('>'), "{out}");
    assert!(rows[1].1.trim_end().ends_with('!'), "{out}");
    assert!(rows[2].1.starts_with("pending"), "{out}");
    assert!(rows[3].1.starts_with("not registered"), "{out}");

    let out = sb.run(&["list", "--critical"]);
    out.ok().stdout_has("total: ").stdout_has(" so far; git-clone is still running\n");
    assert!(!out.stdout.contains("pip-install"), "{out}");
}

#[test]
fn the_views_of_an_empty_server_say_so() {
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    sb.run(&["list", "--timeline"]).ok().stdout_is("no units\n");
    sb.run(&["list", "--critical"]).ok().stdout_is("no units\n");
}

#[test]
fn the_timeline_fits_columns_without_width() {
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    sb.run(&["start", "a-unit-with-a-rather-long-name-for-a-narrow-terminal"]).ok();
    let out = output("COLUMNS=40 unitsync list --timeline".into(), {
        let mut cmd = sb.cmd(&["list", "--timeline"]);
        cmd.env("COLUMNS", "40");
        cmd
    });
    out.ok().stdout_has("a-unit-with-a-ra… |");
    for line in out.stdout.lines() {
        assert!(line.chars().count() <= 40, "wider than $COLUMNS:{out}");
    }
}

#[test]
fn the_dot_graph_renders_with_graphviz() {
    require("dot");
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    sb.run(&["want", "pip-install", "git-clone", "apt-install"]).ok();
    sb.run(&["want", "--soft", "report", "coder_script.x[\"y\"]"]).ok();
    sb.run(&["start", "git-clone"]).ok();
    sb.run(&["complete", "git-clone"]).ok();
    sb.run(&["fail", "apt-install", "--reason", "no network"]).ok();
    let graph = sb.run(&["list", "--dot"]);
    graph.ok();
    let mut dot = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    dot.stdin.take().unwrap().write_all(graph.stdout.as_bytes()).unwrap();
    let svg = dot.wait_with_output().unwrap();
    let (stdout, stderr) =
        (String::from_utf8_lossy(&svg.stdout), String::from_utf8_lossy(&svg.stderr));
    assert!(svg.status.success(), "dot -Tsvg refused the graph: {stderr}{graph}");
    assert!(stdout.contains("<svg"), "dot -Tsvg wrote no SVG: {stdout}{graph}");
    assert!(stderr.is_empty(), "dot -Tsvg warned: {stderr}{graph}");
    // Five units (the odd name included) and three edges, one of them soft.
    assert_eq!(stdout.matches("class=\"node\"").count(), 5, "{stdout}");
    assert_eq!(stdout.matches("class=\"edge\"").count(), 3, "{stdout}");
    assert!(stdout.contains("coder_script.x[&quot;y&quot;]"), "{stdout}");
}

/// db is a service: its command marks it ready with `unitsync ready` once
/// the test lets it, then keeps running until it is stopped. web asks to
/// start after db, waits, then runs and completes while db still runs.
#[test]
fn the_views_show_a_service_ready_phase_and_blame_its_ready_time() {
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    let (go, stop) = (sb.path("go-db"), sb.path("stop-db"));
    // If the test fails before it stops db, the command still ends.
    let body = format!("{}; unitsync ready; {}", until_file_sh(&go), until_file_sh(&stop));
    sb.run(&["want", "web", "db"]).ok();
    let mut db = spawn(&sb, &["run", "db", "--", "sh", "-c", &body]);
    until_status(&sb, "db", "started");
    let mut web = spawn(&sb, &["run", "web", "--after", "db", "--", "true"]);
    until_waiting(&sb, "web");
    fs::write(&go, "").unwrap();
    let status = wait_for_exit(&mut web, PATIENCE, || "run web did not end".into());
    assert!(status.success(), "run web: {status}");
    until_status(&sb, "db", "ready");

    // Each bar's shape; how many cells a phase gets depends on timing.
    let bars = |out: &Output| {
        let lanes = rows(&out.stdout);
        let names: Vec<&str> = lanes.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["db", "web"], "{out}");
        let web = lanes[1].1.trim();
        // web waited, then ran: no ready phase of its own.
        let ran = web.trim_start_matches('.');
        assert!(!ran.is_empty() && ran.chars().all(|c| c == '#'), "{out}");
        // db ran, then was ready: `#`s, then `=`s, then its end.
        lanes[0].1.trim().trim_start_matches('#').trim_start_matches('=').to_owned()
    };
    let out = sb.run(&["list", "--timeline", "--width", "72"]);
    out.ok().stdout_has("> still going");
    assert_eq!(bars(&out), ">", "db is still ready now:{out}");

    // web's wait is blamed on db, which is done as far as startup goes.
    let chain = |out: &Output| {
        let lines: Vec<&str> = out.stdout.lines().collect();
        assert_eq!(lines.len(), 4, "{out}");
        assert!(lines[1].starts_with("db   @") && lines[1].ends_with(" to ready"), "{out}");
        assert!(lines[2].starts_with("web  @") && lines[2].ends_with(" for db)"), "{out}");
        assert!(lines[3].ends_with(" until web completed"), "{out}");
    };
    let out = sb.run(&["list", "--critical"]);
    chain(out.ok());
    let out = sb.run(&["status", "db"]);
    out.ok().stdout_has("status:     ready (").stdout_has("\nready:      +");
    out.stdout_has("\nfinished:   -\n");

    // Stopped by a signal that `run` forwards: completed, noted, and still
    // blamed for web's wait as of when it was ready, not when it ended.
    send_signal(db.id(), "TERM");
    wait_for_exit(&mut db, PATIENCE, || "run db did not stop".into());
    until_status(&sb, "db", "completed");
    let out = sb.run(&["status", "db"]);
    out.ok().stdout_has("status:     completed (").stdout_has("\nnote:       stopped\n");
    out.stdout_has("\nready:      +");
    sb.run(&["list"]).ok().stdout_has("\ndb    completed (stopped)  yes");
    let out = sb.run(&["list", "--critical"]);
    chain(out.ok());
    let out = sb.run(&["list", "--timeline", "--width", "72"]);
    out.ok().stdout_has("= ready");
    assert_eq!(bars(&out), "", "db's ready phase goes up to its end:{out}");
    assert!(rows(&out.stdout)[0].1.contains('='), "{out}");
}

/// `status --json` of `unit`: whether it is waiting, and whether it kept
/// how long it waited.
fn waiting_and_waited(sb: &Sandbox, unit: &str) -> (bool, bool) {
    let json = json_status(sb, unit);
    (!json.contains("\"waiting_since\": null"), !json.contains("\"waited\": null"))
}

#[test]
fn a_start_that_times_out_is_no_longer_shown_waiting() {
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    sb.run(&["want", "c", "b"]).ok();
    sb.run(&["start", "c", "--timeout", "1s"]).code(4);
    assert_eq!(waiting_and_waited(&sb, "c"), (false, true), "{}", json_status(&sb, "c"));
    let chart = sb.run(&["list", "--timeline"]);
    chart.ok();
    assert!(!chart.stdout.contains('>'), "c is drawn waiting still:\n{}", chart.stdout);
}

#[test]
fn a_start_stopped_by_a_signal_is_no_longer_shown_waiting() {
    let sb = Sandbox::new();
    let server = sb.serve(&[]);
    sb.run(&["want", "c", "b"]).ok();
    let mut start = spawn(&sb, &["start", "c", "--poll", "1m"]);
    until_waiting(&sb, "c");
    send_signal(start.id(), "TERM");
    let status = wait_for_exit(&mut start, Duration::from_secs(30), || "start c".to_owned());
    assert_eq!(status.code(), Some(143));
    assert_eq!(waiting_and_waited(&sb, "c"), (false, true), "{}", json_status(&sb, "c"));
    assert!(server.log().contains("c stopped waiting (after "), "{}", server.log());
}

#[test]
fn a_start_killed_without_a_word_stops_showing_as_waiting_once_its_wait_lapses() {
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    sb.run(&["want", "c", "b"]).ok();
    let mut start = spawn(&sb, &["start", "c"]);
    until_waiting(&sb, "c");
    send_signal(start.id(), "KILL");
    start.wait().unwrap();
    // Ten seconds of silence (README.md, "How waiting ends").
    eventually("c's wait lapses", || waiting_and_waited(&sb, "c") == (false, true));
}

#[test]
fn completing_a_unit_its_dependency_failed_clears_the_failure() {
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    sb.run(&["want", "b", "a"]).ok();
    sb.run(&["fail", "a", "--reason", "boom"]).ok();
    sb.run(&["start", "b"]).code(5);
    sb.run(&["complete", "b"]).ok();
    let json = json_status(&sb, "b");
    assert!(json.contains("\"status\": \"completed\""), "{json}");
    assert!(json.contains("\"reason\": null") && json.contains("\"failed_by\": null"), "{json}");
    let out = sb.run(&["status", "b"]);
    out.ok().stdout_has("status:     completed (");
    assert!(!out.stdout.contains("dependency a failed:"), "{out}");
}
