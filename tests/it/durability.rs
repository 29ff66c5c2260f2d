//! `serve --state`: a server killed with SIGKILL at random moments and
//! restarted on its state file loses no accepted change, and the clients
//! driving a 50-unit graph through it carry on.

use std::path::Path;
use std::process::{Child, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::rng::Rng;
use crate::util::*;

const UNITS: usize = 50;

/// A fixed graph: each unit needs up to three earlier ones.
fn deps_of(i: usize) -> Vec<usize> {
    let mut deps: Vec<usize> =
        [i.wrapping_sub(1), i / 2, i / 3].into_iter().filter(|&d| d < i).collect();
    deps.sort();
    deps.dedup();
    deps
}

#[test]
fn sigkill_at_random_moments_loses_nothing() {
    sigkills(&[]);
}

/// The same with the journal compacted every few changes (past 2,000
/// bytes and 4x its snapshot), so that many kills land while it is.
#[test]
fn sigkill_at_random_moments_while_compacting_loses_nothing() {
    let log = sigkills(&["env", "UNITSYNC_COMPACT_BYTES=2000"]);
    assert!(log.contains("state file compacted"), "no compaction happened:\n{log}");
}

/// Drives the graph through a server run by `wrapper` and killed at
/// random moments; returns the servers' logs.
fn sigkills(wrapper: &[&str]) -> String {
    let sb = Sandbox::new();
    let state = sb.path("state");
    let state_arg = state.to_string_lossy().into_owned();
    let serve = || sb.serve_via(wrapper, Path::new(BIN), &["--state", &state_arg]);
    let mut server = serve();
    let mut logs = String::new();
    let order = sb.path("order");

    // Every unit is a `run` of its own, all started at once, in reverse
    // order so most of them wait.
    let mut clients: Vec<(usize, Child)> = (0..UNITS)
        .rev()
        .map(|i| {
            let mut args = vec!["-q".to_owned(), "run".to_owned(), format!("u{i}")];
            for d in deps_of(i) {
                args.extend(["--after".to_owned(), format!("u{d}")]);
            }
            args.extend(
                ["--timeout", "120s", "--poll", "20ms", "--", "sh", "-c"].map(String::from),
            );
            args.push(format!("sleep 0.0{}; echo u{i} >> {}", i % 10, order.display()));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let mut cmd = sb.cmd(&args);
            cmd.env("UNITSYNC_CONNECT_TIMEOUT", "60s").stderr(Stdio::piped());
            (i, cmd.spawn().unwrap())
        })
        .collect();

    // Kill and restart the server at pseudo-random moments until every
    // client is done.
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let mut kills = 0;
    let began = Instant::now();
    let mut done = Vec::new();
    while !clients.is_empty() {
        assert!(began.elapsed() < Duration::from_secs(150), "clients still running after 150s");
        sleep(Duration::from_millis(10 + rng.next() % 120));
        let mut still = Vec::new();
        for (i, mut child) in clients {
            match child.try_wait().unwrap() {
                Some(_) => done.push((i, child.wait_with_output().unwrap())),
                None => still.push((i, child)),
            }
        }
        clients = still;
        if !clients.is_empty() {
            server.stop_with("KILL");
            logs.push_str(&server.log());
            kills += 1;
            server = serve();
        }
    }

    for (i, out) in &done {
        assert_eq!(
            out.status.code(),
            Some(0),
            "u{i} failed after {kills} kills: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(kills >= 5, "only {kills} kills happened; the test did not test much");

    // Every command ran exactly once, after its dependencies.
    let order = std::fs::read_to_string(&order).unwrap();
    let ran: Vec<usize> = order.lines().map(|l| l[1..].parse().unwrap()).collect();
    assert_eq!(ran.len(), UNITS, "commands ran {} times for {UNITS} units:\n{order}", ran.len());
    for (pos, &i) in ran.iter().enumerate() {
        for d in deps_of(i) {
            let dpos = ran.iter().position(|&x| x == d).unwrap_or(usize::MAX);
            assert!(dpos < pos, "u{i} ran before its dependency u{d}:\n{order}");
        }
    }

    // The recovered state holds every unit completed, with its edges, on
    // one continuous timeline.
    let list = sb.run(&["list", "--json"]);
    list.ok();
    let completed = list.stdout.matches("\"status\": \"completed\"").count();
    // Each unit's own status line plus one per edge pointing at it.
    let edges: usize = (0..UNITS).map(|i| deps_of(i).len()).sum();
    assert_eq!(completed, UNITS + edges, "{}", list.stdout);
    for i in 0..UNITS {
        let status = sb.run(&["status", &format!("u{i}"), "--json"]);
        status.ok();
        let started = field(&status.stdout, "started_at");
        for d in deps_of(i) {
            let dep = sb.run(&["status", &format!("u{d}"), "--json"]);
            assert!(
                field(&dep.stdout, "finished_at") <= started,
                "u{i} started before u{d} finished"
            );
        }
    }
    eprintln!("survived {kills} SIGKILLs with {UNITS} units; nothing lost");
    logs.push_str(&server.log());
    logs
}

fn field(json: &str, name: &str) -> f64 {
    let key = format!("\"{name}\": ");
    let rest =
        &json[json.find(&key).unwrap_or_else(|| panic!("no {name} in {json}")) + key.len()..];
    rest.split([',', '\n'])
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not a number in {json}"))
}

#[test]
fn a_restarted_server_keeps_its_instance_so_waiting_clients_carry_on() {
    let sb = Sandbox::new();
    let state = sb.path("state");
    let state_arg = state.to_string_lossy().into_owned();
    let mut server = sb.serve(&["--state", &state_arg]);
    sb.run(&["want", "b", "a"]).ok();
    let waiting = sb.cmd(&["start", "b", "--poll", "20ms"]).stderr(Stdio::piped()).spawn().unwrap();
    until_waiting(&sb, "b");
    server.stop_with("KILL");
    let _server = sb.serve(&["--state", &state_arg]);
    sb.run(&["complete", "a"]).ok();
    let out = waiting.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    sb.run(&["status", "b", "--json"]).ok().stdout_has("\"status\": \"started\"");
}

#[test]
fn a_state_file_that_is_not_ours_is_refused_and_untouched() {
    let sb = Sandbox::new();
    let path = sb.path("precious");
    std::fs::write(&path, "not a journal\n").unwrap();
    sb.run(&["serve", "--state", &path.to_string_lossy()])
        .code(1)
        .stderr_has("is not a unitsync state file; refusing to touch it");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "not a journal\n");
    assert!(!sb.socket().exists(), "serve bound the socket despite a bad state file");
    sb.run(&["serve", "--fsync"]).code(2).stderr_has("--fsync needs --state FILE");
}

#[test]
fn the_state_file_is_private_and_one_others_may_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let sb = Sandbox::new();
    let path = sb.path("state");
    let state = path.to_string_lossy().into_owned();
    let mut server = sb.serve(&["--state", &state]);
    server.wait_ready();
    sb.run(&["fail", "db", "--reason", "password authentication failed"]).ok();
    assert_eq!(mode(&path), 0o600, "the journal holds reasons: it is the server user's only");
    server.stop_with("TERM");
    // Writable by others: its changes could be forged. Refused, untouched.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o622)).unwrap();
    sb.run(&["serve", "--state", &state])
        .code(1)
        .stderr_has(&format!("state file {state} is not private (mode 622"))
        .stderr_has(&format!("chmod 600 {state}"));
    assert_eq!(mode(&path), 0o622);
    assert!(!sb.socket().exists(), "serve bound the socket despite a forgeable state file");
}

#[test]
fn a_torn_last_line_is_ignored() {
    let sb = Sandbox::new();
    let state = sb.path("state");
    let state_arg = state.to_string_lossy().into_owned();
    let mut server = sb.serve(&["--state", &state_arg, "--fsync"]);
    sb.run(&["complete", "a"]).ok();
    server.stop_with("KILL");
    // A kill in the middle of a write leaves half a line.
    let mut text = std::fs::read_to_string(&state).unwrap();
    text.push_str("{\"t\":99,\"op\":\"complete\",\"unit\":\"");
    std::fs::write(&state, text).unwrap();
    let server = sb.serve(&["--state", &state_arg]);
    assert!(server.log().contains("recovered 1 changes from"), "{}", server.log());
    sb.run(&["complete", "b"]).ok();
    sb.run(&["list", "--json"]).ok().stdout_has("\"unit\": \"b\",\n    \"status\": \"completed\"");
}

#[test]
fn a_wait_that_stopped_stays_stopped_after_a_restart() {
    let sb = Sandbox::new();
    let state = sb.path("state");
    let state_arg = state.to_string_lossy().into_owned();
    let mut server = sb.serve(&["--state", &state_arg]);
    sb.run(&["want", "c", "b"]).ok();
    sb.run(&["start", "c", "--timeout", "200ms"]).code(4);
    server.stop_with("KILL");
    let _server = sb.serve(&["--state", &state_arg]);
    let json = json_status(&sb, "c");
    assert!(json.contains("\"waiting_since\": null"), "{json}");
    assert!(!json.contains("\"waited\": null"), "{json}");
}

/// Issue 19 §3: a compacted state file rebuilds exactly the state it
/// replaced: every view (times, owners, waits, failures, notes) reads the
/// same, byte for byte, after a SIGKILL and a restart, and with the
/// changes made after the compaction replayed on top of it.
#[test]
fn a_compacted_state_file_replays_exactly_the_state_before() {
    let sb = Sandbox::new();
    let state = sb.path("state");
    let state_arg = state.to_string_lossy().into_owned();
    let serve = || {
        sb.serve_via(&["env", "UNITSYNC_COMPACT_BYTES=1"], Path::new(BIN), &["--state", &state_arg])
    };
    let mut server = serve();
    let mut conn = Conn::open(&sb.socket());
    let me = std::process::id();
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let start: u64 =
        stat.rsplit_once(')').unwrap().1.split_whitespace().nth(19).unwrap().parse().unwrap();
    let owner = format!(
        r#""owner":{{"pid":{me},"start":{start},"name":"the test"}},"via":[{{"pid":{me},"start":{start}}}],"client_pid":{me}"#
    );
    for line in [
        r#"{"op":"want","unit":"b","deps":["a"]}"#.to_owned(),
        r#"{"op":"want","unit":"c","deps":["b","typo"],"soft":false}"#.to_owned(),
        r#"{"op":"want","unit":"s","deps":["a"],"soft":true}"#.to_owned(),
        format!(r#"{{"op":"start","unit":"a",{owner}}}"#),
        r#"{"op":"ready","unit":"a"}"#.to_owned(),
        r#"{"op":"start","unit":"c","poll":0.2}"#.to_owned(),
        format!(r#"{{"op":"start","unit":"b",{owner}}}"#),
        r#"{"op":"fail","unit":"b","reason":"exit status 2"}"#.to_owned(),
        r#"{"op":"start","unit":"c"}"#.to_owned(),
        r#"{"op":"complete","unit":"a","note":"stopped"}"#.to_owned(),
        r#"{"op":"want","unit":"w","deps":["never"]}"#.to_owned(),
        r#"{"op":"start","unit":"w","poll":30}"#.to_owned(),
        format!(r#"{{"op":"start","unit":"x",{owner}}}"#),
    ] {
        let answer = conn.ask(line.as_bytes());
        assert!(answer.contains("\"ok\":true"), "{line}: {answer}");
    }
    let log = server.log();
    assert!(log.contains("state file compacted"), "{log}");
    let text = std::fs::read_to_string(&state).unwrap();
    assert!(text.lines().nth(1).unwrap().starts_with("{\"snapshot\":"), "{text}");
    let before = sb.run(&["list", "--json"]);
    before.ok();
    assert!(before.stdout.contains("\"waiting_since\": "), "{}", before.stdout);
    assert!(before.stdout.contains(&format!("\"owner\": {me}")), "{}", before.stdout);
    server.stop_with("KILL");
    let _server = serve();
    let after = sb.run(&["list", "--json"]);
    assert_eq!(after.ok().stdout, before.stdout);
}

/// Unmounts a test's tmpfs, however the test ends.
struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A disk that cannot take the compacted copy (a tmpfs out of inodes: the
/// temporary file cannot be made, while the journal itself still grows):
/// the old journal stays, the server keeps serving and acknowledging, and
/// a restart replays every change.
#[test]
fn a_full_disk_during_compaction_keeps_the_old_journal_and_serving() {
    assert!(is_root(), "this test mounts a tmpfs: run it as root (scripts/test.sh does)");
    require("mount");
    let sb = Sandbox::new();
    let disk = sb.path("disk");
    std::fs::create_dir(&disk).unwrap();
    let mount = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m,nr_inodes=64", "tmpfs"])
        .arg(&disk)
        .status()
        .unwrap();
    assert!(mount.success(), "cannot mount a tmpfs on {}", disk.display());
    let _mounted = Mounted(disk.clone());
    let state = disk.join("state");
    let state_arg = state.to_string_lossy().into_owned();
    let serve = || {
        sb.serve_via(&["env", "UNITSYNC_COMPACT_BYTES=1"], Path::new(BIN), &["--state", &state_arg])
    };
    let mut server = serve();
    sb.run(&["want", "first"]).ok();
    // Every inode taken: no temporary file can be made.
    let mut filled = 0;
    while std::fs::File::create(disk.join(format!("fill{filled}"))).is_ok() {
        filled += 1;
        assert!(filled < 1000, "the tmpfs takes files without end");
    }
    for i in 0..40 {
        sb.run(&["want", &format!("u{i}"), "first"]).ok();
    }
    sb.run(&["complete", "first"]).ok();
    let log = server.log();
    assert!(log.contains("state file not compacted ("), "{log}");
    assert!(log.contains("it is kept as it was"), "{log}");
    let before = sb.run(&["list", "--json"]);
    before.ok();
    assert_eq!(before.stdout.matches("\"unit\": \"u").count(), 40, "{}", before.stdout);
    server.stop_with("KILL");
    let _server = serve();
    let after = sb.run(&["list", "--json"]);
    assert_eq!(after.ok().stdout, before.stdout);
    let leftovers: Vec<_> = std::fs::read_dir(&disk)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.contains("compact"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
