//! `serve --state`: a server killed with SIGKILL at random moments and
//! restarted on its state file loses no accepted change, and the clients
//! driving a 50-unit graph through it carry on.

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
    let sb = Sandbox::new();
    let state = sb.path("state");
    let state_arg = state.to_string_lossy().into_owned();
    let mut server = sb.serve(&["--state", &state_arg]);
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
            kills += 1;
            server = sb.serve(&["--state", &state_arg]);
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
