//! The core commands end to end (issue: state machine, server, client).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::util::*;

#[test]
fn ping_prints_the_version() {
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    let out = sb.run(&["ping"]);
    out.ok().stdout_has(&format!("unitsync {} (protocol 2)", env!("CARGO_PKG_VERSION")));
}

#[test]
fn the_seed_scenario_runs_in_dependency_order() {
    // apt-install and git-clone run in parallel; pip-install needs both;
    // the agent needs git-clone. Four POSIX sh scripts, started at once.
    // apt-install finishes only once the agent has: had the agent waited
    // for apt-install, which it does not need, the two would wait for each
    // other until the minute runs out, and the agent would start last.
    let sb = Sandbox::new();
    let server = sb.serve(&[]);
    let script = r#"
        ( unitsync start apt-install && unitsync wait agent --timeout 60s
          unitsync complete apt-install ) &
        ( unitsync start git-clone && sleep 0.1 && unitsync complete git-clone ) &
        ( unitsync want pip-install git-clone apt-install && unitsync start pip-install \
            && unitsync complete pip-install ) &
        ( unitsync want agent git-clone && unitsync start agent && unitsync complete agent ) &
        wait
    "#;
    sb.shell("dash", script).ok();
    let log = server.log();
    let apt_done = at(&log, "apt-install completed");
    let git_done = at(&log, "git-clone completed");
    let pip = at(&log, "pip-install started");
    let agent = at(&log, "agent started");
    assert!(
        pip >= apt_done && pip >= git_done,
        "pip-install started before its dependencies:\n{log}"
    );
    assert!(agent >= git_done, "agent started before git-clone completed:\n{log}");
    assert!(agent < apt_done, "agent waited for apt-install, which it does not need:\n{log}");
    let list = sb.run(&["list", "--json"]);
    list.ok();
    for unit in ["agent", "apt-install", "git-clone", "pip-install"] {
        list.stdout_has(&format!("\"unit\": \"{unit}\",\n    \"status\": \"completed\""));
    }
}

#[test]
fn every_exit_code_is_produced_for_real() {
    let sb = Sandbox::new();
    // 3: no server.
    sb.run(&["ping"]).code(3).stderr_has("no such socket; is the server running?");
    let _server = sb.serve(&[]);
    // 0
    sb.run(&["want", "b", "a"]).ok();
    // 1: refused by the server.
    sb.run(&["want", "a", "b"]).code(1).stderr_has("unitsync: cycle: a -> b -> a");
    // 2: usage.
    sb.run(&["start"]).code(2).stderr_has("unitsync: missing UNIT; see 'unitsync start --help'");
    sb.run(&["start", "b", "--timeout", "soon"])
        .code(2)
        .stderr_has("--timeout: invalid duration \"soon\"");
    // 4: timeout.
    sb.run(&["start", "b", "--timeout", "200ms"])
        .code(4)
        .stderr_has("b: timed out after 200ms waiting for a");
    // 5: a dependency failed.
    sb.run(&["fail", "a", "--reason", "exit status 2"]).ok();
    sb.run(&["start", "b"])
        .code(5)
        .stderr_has("b: dependency a failed: exit status 2; not starting b");
}

#[test]
fn a_cycle_is_refused_with_its_path_and_adds_nothing() {
    let sb = Sandbox::new();
    let server = sb.serve(&[]);
    sb.run(&["want", "a", "b"]).ok();
    sb.run(&["want", "b", "c"]).ok();
    sb.run(&["want", "c", "x", "a"]).code(1).stderr_has("unitsync: cycle: c -> a -> b -> c\n");
    sb.run(&["status", "x", "--json"]).ok().stdout_has("\"status\": \"not registered\"");
    sb.run(&["status", "c", "--json"]).ok().stdout_has("\"dependencies\": []");
    assert!(
        server.log().contains("refused want \"c\": cycle: c -> a -> b -> c"),
        "{}",
        server.log()
    );
}

