//! Load (issue: reliability and security): a thousand clients waiting and
//! polling at once, each on its own connection, as a thousand `unitsync
//! start` processes would, but from threads so the test stays cheap.
//! 1,000 connected clients polling at once stay under 64 MiB.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::{self, sleep};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::*;

const CLIENTS: usize = 1000;
const POLL: Duration = Duration::from_millis(50);
/// The footprint promised in README.md ("Benchmarks").
const MAX_RSS_KIB: u64 = 64 * 1024;

/// What one waiting client saw.
struct Waited {
    attempts: usize,
    waited_for: String,
}

/// One client: declare `w<i>` wants `gate`, then poll `start` every 50 ms
/// until started; then check that a second start is refused, so it was
/// started exactly once.
fn client(i: usize, socket: &Path, blocked: &AtomicUsize) -> Result<Waited, String> {
    let stream = UnixStream::connect(socket).map_err(|e| format!("w{i}: cannot connect: {e}"))?;
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut reader = BufReader::new(&stream);
    let mut ask = |line: String| {
        (&stream).write_all(line.as_bytes()).map_err(|e| format!("w{i}: cannot send: {e}"))?;
        let mut answer = String::new();
        match reader.read_line(&mut answer) {
            Ok(0) => Err(format!("w{i}: the server closed the connection")),
            Ok(_) => Ok(answer),
            Err(e) => Err(format!("w{i}: no answer: {e}")),
        }
    };
    let answer = ask(format!("{{\"op\":\"want\",\"unit\":\"w{i}\",\"deps\":[\"gate\"]}}\n"))?;
    if !answer.contains(r#""result":"wanted","added":1,"registered":true}"#) {
        return Err(format!("w{i}: want answered {answer}"));
    }
    // Counted from this client's want: all the others may take up to
    // PATIENCE to be waiting too before the gate opens.
    let deadline = Instant::now() + 3 * PATIENCE;
    let start = format!("{{\"op\":\"start\",\"unit\":\"w{i}\"}}\n");
    let mut attempts = 0;
    let waited_for = loop {
        attempts += 1;
        let answer = ask(start.clone())?;
        if answer.contains(r#""result":"started""#) {
            let at = answer.find(r#""waited_for":"#).ok_or(format!("w{i}: {answer}"))?;
            break answer[at..].trim_end().to_owned();
        }
        if !answer.contains(r#""result":"blocked""#) {
            return Err(format!("w{i}: start answered {answer}"));
        }
        if attempts == 1 {
            blocked.fetch_add(1, Ordering::SeqCst);
        }
        if Instant::now() > deadline {
            return Err(format!("w{i}: still blocked after {:?}: {answer}", 3 * PATIENCE));
        }
        sleep(POLL);
    };
    let again = ask(start)?;
    if !again.contains(r#""kind":"already_started""#) {
        return Err(format!("w{i}: a second start answered {again}"));
    }
    Ok(Waited { attempts, waited_for })
}

#[test]
fn a_thousand_polling_clients_each_start_exactly_once_in_bounded_memory() {
    ensure_fd_limit(4096);
    let sb = Sandbox::new();
    let mut server = sb.serve(&[]);
    let pid = server.pid();
    let idle_rss = proc_status(pid, "VmRSS").unwrap();
    let blocked = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    // Samples the server's memory and threads until told to stop.
    let sampler = {
        let done = done.clone();
        thread::spawn(move || {
            let (mut rss, mut threads) = (0, 0);
            while !done.load(Ordering::SeqCst) {
                rss = rss.max(proc_status(pid, "VmRSS").unwrap_or(0));
                threads = threads.max(proc_status(pid, "Threads").unwrap_or(0));
                sleep(Duration::from_millis(10));
            }
            (rss, threads)
        })
    };
    let began = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (socket, blocked): (PathBuf, _) = (sb.socket(), blocked.clone());
            thread::Builder::new()
                .name(format!("w{i}"))
                .stack_size(64 * 1024)
                .spawn(move || client(i, &socket, &blocked))
                .unwrap()
        })
        .collect();
    let all_waiting = {
        let deadline = Instant::now() + PATIENCE;
        while blocked.load(Ordering::SeqCst) < CLIENTS && Instant::now() < deadline {
            sleep(Duration::from_millis(20));
        }
        blocked.load(Ordering::SeqCst)
    };
    let waiting_after = began.elapsed();
    // A well-behaved client is served in the middle of it all.
    let gate = sb.run(&["status", "gate", "--json"]);
    gate.ok().stdout_has("\"status\": \"not registered\"");
    sb.run(&["complete", "gate"]).ok();
    let released = Instant::now();
    let mut failures = Vec::new();
    let mut attempts = 0;
    for handle in clients {
        match handle.join().expect("a client thread panicked") {
            Ok(w) if w.waited_for == r#""waited_for":["gate"]}"# => attempts += w.attempts,
            Ok(w) => failures.push(format!("started, having waited for {}", w.waited_for)),
            Err(why) => failures.push(why),
        }
    }
    let all_started_after = released.elapsed();
    done.store(true, Ordering::SeqCst);
    let (max_rss, max_threads) = sampler.join().unwrap();
    if let Some(status) = server.child.try_wait().unwrap() {
        panic!("the server died ({status}) under load; its log:\n{}", server.log());
    }
    assert!(
        failures.is_empty(),
        "{} of {CLIENTS} clients failed (all {all_waiting} were waiting after {waiting_after:?}); \
         first: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert_eq!(all_waiting, CLIENTS, "not every client got to wait");
    // The server agrees: every w<i> started, once, after the gate.
    let conn = UnixStream::connect(sb.socket()).unwrap();
    (&conn).write_all(b"{\"op\":\"list\"}\n").unwrap();
    let mut answer = String::new();
    BufReader::new(&conn).read_line(&mut answer).unwrap();
    let list: Value = serde_json::from_str(&answer).unwrap();
    let units = list["units"].as_array().expect("a unit list");
    assert_eq!(units.len(), CLIENTS + 1);
    let not_started: Vec<&Value> =
        units.iter().filter(|u| u["unit"] != "gate" && u["status"] != "started").collect();
    assert!(not_started.is_empty(), "not started: {:?}", not_started.first());
    let log = server.log();
    let starts = log
        .lines()
        .filter(|l| l.contains(" started (waited ") && l.ends_with(" for gate)"))
        .count();
    assert_eq!(starts, CLIENTS, "the server logged {starts} starts after the gate");
    assert!(
        max_rss < MAX_RSS_KIB,
        "the server's RSS reached {max_rss} KiB with {CLIENTS} clients polling (limit {MAX_RSS_KIB} KiB)"
    );
    eprintln!(
        "load: {CLIENTS} clients waiting after {waiting_after:?}, all started {all_started_after:?} \
         after the gate, {attempts} start requests; server RSS {idle_rss} KiB idle, {max_rss} KiB \
         at most, {max_threads} threads at most; {:?} in all",
        began.elapsed()
    );
}