#[test]
fn a_typo_times_out_with_a_did_you_mean() {
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    sb.run(&["start", "git-clone"]).ok();
    sb.run(&["want", "pip-install", "gti-clone", "git-clone"]).ok();
    let out = sb.run(&["start", "pip-install", "--timeout", "300ms"]);
    out.code(4)
        .stderr_has("unitsync: pip-install: timed out after 300ms waiting for git-clone (started ");
    out.stderr_has(", gti-clone (never registered; did you mean git-clone?)\n");
    // It said at once what it waited for, and suspected the typo at once.
    out.stderr_has("unitsync: pip-install: waiting for git-clone (started ");
    let first = out.stderr.lines().find(|l| l.contains(": waiting for ")).unwrap();
    assert!(first.ends_with(", gti-clone (never registered; did you mean git-clone?)"), "{out}");
    // So does wait.
    let out = sb.run(&["wait", "gti-clone", "--timeout", "300ms"]);
    out.code(4);
    let first = out.stderr.lines().find(|l| l.contains(": waiting for ")).unwrap();
    assert!(first.ends_with("gti-clone (never registered; did you mean git-clone?)"), "{out}");
    out.stderr_has(
        "timed out after 300ms waiting for gti-clone (never registered; did you mean git-clone?)\n",
    );
}

#[test]
fn a_failed_dependency_stops_a_waiting_dependent_at_once() {
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    sb.run(&["want", "b", "a"]).ok();
    sb.run(&["start", "a"]).ok();
    let waiting =
        sb.cmd(&["start", "b", "--timeout", "5m"]).stderr(Stdio::piped()).spawn().unwrap();
    until_waiting(&sb, "b");
    let began = Instant::now();
    sb.run(&["fail", "a", "--reason", "disk full"]).ok();
    let out = waiting.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(5));
    assert!(
        began.elapsed() < Duration::from_secs(60),
        "b waited for its timeout instead of failing fast"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("b: dependency a failed: disk full; not starting b"), "{stderr}");
    // b is failed too, so its own dependents fail fast as well.
    sb.run(&["want", "c", "b"]).ok();
    sb.run(&["start", "c"])
        .code(5)
        .stderr_has("dependency b failed: dependency a failed: disk full");
}

#[test]
fn a_soft_dependency_proceeds_past_a_failure() {
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    sb.run(&["want", "--soft", "report", "tests"]).ok();
    sb.run(&["start", "report", "--timeout", "100ms"]).code(4);
    sb.run(&["fail", "tests"]).ok();
    sb.run(&["start", "report"]).ok().stderr_has("report: started\n");
    sb.run(&["status", "report", "--json"])
        .ok()
        .stdout_has("\"soft\": true,\n      \"satisfied\": true");
}

#[test]
fn a_restarted_server_makes_a_waiting_start_fail_clearly() {
    let sb = Sandbox::new();
    let mut server = sb.serve(&[]);
    sb.run(&["want", "b", "a"]).ok();
    let waiting = sb
        .cmd(&["start", "b", "--timeout", "30s", "--poll", "20ms"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    until_waiting(&sb, "b");
    server.stop_with("KILL");
    let _restarted = sb.serve(&[]);
    // The new server knows nothing of b's dependency on a: starting b there
    // would be wrong. The client must notice and refuse.
    let out = waiting.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("b: the server at "), "{stderr}");
    assert!(stderr.contains("restarted with a fresh state while we waited"), "{stderr}");
    sb.run(&["status", "b", "--json"]).ok().stdout_has("\"status\": \"not registered\"");
}

#[test]
fn a_waiting_client_rides_out_a_missing_server_until_its_deadline() {
    let sb = Sandbox::new();
    let mut server = sb.serve(&[]);
    sb.run(&["want", "b", "a"]).ok();
    // Long enough to be waiting still when the server is killed, however
    // slow the machine.
    let waiting =
        sb.cmd(&["start", "b", "--timeout", "5s"]).stderr(Stdio::piped()).spawn().unwrap();
    until_waiting(&sb, "b");
    server.stop_with("KILL");
    let out = waiting.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("timed out after 5.00s waiting for the server, which went away"),
        "{stderr}"
    );
}

#[test]
fn connect_timeout_waits_for_a_server_to_come_up() {
    let sb = Sandbox::new();
    let client =
        sb.cmd(&["--connect-timeout", "5m", "ping"]).stdout(Stdio::piped()).spawn().unwrap();
    // Asleep with no server to reach, the client can only be between two
    // attempts to connect: it has tried and failed at least once.
    let pid = client.id().to_string();
    eventually("the client sleeps between attempts to connect", || {
        proc_state(&pid).is_some_and(|(state, _)| state == "S")
    });
    let _server = sb.serve(&[]);
    let out = client.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    sb.run(&[
        "--connect-timeout",
        "200ms",
        "--socket",
        &sb.path("none.sock").to_string_lossy(),
        "ping",
    ])
    .code(3);
}

#[test]
fn optional_degrades_gracefully_when_there_is_no_server() {
    let sb = Sandbox::new();
    let out = sb.run(&["--optional", "start", "x"]);
    out.ok().stderr_has("unitsync: warning: cannot reach the server at ");
    out.stderr_has("continuing without coordination (--optional)");
    let mut cmd = sb.cmd(&["complete", "x"]);
    cmd.env("UNITSYNC_OPTIONAL", "1");
    output("UNITSYNC_OPTIONAL=1 unitsync complete x".into(), cmd).ok();
    // Optional never hides a refusal from a server that answers.
    let _server = sb.serve(&[]);
    sb.run(&["--optional", "want", "a", "a"]).code(1);
}

#[test]
fn wait_waits_for_completion_without_registering() {
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    sb.run(&["wait", "a", "b", "--timeout", "200ms"])
        .code(4)
        .stderr_has("wait a b: timed out after 200ms waiting for a (never registered");
    sb.run(&["list", "--json"]).ok().stdout_is("[]\n");
    let waiting = sb.cmd(&["wait", "a", "b"]).stderr(Stdio::piped()).spawn().unwrap();
    sb.run(&["complete", "a"]).ok();
    sb.run(&["complete", "b"]).ok();
    let out = waiting.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    sb.run(&["fail", "c", "--reason", "broke"]).ok();
    sb.run(&["wait", "a", "c"]).code(5).stderr_has("unitsync: c failed: broke");
}