/// Issue 19 §2: clients waiting on a dependency nobody registered yet cost
/// the server no memory that grows with the graph. Each used to fetch the
/// whole list for its did-you-mean, and its connection kept that answer's
/// buffer for life: 100 waiters with 10,000 units held ~350 MiB.
#[test]
fn clients_waiting_on_an_unregistered_dependency_stay_small_however_many_units() {
    const UNITS: usize = 10_000;
    const WAITERS: usize = 100;
    ensure_fd_limit(4 * WAITERS as u64 + 64);
    let sb = Sandbox::new();
    let server = sb.serve(&[]);
    let mut conn = Conn::open(&sb.socket());
    for i in 0..UNITS {
        let line = format!(
            "{{\"op\":\"want\",\"unit\":\"a-rather-long-unit-name-to-make-lists-large-{i:05}\",\"deps\":[]}}"
        );
        let answer = conn.ask(line.as_bytes());
        assert!(answer.contains("\"ok\":true"), "{answer}");
    }
    let mut waiters = Vec::new();
    for i in 0..WAITERS {
        sb.run(&["want", &format!("w{i}"), "nope"]).ok();
        let log = sb.path(&format!("w{i}.err"));
        let mut cmd = sb.cmd(&["start", &format!("w{i}"), "--poll", "200ms", "--timeout", "5m"]);
        cmd.stderr(fs::File::create(&log).unwrap());
        waiters.push((cmd.spawn().unwrap(), log));
    }
    // Each said why it waits: its first answer (and, before, its list) is in.
    eventually("every client is waiting", || {
        waiters.iter().all(|(_, log)| {
            fs::read_to_string(log).unwrap_or_default().contains("waiting for nope")
        })
    });
    let rss = proc_status(server.pid(), "VmRSS").expect("the server runs");
    for (child, _) in &mut waiters {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert!(rss < MAX_RSS_KIB, "server RSS {rss} KiB with {WAITERS} waiters");
}