#[test]
fn status_and_list_show_the_graph() {
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    sb.run(&["want", "b", "a"]).ok();
    sb.run(&["want", "--soft", "b", "c"]).ok();
    sb.run(&["complete", "a"]).ok();
    let json = sb.run(&["status", "b", "--json"]);
    json.ok();
    let expected_prefix = r#"{
  "unit": "b",
  "status": "pending",
  "startable": false,
  "dependencies": [
    {
      "unit": "a",
      "status": "completed",
      "soft": false,
      "satisfied": true,"#;
    assert!(json.stdout.starts_with(expected_prefix), "{json}");
    json.stdout_has("\"unit\": \"c\",\n      \"status\": \"not registered\",\n      \"soft\": true,\n      \"satisfied\": false");
    sb.run(&["status", "b"]).ok().stdout_has("startable:  no, waiting for c (never registered)\n");
    let table = sb.run(&["list"]);
    table
        .ok()
        .stdout_has("UNIT  STATUS          STARTABLE  STARTED  READY  WAITED  RAN  DEPENDS ON\n");
    table.stdout_has(
        "\nb     pending         no         -        -      -       -    a, c (soft)\n",
    );
    table.stdout_has("\nc     not registered  -          -        -      -       -    -\n");
    sb.run(&["status", "c"]).ok().stdout_has("startable:  yes (nobody declared it)\n");
    sb.run(&["list", "--dot"]).ok().stdout_has("  \"c\" -> \"b\" [style=dashed];\n");
    sb.run(&["status", "bad name"])
        .code(1)
        .stderr_has("invalid unit name \"bad name\": a name may not contain whitespace");
}

#[test]
fn every_command_has_help() {
    let sb = Sandbox::new();
    let commands = [
        "serve", "ping", "want", "start", "ready", "complete", "fail", "status", "list", "wait",
        "run", "up",
    ];
    for cmd in commands {
        for help in ["--help", "-h"] {
            sb.run(&[cmd, help]).ok().stdout_has(&format!("Usage: unitsync {cmd}"));
        }
    }
    sb.run(&["--help"]).ok().stdout_has("Exit codes:");
    sb.run(&["-V"]).ok().stdout_is(&format!("unitsync {}\n", env!("CARGO_PKG_VERSION")));
}

#[test]
fn environment_defaults_apply_and_bad_values_are_usage_errors() {
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    sb.run(&["want", "b", "a"]).ok();
    let mut cmd = sb.cmd(&["start", "b"]);
    cmd.env("UNITSYNC_TIMEOUT", "150ms");
    output("UNITSYNC_TIMEOUT=150ms unitsync start b".into(), cmd)
        .code(4)
        .stderr_has("timed out after 150ms");
    let mut cmd = sb.cmd(&["start", "b"]);
    cmd.env("UNITSYNC_POLL", "fast");
    output("UNITSYNC_POLL=fast unitsync start b".into(), cmd)
        .code(2)
        .stderr_has("$UNITSYNC_POLL: invalid duration \"fast\"");
}

#[test]
fn malformed_and_oversized_lines_get_errors_and_the_server_keeps_serving() {
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    let answers = raw_exchange(
        &sb.socket(),
        &[
            b"garbage",
            b"{\"op\":\"launch\"}",
            b"{\"op\":\"want\",\"unit\":7}",
            b"\xff",
            b"{\"op\":\"want\",\"unit\":\"b\",\"deps\":[\"a\"],\"x\":1}",
        ],
    );
    assert!(answers[0].contains("\"kind\":\"bad_request\""), "{answers:?}");
    assert!(
        answers[1].contains("\"kind\":\"unknown_op\",\"message\":\"unknown op \\\"launch\\\""),
        "{answers:?}"
    );
    assert!(answers[2].contains("\"kind\":\"bad_request\""), "{answers:?}");
    assert!(answers[3].contains("not valid UTF-8"), "{answers:?}");
    assert!(answers[4].contains("\"result\":\"wanted\""), "{answers:?}");
    let long = vec![b'x'; 70 * 1024];
    let answer = raw_exchange(&sb.socket(), &[&long]);
    assert!(answer[0].contains("\"kind\":\"line_too_long\""), "{answer:?}");
    sb.run(&["status", "b", "--json"]).ok().stdout_has("\"unit\": \"a\"");
}

#[test]
fn a_second_server_on_the_same_path_is_refused() {
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    sb.run(&["serve"]).code(1).stderr_has("a server is already running on ");
    sb.run(&["ping"]).ok();
}

#[test]
fn a_stale_socket_is_replaced() {
    let sb = Sandbox::new();
    fs::create_dir_all(sb.socket().parent().unwrap()).unwrap();
    drop(UnixListener::bind(sb.socket()).unwrap());
    assert!(sb.socket().exists());
    // A child that another test forks at that moment holds a copy of the
    // listener until its exec: wait until nothing listens any more.
    eventually("the socket is stale", || {
        std::os::unix::net::UnixStream::connect(sb.socket())
            .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused)
    });
    sb.run(&["ping"]).code(3).stderr_has("connection refused; the socket is stale");
    let _server = sb.serve(&[]);
    sb.run(&["ping"]).ok();
}

#[test]
fn serve_refuses_paths_that_are_not_its_to_take() {
    let sb = Sandbox::new();
    let dir = sb.socket().parent().unwrap().to_owned();
    fs::create_dir_all(&dir).unwrap();
    fs::write(sb.socket(), "precious").unwrap();
    sb.run(&["serve"])
        .code(1)
        .stderr_has("exists and is a regular file or device, not a socket; refusing to touch it");
    assert_eq!(fs::read_to_string(sb.socket()).unwrap(), "precious");
    fs::remove_file(sb.socket()).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", sb.socket()).unwrap();
    sb.run(&["serve"]).code(1).stderr_has("exists and is a symbolic link, not a socket");
    fs::remove_file(sb.socket()).unwrap();
    assert!(is_root(), "this test needs root to chown a directory: run it as root (CI does)");
    std::os::unix::fs::chown(&dir, Some(4242), Some(4242)).unwrap();
    sb.run(&["serve"]).code(1).stderr_has("belongs to uid 4242, not to you (uid 0)");
}

#[test]
fn the_client_refuses_a_socket_owned_by_someone_else() {
    assert!(is_root(), "this test needs root to chown a socket: run it as root (CI does)");
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    std::os::unix::fs::chown(sb.socket(), Some(4242), None).unwrap();
    sb.run(&["ping"])
        .code(3)
        .stderr_has("the socket belongs to uid 4242, not to you (uid 0) or root");
}

#[test]
fn the_socket_is_private_and_removed_on_sigterm() {
    let sb = Sandbox::new();
    let mut server = sb.serve(&[]);
    let dir_mode = fs::metadata(sb.socket().parent().unwrap()).unwrap().permissions().mode();
    let sock_mode = fs::metadata(sb.socket()).unwrap().permissions().mode();
    assert_eq!((dir_mode & 0o777, sock_mode & 0o777), (0o700, 0o600));
    let status = server.stop_with("TERM");
    assert!(status.success(), "{status:?}");
    assert!(!sb.socket().exists(), "SIGTERM left the socket behind");
    assert!(server.log().contains("stopping on SIGTERM"), "{}", server.log());
    let mut server = sb.serve(&[]);
    assert!(server.stop_with("INT").success());
    assert!(!sb.socket().exists(), "SIGINT left the socket behind");
}

#[test]
fn detach_returns_once_serving_and_writes_the_pidfile() {
    let sb = Sandbox::new();
    let pidfile = sb.path("server.pid");
    let log = sb.path("server.log");
    // The harness reads stdout and stderr to their end: this returns only
    // if the detached server keeps neither open.
    let out = sb.run(&[
        "serve",
        "--detach",
        "--pidfile",
        &pidfile.to_string_lossy(),
        "--log",
        &log.to_string_lossy(),
    ]);
    out.ok();
    let pid = out.stdout.trim().to_owned();
    assert_eq!(fs::read_to_string(&pidfile).unwrap().trim(), pid);
    // No retry: the socket must accept at once.
    sb.run(&["ping"]).ok();
    let kill = std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(kill.success());
    eventually("the detached server removes its socket and pidfile", || {
        !sb.socket().exists() && !pidfile.exists()
    });
    let log = fs::read_to_string(&log).unwrap();
    assert!(log.contains(" serving on ") && log.contains("stopping on SIGTERM"), "{log}");
}

#[test]
fn the_server_logs_each_state_change_with_its_time() {
    let sb = Sandbox::new();
    let server = sb.serve(&[]);
    sb.run(&["want", "b", "a"]).ok();
    sb.run(&["start", "a"]).ok();
    let waiting = sb.cmd(&["start", "b"]).stderr(Stdio::null()).spawn().unwrap();
    until_waiting(&sb, "b");
    sb.run(&["complete", "a"]).ok();
    assert!(waiting.wait_with_output().unwrap().status.success());
    let log = server.log();
    for line in ["b wants a", "a started", "a completed (ran ", "b started (waited "] {
        at(&log, line);
    }
    assert!(log.contains(" for a)\n"), "{log}");
}

#[test]
fn progress_is_silenced_by_quiet_but_errors_are_not() {
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    sb.run(&["-q", "start", "a"]).ok();
    let out = sb.run(&["start", "a", "-q"]);
    out.code(1).stderr_has("a is already started");
    assert_eq!(sb.run(&["-q", "start", "b"]).stderr, "");
}

#[test]
fn want_and_complete_say_what_they_did_unless_quiet() {
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    assert_eq!(sb.run(&["want", "b", "a", "c"]).ok().stderr, "unitsync: b: wants a, c\n");
    assert_eq!(sb.run(&["want", "--soft", "b", "d"]).ok().stderr, "unitsync: b: softly wants d\n");
    assert_eq!(sb.run(&["want", "e"]).ok().stderr, "unitsync: e: registered\n");
    assert_eq!(sb.run(&["complete", "a"]).ok().stderr, "unitsync: a: completed\n");
    assert_eq!(sb.run(&["-q", "want", "f", "a"]).ok().stderr, "");
    assert_eq!(sb.run(&["complete", "c", "-q"]).ok().stderr, "");
    // A refusal says only why.
    let out = sb.run(&["complete", "a"]);
    out.code(1);
    assert_eq!(out.stderr, "unitsync: a is already completed\n", "{out}");
}
