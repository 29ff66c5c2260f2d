//! Hostile clients against a live server (issue: reliability and security).
//!
//! Random and mutated lines, deep nesting, oversized lines, idle, slow and
//! non-reading clients, a flood past the connection cap, names at every
//! limit. After each attack the server must still give a well-behaved
//! client correct answers, and its state must be exactly what the accepted
//! requests made it: a refused request changes nothing (README.md, "Security and reliability").
//!
//! The random tests print their seed when they fail; rerun one with
//! `UNITSYNC_FUZZ_SEED=N cargo test --test it hostile`.

use std::fs;
use std::io::{ErrorKind, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::*;

/// The server's cap on open connections (`MAX_CONNECTIONS` in src/server/conn.rs).
const MAX_CONNECTIONS: usize = 2048;
/// The request line cap, newline excluded (PROTOCOL.md).
const MAX_LINE: usize = 64 * 1024;

// ---------------------------------------------------------------------------
// What the server holds.

/// The server's units, exactly: the `list` answer without its `now`.
fn units(socket: &Path) -> String {
    let answer = Conn::open(socket).ask(br#"{"op":"list"}"#);
    assert!(answer.starts_with(r#"{"ok":true,"#), "list failed: {answer}");
    let at = answer.find(r#""units":"#).unwrap_or_else(|| panic!("no units in {answer}"));
    answer[at..].to_owned()
}

fn kind(answer: &str) -> String {
    let v: Value = serde_json::from_str(answer).unwrap_or(Value::Null);
    v["error"]["kind"].as_str().unwrap_or("").to_owned()
}

/// Error kinds a request can earn without closing its connection.
const REFUSALS: [&str; 8] = [
    "bad_request",
    "unknown_op",
    "bad_name",
    "self_dependency",
    "cycle",
    "already_started",
    "already_completed",
    "limit",
];

/// `Threads:` of the server once only `open` connection threads are left
/// (those of clients that already left take a moment to end).
fn settled_threads(server: &Server, open: usize) -> u64 {
    eventually(&format!("{open} connection threads are left"), || {
        connection_threads(server.pid()).len() == open
    });
    proc_status(server.pid(), "Threads").expect("the server is alive")
}

/// The names of the server's connection threads (`conn-N`, N counting
/// the connections it accepted), from /proc.
fn connection_threads(pid: i32) -> Vec<String> {
    let tasks = fs::read_dir(format!("/proc/{pid}/task")).expect("the server is alive");
    let names =
        tasks.flatten().filter_map(|task| fs::read_to_string(task.path().join("comm")).ok());
    names.map(|name| name.trim_end().to_owned()).filter(|name| name.starts_with("conn-")).collect()
}

/// Fails if the server died: it must answer a `ping` on a new connection
/// (a pong, or a busy line while every slot is taken), which one that is
/// dying cannot, and still run after it.
#[track_caller]
fn assert_alive(server: &mut Server, what: &str) {
    let answer = UnixStream::connect(&server.socket)
        .map_err(|e| format!("cannot connect: {e}"))
        .and_then(|stream| Conn::with(stream).try_ask(br#"{"op":"ping"}"#));
    let answered =
        answer.as_ref().is_ok_and(|a| a.contains(r#""result":"pong""#) || kind(a) == "busy");
    if answered && server.child.try_wait().unwrap().is_none() {
        return;
    }
    let status = wait_for_exit(&mut server.child, PATIENCE, || {
        format!("the server runs {what} but does not answer a ping: {answer:?}")
    });
    panic!("the server died ({status}) {what}; its log:\n{}", clip(&server.log()));
}

/// A log for a failure message, each line cut short.
fn clip(log: &str) -> String {
    log.lines().map(|line| show(line.as_bytes())).collect::<Vec<_>>().join("\n")
}

// ---------------------------------------------------------------------------
// A seeded, reproducible generator of hostile lines.

use crate::rng::{self, Rng, seed};

fn json(s: impl AsRef<str>) -> String {
    serde_json::to_string(s.as_ref()).unwrap()
}

/// Unit names worth trying: fine ones, and ones that break each rule.
fn names() -> Vec<String> {
    let mut names: Vec<String> = [
        "a",
        "b",
        "c",
        "h1",
        "h2",
        "x.y",
        "coder_script.x[\"y\"]",
        "../../etc/passwd",
        "%s%n",
        "\\",
        "\"",
        "\u{feff}",
        "\u{202e}evil",
        "",
        " ",
        "a b",
        "\t",
        "x\ny",
        "\u{0}",
        "\u{1b}[31m",
        "\u{7f}",
        "\u{85}",
        "\u{9f}",
        "\u{a0}",
        "\u{2028}",
        "\u{3000}",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    names.extend([
        "a".repeat(255),
        "a".repeat(256),
        "é".repeat(127) + "a",
        "é".repeat(128),
        "😀".repeat(63) + "abc",
        "😀".repeat(64),
    ]);
    names
}

const OPS: [&str; 10] =
    ["ping", "want", "start", "complete", "fail", "status", "list", "launch", "PING", "want "];

fn hostile_value(rng: &mut Rng, names: &[String], depth: usize) -> String {
    match rng.below(if depth > 3 { 4 } else { 12 }) {
        0 => rng
            .pick(&[
                "0",
                "-0",
                "1e999",
                "-1e999",
                "18446744073709551616",
                "-9223372036854775809",
                "123456789012345678901234567890",
                "0.1",
                "1e-400",
                "-1",
            ])
            .to_string(),
        1 => rng.pick(&["true", "false", "null"]).to_string(),
        2 => json(rng.pick(names)),
        3 => {
            let chars = ['a', 'é', '\u{0}', '\n', '"', '\\', '😀', '\u{ffff}', ' ', '\u{7f}'];
            json((0..rng.below(20)).map(|_| *rng.pick(&chars)).collect::<String>())
        }
        4 => {
            let items: Vec<String> =
                (0..rng.below(4)).map(|_| hostile_value(rng, names, depth + 1)).collect();
            format!("[{}]", items.join(","))
        }
        5 => {
            let fields: Vec<String> = (0..rng.below(3))
                .map(|_| {
                    let key = rng.pick(&["op", "unit", "deps", "x", "", "\\u0000"]);
                    format!("\"{key}\":{}", hostile_value(rng, names, depth + 1))
                })
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        6 => {
            let n = 1 + rng.below(150);
            format!("{}{}", "[".repeat(n), "]".repeat(n))
        }
        7 => {
            let n = 1 + rng.below(150);
            format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n))
        }
        8 => rng
            .pick(&[r#""\ud800""#, r#""\udc00\ud800""#, r#""\u0000""#, r#""\x41""#, r#""\"#])
            .to_string(),
        9 => rng.pick(&["NaN", "Infinity", "undefined", "'a'", "0x10", "01", "+1"]).to_string(),
        10 => format!("\"{}\"", "x".repeat(rng.below(3000))),
        _ => json(rng.pick(&OPS)),
    }
}

/// A JSON object shaped like a request, with hostile field values.
fn structured(rng: &mut Rng, names: &[String]) -> Vec<u8> {
    let mut fields = Vec::new();
    if rng.chance(95) {
        let op = if rng.chance(85) { json(rng.pick(&OPS)) } else { hostile_value(rng, names, 1) };
        fields.push(format!("\"op\":{op}"));
    }
    if rng.chance(85) {
        let unit =
            if rng.chance(85) { json(rng.pick(names)) } else { hostile_value(rng, names, 1) };
        fields.push(format!("\"unit\":{unit}"));
    }
    if rng.chance(50) {
        let deps = if rng.chance(80) {
            let deps: Vec<String> = (0..rng.below(5))
                .map(|_| {
                    if rng.chance(90) {
                        json(rng.pick(names))
                    } else {
                        hostile_value(rng, names, 2)
                    }
                })
                .collect();
            format!("[{}]", deps.join(","))
        } else {
            hostile_value(rng, names, 1)
        };
        fields.push(format!("\"deps\":{deps}"));
    }
    if rng.chance(30) {
        let soft = if rng.chance(70) {
            rng.pick(&["true", "false"]).to_string()
        } else {
            hostile_value(rng, names, 1)
        };
        fields.push(format!("\"soft\":{soft}"));
    }
    if rng.chance(30) {
        let reasons = [
            String::new(),
            "exit status 2".into(),
            "x".repeat(1024),
            "x".repeat(1025),
            "é".repeat(512),
            "é".repeat(512) + "x",
            "line\nbreak".into(),
            "tab\there".into(),
            "nul\u{0}".into(),
        ];
        let reason =
            if rng.chance(80) { json(rng.pick(&reasons)) } else { hostile_value(rng, names, 1) };
        fields.push(format!("\"reason\":{reason}"));
    }
    for _ in 0..rng.below(3) {
        let key = rng.pick(&["x", "", "op ", "\\u0000", "__proto__", "unit\\u0000"]);
        fields.push(format!("\"{key}\":{}", hostile_value(rng, names, 1)));
    }
    if !fields.is_empty() && rng.chance(5) {
        let twice = fields[rng.below(fields.len())].clone();
        fields.push(twice);
    }
    for i in (1..fields.len()).rev() {
        fields.swap(i, rng.below(i + 1));
    }
    let space = |rng: &mut Rng| *rng.pick(&["", "", "", " ", "\t", "\r", "  "]);
    let mut line = String::from("{");
    for (i, field) in fields.iter().enumerate() {
        let comma = if i == 0 { "" } else { "," };
        line += &format!("{comma}{}{field}{}", space(rng), space(rng));
    }
    line.push('}');
    line.into_bytes()
}

/// Byte-level damage: flips, deletions, insertions, truncation, splices.
fn mutate(rng: &mut Rng, line: Vec<u8>) -> Vec<u8> {
    const BYTES: [u8; 17] = [
        0, 0xff, 0xc3, 0x80, 0xed, b'"', b'\\', b'{', b'}', b'[', b']', b',', b':', b' ', b'0',
        b'-', b'e',
    ];
    const TOKENS: [&str; 9] =
        ["\\u0000", "\\ud800", "null", "1e999", "[", "{", "\"\"", ",", "\"op\":\"list\","];
    rng::mutate(rng, line, &BYTES, &TOKENS)
}

/// The valid requests of PROTOCOL.md, to be damaged.
const TEMPLATES: [&str; 8] = [
    r#"{"op":"ping"}"#,
    r#"{"op":"want","unit":"b","deps":["a"],"soft":false}"#,
    r#"{"op":"want","unit":"a","deps":["c","h1"],"soft":true}"#,
    r#"{"op":"start","unit":"b"}"#,
    r#"{"op":"complete","unit":"a"}"#,
    r#"{"op":"fail","unit":"a","reason":"exit status 2"}"#,
    r#"{"op":"status","unit":"a"}"#,
    r#"{"op":"list"}"#,
];

/// One hostile line, never containing a newline, never over the cap.
fn hostile_line(rng: &mut Rng, names: &[String]) -> Vec<u8> {
    let mut line = match rng.below(100) {
        0..15 => (0..rng.below(200)).map(|_| rng.next() as u8).collect(),
        15..50 => structured(rng, names),
        50..70 => {
            let template = rng.pick(&TEMPLATES).as_bytes().to_vec();
            mutate(rng, template)
        }
        70..90 => {
            let line = structured(rng, names);
            mutate(rng, line)
        }
        90..95 => rng.pick(&[&b""[..], b" ", b"\t \r", b"\0", b"\0\0\0\0", b"\r"]).to_vec(),
        _ => {
            let n = 1000 + rng.below(20_000);
            match rng.below(3) {
                0 => format!("{}{}", "[".repeat(n), "]".repeat(n)),
                1 => format!("{{\"op\":\"ping\",\"x\":{}{}}}", "[".repeat(n), "]".repeat(n)),
                _ => format!(
                    "{{\"op\":\"ping\",\"x\":{}1{}}}",
                    "{\"a\":".repeat(n / 2),
                    "}".repeat(n / 2)
                ),
            }
            .into_bytes()
        }
    };
    for b in &mut line {
        if *b == b'\n' {
            *b = b' ';
        }
    }
    line.truncate(MAX_LINE);
    line
}

// ---------------------------------------------------------------------------
// The well-behaved client.

/// The well-behaved client's step `k`: declare good-k after good-(k-1),
/// start it, complete it. Each line with (part of) its exact answer.
fn good_step(k: usize) -> Vec<(String, String)> {
    let unit = format!("good-{k}");
    let want = match k {
        0 => (
            format!(r#"{{"op":"want","unit":"{unit}"}}"#),
            r#""result":"wanted","added":0,"registered":true}"#.to_owned(),
        ),
        _ => (
            format!(r#"{{"op":"want","unit":"{unit}","deps":["good-{}"]}}"#, k - 1),
            r#""result":"wanted","added":1,"registered":true}"#.to_owned(),
        ),
    };
    vec![
        want,
        (
            format!(r#"{{"op":"start","unit":"{unit}"}}"#),
            r#""result":"started","waited":0.0,"waited_for":[]}"#.to_owned(),
        ),
        (
            format!(r#"{{"op":"complete","unit":"{unit}"}}"#),
            r#""result":"completed","ran":"#.to_owned(),
        ),
    ]
}

// ---------------------------------------------------------------------------
// The attacks.

#[test]
fn thousands_of_random_and_mutated_lines_change_nothing_they_should_not() {
    const LINES: usize = 5000;
    let seed = seed();
    let mut rng = Rng(seed);
    let names = names();
    let sb = Sandbox::new();
    let mut server = sb.serve(&[]);
    // A second, quiet server told only what the first one accepted: at the
    // end both must hold the same graph.
    let twin_sb = Sandbox::new();
    let _twin = twin_sb.serve(&[]);
    let mut twin = Conn::open(&twin_sb.socket());
    let mut good = Conn::open(&sb.socket());
    let mut observer = Conn::open(&sb.socket());
    let mut hostile = Conn::open(&sb.socket());
    let snapshot = |observer: &mut Conn| {
        let answer = observer.ask(br#"{"op":"list"}"#);
        answer[answer.find(r#""units":"#).unwrap()..].to_owned()
    };
    let mut before = snapshot(&mut observer);
    let (mut accepted, mut refused, mut steps) = (0, 0, 0);
    let began = Instant::now();
    for i in 0..LINES {
        let line = hostile_line(&mut rng, &names);
        let context = |why: &str| {
            format!(
                "seed {seed} (rerun with UNITSYNC_FUZZ_SEED={seed}), line #{i} {}: {why}",
                show(&line)
            )
        };
        // Now and then the line is the last one of its connection, sent
        // without a newline and followed by a half-close: it still counts.
        let last_of_connection = rng.chance(3);
        let answer = if last_of_connection {
            let sent =
                hostile.send(&line).and_then(|()| hostile.stream().shutdown(Shutdown::Write));
            let answer = sent.map_err(|e| e.to_string()).and_then(|()| match hostile.line() {
                Ok(Some(answer)) => Ok(answer),
                Ok(None) if line.is_empty() => Ok(String::new()),
                Ok(None) => Err("closed without answering".to_owned()),
                Err(e) => Err(e.to_string()),
            });
            hostile = Conn::open(&sb.socket());
            answer
        } else {
            hostile.try_ask(&line)
        };
        let answer = answer.unwrap_or_else(|why| {
            assert_alive(&mut server, &context(&why));
            panic!("{}; server log:\n{}", context(&why), clip(&server.log()))
        });
        if answer.is_empty() {
            // A blank final line is no request at all.
            continue;
        }
        let parsed: Value = serde_json::from_str(&answer).unwrap_or_else(|e| {
            panic!("{}", context(&format!("answer is not JSON ({e}): {answer}")))
        });
        let after = snapshot(&mut observer);
        if parsed["ok"] == Value::Bool(true) {
            accepted += 1;
            // The quiet server must take it the same way.
            let mirrored = twin.ask(&line);
            assert_eq!(
                normalized(&mirrored),
                normalized(&answer),
                "{}",
                context("the quiet server answered an accepted line differently")
            );
        } else {
            refused += 1;
            let kind = kind(&answer);
            assert!(
                REFUSALS.contains(&kind.as_str()),
                "{}",
                context(&format!("unexpected refusal {answer}"))
            );
            assert_eq!(
                after,
                before,
                "{}",
                context(&format!("refused ({answer}) yet the state changed"))
            );
        }
        before = after;
        if i % 200 == 199 {
            for (request, expected) in good_step(steps) {
                for (who, conn) in [("server", &mut good), ("quiet server", &mut twin)] {
                    let got = conn.ask(request.as_bytes());
                    assert!(
                        got.starts_with(r#"{"ok":true,"#) && got.contains(&expected),
                        "{}",
                        context(&format!(
                            "the {who} answered the well-behaved {request} with {got}"
                        ))
                    );
                }
            }
            steps += 1;
            before = snapshot(&mut observer);
        }
    }
    let list = |conn: &mut Conn| normalized(&conn.ask(br#"{"op":"list"}"#));
    assert_eq!(
        list(&mut observer),
        list(&mut twin),
        "seed {seed}: after {LINES} lines the server's graph differs from the quiet server's"
    );
    assert!(units(&sb.socket()).contains(&format!(r#""unit":"good-{}""#, steps - 1)));
    sb.run(&["ping"]).ok();
    eprintln!(
        "hostile lines: seed {seed}, {LINES} lines ({accepted} accepted, {refused} refused), \
         {steps} well-behaved steps, {:?}",
        began.elapsed()
    );
}

#[test]
fn deep_nesting_gets_an_error_and_the_server_lives() {
    let sb = Sandbox::new();
    let mut server = sb.serve(&[]);
    sb.run(&["want", "b", "a"]).ok();
    let before = units(&sb.socket());
    let mut conn = Conn::open(&sb.socket());
    let arrays = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    let objects = |n: usize| format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n));
    for depth in [16, 32, 64, 96, 127, 128, 129, 200, 1000, 10_000] {
        let cases = [
            format!(r#"{{"op":"ping","x":{}}}"#, arrays(depth)),
            format!(r#"{{"x":{},"op":"ping"}}"#, arrays(depth)),
            format!(r#"{{"op":"ping","x":{}}}"#, objects(depth)),
            format!(r#"{{"op":"want","unit":"n","deps":{}}}"#, arrays(depth)),
            arrays(depth),
        ];
        for (i, line) in cases.iter().enumerate() {
            let answer = conn.try_ask(line.as_bytes()).unwrap_or_else(|why| {
                assert_alive(
                    &mut server,
                    &format!("on {} nested levels: {}", depth, show(line.as_bytes())),
                );
                panic!("{}: {why}", show(line.as_bytes()))
            });
            // Unknown fields are skipped however deep (without recursion);
            // a known field or the request itself nested is a bad request.
            // Never a crash.
            let pong = answer.contains(r#""result":"pong""#);
            let bad = kind(&answer) == "bad_request";
            let expected = match i {
                0..=2 => pong,
                _ => bad,
            };
            assert!(expected, "{depth} levels, {}: {answer}", show(line.as_bytes()));
            // The connection stays usable.
            assert!(conn.ask(br#"{"op":"ping"}"#).contains(r#""result":"pong""#));
        }
    }
    // 100,000 brackets are over the line cap: refused, connection closed.
    let answer = conn.ask("[".repeat(100_000).as_bytes());
    assert_eq!(kind(&answer), "line_too_long", "{answer}");
    assert!(conn.is_closed(), "the connection stayed open after line_too_long");
    assert_eq!(units(&sb.socket()), before);
    sb.run(&["status", "b"]).ok().stdout_has("startable:  no, waiting for a (never registered)\n");
}

#[test]
fn a_line_over_64_kib_closes_only_its_own_connection() {
    let sb = Sandbox::new();
    let mut server = sb.serve(&[]);
    let mut bystander = Conn::open(&sb.socket());
    assert!(bystander.ask(br#"{"op":"want","unit":"b","deps":["a"]}"#).contains(r#""added":1"#));
    // A line of exactly 64 KiB is fine, and applied.
    let padded = |head: &str, len: usize| {
        let mut line = format!(r#"{head},"pad":""#);
        line += &"x".repeat(len - line.len() - 2);
        line += "\"}";
        assert_eq!(line.len(), len);
        line.into_bytes()
    };
    let mut conn = Conn::open(&sb.socket());
    assert!(conn.ask(&padded(r#"{"op":"ping""#, MAX_LINE)).contains(r#""result":"pong""#));
    let answer = conn.ask(&padded(r#"{"op":"want","unit":"at-cap","deps":["d"]"#, MAX_LINE));
    assert!(answer.contains(r#""result":"wanted","added":1"#), "{answer}");
    // One byte more is refused, not applied, and ends the connection.
    let answer = conn.ask(&padded(r#"{"op":"want","unit":"over-cap","deps":["e"]"#, MAX_LINE + 1));
    assert!(
        answer.contains(r#""kind":"line_too_long","message":"request line longer than 65536 bytes; closing the connection"}"#),
        "{answer}"
    );
    assert!(conn.is_closed(), "the connection stayed open after line_too_long");
    // A megabyte without a newline, and one of NUL bytes: the same.
    for filler in [b'x', b'\0'] {
        let mut conn = Conn::open(&sb.socket());
        // The server stops reading at the cap, so this write may fail.
        let _ = conn.send(&vec![filler; 1 << 20]);
        let answer = conn.line().ok().flatten().unwrap_or_default();
        assert_eq!(kind(&answer), "line_too_long", "{answer}");
        assert!(conn.is_closed());
    }
    assert_alive(&mut server, "after oversized lines");
    // Everyone else was never disturbed.
    let answer = bystander.ask(br#"{"op":"start","unit":"b"}"#);
    assert!(
        answer.contains(r#""result":"blocked""#)
            && answer.contains(r#""unit":"a","status":"not registered""#),
        "{answer}"
    );
    sb.run(&["status", "over-cap", "--json"]).ok().stdout_has("\"status\": \"not registered\"");
    sb.run(&["status", "e", "--json"]).ok().stdout_has("\"status\": \"not registered\"");
    let at_cap = sb.run(&["status", "at-cap"]);
    at_cap.ok().stdout_has("depends on: d (not registered, unmet)\n");
}

#[test]
fn idle_and_half_sent_clients_hold_up_no_one() {
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    // 100 clients that connect and say nothing, and one that stops halfway
    // through a line. The idle timeout is a minute: far longer than this.
    let idle: Vec<UnixStream> =
        (0..100).map(|_| UnixStream::connect(sb.socket()).unwrap()).collect();
    let mut partial = Conn::open(&sb.socket());
    partial.send(br#"{"op":"want","unit":"par"#).unwrap();
    for k in 0..5 {
        let dep = format!("good-{}", k.max(1) - 1);
        let unit = format!("good-{k}");
        let args: Vec<&str> = if k == 0 { vec!["want", &unit] } else { vec!["want", &unit, &dep] };
        sb.run(&args).ok();
        sb.run(&["start", &unit, "--timeout", "5s"]).ok();
        sb.run(&["complete", &unit]).ok();
    }
    // Blocked behind an idle client, they would have waited for its idle
    // timeout (a minute), which drops it: the idle ones answer below, so
    // no command waited for them.
    // The half-sent line completes, and is answered.
    partial.send(b"tial\",\"deps\":[\"good-4\"]}\n").unwrap();
    let answer = partial.line().unwrap().unwrap();
    assert!(answer.contains(r#""result":"wanted","added":1,"registered":true"#), "{answer}");
    // A final line without a newline, then a half-close: still answered.
    let mut last = Conn::open(&sb.socket());
    last.send(br#"{"op":"start","unit":"partial"}"#).unwrap();
    last.stream().shutdown(Shutdown::Write).unwrap();
    let answer = last.line().unwrap().unwrap_or_default();
    assert!(answer.contains(r#""result":"started","waited":0.0"#), "{answer}");
    assert!(last.is_closed());
    // The idle ones were not dropped meanwhile.
    for stream in &idle {
        let mut conn = Conn::with(stream.try_clone().unwrap());
        assert!(conn.ask(br#"{"op":"ping"}"#).contains("pong"), "an idle client was dropped");
    }
    sb.run(&["status", "good-4", "--json"]).ok().stdout_has("\"status\": \"completed\"");
    sb.run(&["status", "partial", "--json"]).ok().stdout_has("\"status\": \"started\"");
    drop(idle);
}

#[test]
fn a_request_sent_one_byte_at_a_time_gets_its_answer() {
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    let mut slow = Conn::open(&sb.socket());
    let mut other = Conn::open(&sb.socket());
    let mut dribble = |line: &str| {
        // Multi-byte names are split across writes too.
        for (i, byte) in line.bytes().enumerate() {
            slow.send(&[byte]).unwrap();
            sleep(Duration::from_millis(1));
            if i % 8 == 0 {
                // Others are served between the bytes.
                assert!(other.ask(br#"{"op":"ping"}"#).contains("pong"));
            }
        }
        slow.line().unwrap().unwrap_or_else(|| panic!("no answer to {line}"))
    };
    let answer =
        dribble("{\"op\":\"want\",\"unit\":\"slow-é\",\"deps\":[\"dep-ü\"],\"soft\":true}\n");
    assert!(answer.contains(r#""result":"wanted","added":1,"registered":true}"#), "{answer}");
    let answer = dribble("{\"op\":\"start\",\"unit\":\"slow-é\"}\n");
    assert!(
        answer.contains(r#""result":"blocked""#)
            && answer.contains(r#""unmet":[{"unit":"dep-ü","status":"not registered","soft":true,"satisfied":false"#),
        "{answer}"
    );
    // The opposite: several requests in one write, answered in order.
    slow.send(b"{\"op\":\"fail\",\"unit\":\"dep-\xc3\xbc\"}\n{\"op\":\"start\",\"unit\":\"slow-\xc3\xa9\"}\n{\"op\":\"ping\"}\n")
        .unwrap();
    let answers: Vec<String> = (0..3).map(|_| slow.line().unwrap().unwrap()).collect();
    assert!(answers[0].contains(r#""result":"failed""#), "{answers:?}");
    assert!(answers[1].contains(r#""result":"started""#), "{answers:?}");
    assert!(answers[2].contains(r#""result":"pong""#), "{answers:?}");
}

#[test]
fn a_client_that_never_reads_is_dropped_and_others_are_served() {
    let sb = Sandbox::new();
    let mut server = sb.serve(&[]);
    for i in 0..50 {
        sb.run(&["want", &format!("unit-{i:02}"), "dep-a", "dep-b"]).ok();
    }
    let before = units(&sb.socket());
    let earlier = connection_threads(server.pid());
    // Send list after list and read nothing, until neither the server's
    // answers nor our requests fit in the socket buffers any more.
    let stuck = UnixStream::connect(sb.socket()).unwrap();
    stuck.set_write_timeout(Some(Duration::from_millis(500))).unwrap();
    let mut sent = 0;
    let full = loop {
        match (&stuck).write_all(b"{\"op\":\"list\"}\n") {
            Ok(()) => sent += 1,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                break Instant::now();
            }
            Err(e) => panic!("the server dropped the client after {sent} requests already: {e}"),
        }
        assert!(sent < 1_000_000, "the server kept reading without being read");
    };
    // The one connection thread that came since is the stuck client's.
    let now = connection_threads(server.pid());
    let new: Vec<&String> = now.iter().filter(|t| !earlier.contains(t)).collect();
    assert_eq!(
        new.len(),
        1,
        "connection threads before the stuck client {earlier:?}, after {now:?}"
    );
    let stuck_thread = new[0].clone();
    // Its thread is stuck writing; nobody else is.
    for _ in 0..20 {
        sb.run(&["ping"]).ok();
    }
    assert_eq!(units(&sb.socket()), before);
    // Blocked behind the stuck writer, the pings would have waited until
    // its write timeout ended that thread.
    assert!(
        connection_threads(server.pid()).contains(&stuck_thread),
        "the pings were answered only once the stuck client was dropped"
    );
    // After its write timeout (10 s) the server gives up on that client,
    // which still holds its end open.
    eventually(&format!("the stuck client's thread ends ({sent} requests sent)"), || {
        !connection_threads(server.pid()).contains(&stuck_thread)
    });
    let after = full.elapsed();
    assert!(
        after > Duration::from_secs(5),
        "a client that paused reading was dropped after only {after:?}"
    );
    assert_alive(&mut server, "after a client that never reads");
    sb.run(&["ping"]).ok();
    assert_eq!(units(&sb.socket()), before);
    drop(stuck);
}

#[test]
fn a_flood_past_the_connection_cap_gets_busy_and_recovers() {
    const FLOOD: usize = MAX_CONNECTIONS + 52;
    ensure_fd_limit(2 * FLOOD as u64);
    let sb = Sandbox::new();
    let mut server = sb.serve(&[]);
    sb.run(&["want", "b", "a"]).ok();
    let before = units(&sb.socket());
    let baseline = settled_threads(&server, 0);
    let busy = |answer: &str| {
        answer.contains(&format!(
            r#""kind":"busy","message":"server busy: {MAX_CONNECTIONS} connections are open; retry later or close idle clients"}}"#
        ))
    };
    // Open them all, then ask each one: the first MAX_CONNECTIONS are
    // served, every later one gets one busy line and is closed.
    let open_and_ping = |count: usize| {
        let mut conns: Vec<Conn> = (0..count)
            .map(|i| {
                let stream = UnixStream::connect(sb.socket())
                    .unwrap_or_else(|e| panic!("connection {i} of {count} failed: {e}"));
                Conn::with(stream)
            })
            .collect();
        let mut answers = Vec::new();
        for (i, conn) in conns.iter_mut().enumerate() {
            // A connection past the cap is told "busy" and closed at once, so
            // the write may fail; the busy line is there to read regardless.
            let _ = conn.send(b"{\"op\":\"ping\"}\n");
            let answer = match conn.line() {
                Ok(Some(answer)) => answer,
                other => format!("#{i}: no answer: {other:?}"),
            };
            answers.push(answer);
        }
        (conns, answers)
    };
    let (mut conns, answers) = open_and_ping(FLOOD);
    let served = answers.iter().take_while(|a| a.contains(r#""result":"pong""#)).count();
    assert_eq!(
        served,
        MAX_CONNECTIONS,
        "the first {MAX_CONNECTIONS} must be served: {:?}",
        answers.get(served)
    );
    let refused: Vec<&String> = answers[served..].iter().filter(|a| !busy(a)).collect();
    assert!(refused.is_empty(), "past the cap, not a busy line: {:?}", refused.first());
    for conn in &mut conns[served..] {
        assert!(conn.is_closed(), "a connection past the cap was kept open");
    }
    // The real client says so, as "unreachable", every time.
    for _ in 0..20 {
        sb.run(&["ping"]).code(3).stderr_has(&format!(
            ": server busy: {MAX_CONNECTIONS} connections are open; retry later or close idle clients\n"
        ));
    }
    assert_alive(&mut server, "with every connection slot taken");
    // Once they close, every slot is free again: all of them, not one less.
    drop(conns);
    eventually("the connection threads of the clients that left end", || {
        proc_status(server.pid(), "Threads").is_some_and(|n| n <= baseline)
    });
    sb.run(&["ping"]).ok();
    let (conns, answers) = open_and_ping(MAX_CONNECTIONS + 1);
    let served = answers.iter().filter(|a| a.contains(r#""result":"pong""#)).count();
    assert_eq!(served, MAX_CONNECTIONS, "after a flood, not every slot came back");
    assert!(busy(&answers[MAX_CONNECTIONS]), "{}", answers[MAX_CONNECTIONS]);
    drop(conns);
    eventually("the second flood's clients are gone", || sb.run(&["ping"]).code == Some(0));
    assert_eq!(units(&sb.socket()), before);
    eprintln!(
        "flood: {FLOOD} then {} connections, {MAX_CONNECTIONS} served each time",
        MAX_CONNECTIONS + 1
    );
}

#[test]
fn a_server_short_of_file_descriptors_says_busy_and_does_not_spin() {
    // Where the open-files limit is below the connection cap (1024 is a
    // common default), running out of descriptors must look like the cap:
    // a busy line, not a client left hanging and a CPU spinning.
    require("prlimit");
    ensure_fd_limit(1024);
    let sb = Sandbox::new();
    let mut server = sb.serve_via(&["prlimit", "--nofile=128:128"], Path::new(BIN), &[]);
    let mut conns: Vec<Conn> = (0..200).map(|_| Conn::open(&sb.socket())).collect();
    for conn in &mut conns {
        // A client told "busy" is closed at once, maybe before this write
        // lands (a broken pipe); its busy line is there to read regardless.
        let _ = conn.send(b"{\"op\":\"ping\"}\n");
    }
    let (mut pong, mut busy, mut silent) = (0, 0, 0);
    let mut wait = PATIENCE;
    for conn in &mut conns {
        conn.stream().set_read_timeout(Some(wait)).unwrap();
        match conn.line() {
            Ok(Some(answer)) if answer.contains("pong") => pong += 1,
            Ok(Some(answer)) if kind(&answer) == "busy" => busy += 1,
            _ => {
                silent += 1;
                // One silent client fails the test; do not wait long for each.
                wait = Duration::from_millis(10);
            }
        }
    }
    let cpu = |pid: i32| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let fields: Vec<&str> =
            stat.rsplit_once(") ").map_or("", |(_, rest)| rest).split(' ').collect();
        fields.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
            + fields.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
    };
    // Its CPU time while nothing happens, as a share of the time that
    // passed: about nothing when it waits, a whole core's worth when it
    // spins (less on a busy machine, still far above the bar).
    let (began, spent) = (Instant::now(), cpu(server.pid()));
    sleep(Duration::from_secs(2));
    let ticks = cpu(server.pid()).saturating_sub(spent);
    let percent = ticks as f64 * 10.0 / began.elapsed().as_millis() as f64 * 100.0;
    assert_alive(&mut server, "out of file descriptors");
    assert!(
        silent == 0 && busy > 0 && percent < 20.0,
        "with RLIMIT_NOFILE 128 and 200 clients: {pong} served, {busy} told busy, {silent} got \
         no answer at all; the server then used {percent:.0}% of a CPU ({ticks} ticks of 1/100 s \
         in {:?}) while idle",
        began.elapsed()
    );
}

#[test]
fn names_and_reasons_at_and_over_their_limits() {
    let sb = Sandbox::new();
    let mut server = sb.serve(&[]);
    let mut conn = Conn::open(&sb.socket());
    let a255 = "a".repeat(255);
    let multi255 = "é".repeat(127) + "x";
    let emoji255 = "😀".repeat(63) + "abc";
    for name in [&a255, &multi255, &emoji255] {
        assert_eq!(name.len(), 255);
        sb.run(&["want", name, &format!("{}z", &name[..254])]).ok();
        sb.run(&["start", name, "--timeout", "100ms"]).code(4);
        sb.run(&["complete", &format!("{}z", &name[..254])]).ok();
        sb.run(&["start", name]).ok();
        sb.run(&["fail", name, "--reason", &"r".repeat(1024)]).ok();
    }
    // Reasons: 1,024 bytes pass, in any script.
    let at = "é".repeat(512);
    sb.run(&["fail", "r", "--reason", &at]).ok();
    sb.run(&["status", "r", "--json"]).ok().stdout_has(&format!("\"reason\": \"{at}\""));
    let before = units(&sb.socket());
    let too_long = "a name is 1 to 255 bytes long";
    for name in
        ["a".repeat(256), "é".repeat(128), "😀".repeat(64), "a".repeat(60_000), String::new()]
    {
        for line in [
            format!(r#"{{"op":"want","unit":{}}}"#, json(&name)),
            format!(r#"{{"op":"want","unit":"ok","deps":["fine",{}]}}"#, json(&name)),
            format!(r#"{{"op":"start","unit":{}}}"#, json(&name)),
            format!(r#"{{"op":"complete","unit":{}}}"#, json(&name)),
            format!(r#"{{"op":"fail","unit":{}}}"#, json(&name)),
            format!(r#"{{"op":"status","unit":{}}}"#, json(&name)),
        ] {
            let answer = conn.ask(line.as_bytes());
            assert!(
                answer.contains(r#""kind":"bad_name""#) && answer.contains(too_long),
                "{answer}"
            );
            // The message quotes the name cut short, never 60 KB of it.
            assert!(
                answer.len() < 1024,
                "{} bytes of error: {}",
                answer.len(),
                show(answer.as_bytes())
            );
        }
    }
    for (name, rule) in [
        ("a b", "whitespace"),
        ("a\u{a0}b", "whitespace"),
        ("a\u{2028}b", "whitespace"),
        ("a\u{3000}b", "whitespace"),
        ("a\u{0}b", "control characters"),
        ("a\u{1b}b", "control characters"),
        ("a\u{7f}b", "control characters"),
        ("a\u{9f}b", "control characters"),
    ] {
        let answer = conn.ask(format!(r#"{{"op":"start","unit":{}}}"#, json(name)).as_bytes());
        assert!(answer.contains(&format!("a name may not contain {rule}")), "{name:?}: {answer}");
    }
    // The CLI says the same as the wire, and nothing changed.
    sb.run(&["want", &"b".repeat(256), "x"]).code(1).stderr_has(too_long);
    sb.run(&["want", "x", &"b".repeat(256)]).code(1).stderr_has(too_long);
    assert_eq!(units(&sb.socket()), before, "a refused request changed the state");
    // A reason past the limits is cleaned by the server, never refused: a
    // failure must not be lost to its wording.
    for (reason, kept) in [
        ("x".repeat(1025), "x".repeat(1021) + "..."),
        (at.clone() + "x", "é".repeat(510) + "..."),
        ("two\nlines".into(), "two / lines".into()),
        ("tab\there".into(), "tab here".into()),
    ] {
        let line = format!(r#"{{"op":"fail","unit":"r","reason":{}}}"#, json(&reason));
        let answer = conn.ask(line.as_bytes());
        assert!(answer.contains(r#""result":"failed""#), "{answer}");
        sb.run(&["status", "r", "--json"]).ok().stdout_has(&format!("\"reason\": {}", json(&kept)));
    }
    assert_alive(&mut server, "after names over the limits");
}

#[test]
fn the_unit_cap_refuses_cleanly_and_changes_nothing() {
    const MAX_UNITS: usize = 250_000;
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    let mut conn = Conn::open(&sb.socket());
    // Fill to one below the cap: units of 1,000 fresh dependencies each.
    let mut count = 0;
    let mut batch = 0;
    while count < MAX_UNITS - 1 {
        let deps = (MAX_UNITS - 1 - count - 1).min(1000);
        let names: Vec<String> = (0..deps).map(|i| format!("\"p{batch}-{i}\"")).collect();
        let line = format!(r#"{{"op":"want","unit":"h{batch}","deps":[{}]}}"#, names.join(","));
        let answer = conn.ask(line.as_bytes());
        assert!(answer.contains(r#""result":"wanted""#), "at {count} units: {answer}");
        count += deps + 1;
        batch += 1;
    }
    let limit = r#""kind":"limit","message":"too many units: this server holds at most 250000"}"#;
    // Two new units where one fits: refused whole.
    let answer = conn.ask(br#"{"op":"want","unit":"last","deps":["one-too-many"]}"#);
    assert!(answer.contains(limit), "{answer}");
    // So exactly one still fits, and then nothing.
    let answer = conn.ask(br#"{"op":"want","unit":"last"}"#);
    assert!(answer.contains(r#""registered":true"#), "the refused want took a slot: {answer}");
    for line in [
        &br#"{"op":"want","unit":"last","deps":["new"]}"#[..],
        br#"{"op":"start","unit":"new"}"#,
        br#"{"op":"complete","unit":"new"}"#,
        br#"{"op":"fail","unit":"new"}"#,
    ] {
        let answer = conn.ask(line);
        assert!(answer.contains(limit), "{}: {answer}", show(line));
    }
    // Known units still work.
    assert!(conn.ask(br#"{"op":"complete","unit":"p0-0"}"#).contains(r#""result":"completed""#));
    let answer = conn.ask(br#"{"op":"status","unit":"new"}"#);
    assert!(
        answer.contains(
            r#""status":"not registered","startable":true,"dependencies":[],"reason":null,"note":null,"failed_by":null,"since":0.0"#
        ),
        "{answer}"
    );
    sb.run(&["start", "new"])
        .code(1)
        .stderr_has("too many units: this server holds at most 250000\n");
}

#[test]
fn answers_longer_than_a_request_line_still_reach_the_client() {
    // The 64 KiB cap is on requests. A unit with 200 long dependencies, or
    // a graph of 1,000 units, makes answers far longer than that.
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    let deps: Vec<String> = (0..200).map(|i| format!("d{i:03}{}", "x".repeat(251))).collect();
    let mut args = vec!["want", "big"];
    args.extend(deps.iter().map(String::as_str));
    sb.run(&args).ok();
    let mut conn = Conn::open(&sb.socket());
    let status = conn.ask(br#"{"op":"status","unit":"big"}"#);
    assert!(status.len() > MAX_LINE, "the test needs a longer answer: {} bytes", status.len());
    sb.run(&["status", "big"]).ok().stdout_has("startable:  no, waiting for d000");
    sb.run(&["start", "big", "--timeout", "200ms"])
        .code(4)
        .stderr_has("big: timed out after 200ms waiting for d000");
    for i in 0..1000 {
        conn.ask(format!(r#"{{"op":"want","unit":"u{i:04}"}}"#).as_bytes());
    }
    let list = sb.run(&["list", "--json"]);
    list.ok();
    let parsed: Value = serde_json::from_str(&list.stdout).expect("list --json is JSON");
    assert_eq!(parsed.as_array().map(Vec::len), Some(1201), "{list}");
}

#[test]
fn refused_names_cannot_forge_server_log_lines() {
    // Whatever a refused request carries, the log stays one line per event:
    // a name with a newline must not start a line of its own.
    let sb = Sandbox::new();
    let server = sb.serve(&[]);
    let mut conn = Conn::open(&sb.socket());
    for op in ["want", "start", "complete", "fail"] {
        let forged = format!("x\n+0.500s {op}-forged completed (ran 1ms)\r+0.600s y");
        let line = format!(r#"{{"op":"{op}","unit":{}}}"#, json(&forged));
        assert_eq!(kind(&conn.ask(line.as_bytes())), "bad_name");
    }
    let long = format!(r#"{{"op":"start","unit":"{}"}}"#, " ".repeat(60_000));
    assert_eq!(kind(&conn.ask(long.as_bytes())), "bad_name");
    sb.run(&["start", "real"]).ok();
    eventually("the server logs the real start", || server.log().contains(" real started\n"));
    let log = clip(&server.log());
    for line in server.log().lines() {
        let stamped =
            line.strip_prefix('+').and_then(|l| l.split_once("s ")).is_some_and(|(t, _)| {
                t.split_once('.').is_some_and(|(s, ms)| {
                    s.bytes().all(|b| b.is_ascii_digit())
                        && ms.len() == 3
                        && ms.bytes().all(|b| b.is_ascii_digit())
                })
            });
        let line = line.as_bytes();
        assert!(stamped, "a log line that is not one stamped event: {}\nlog:\n{log}", show(line));
        let forged = line.windows(17).any(|w| w == b"-forged completed");
        let refused = line.windows(7).any(|w| w == b"refused");
        assert!(!forged || refused, "a forged log line: {}\nlog:\n{log}", show(line));
        assert!(
            !line.contains(&b'\r'),
            "a carriage return in the log: {}\nlog:\n{log}",
            show(line)
        );
        assert!(line.len() < 1024, "a {}-byte log line for a refused request", line.len());
    }
}

#[test]
fn clients_that_vanish_mid_answer_never_kill_the_server() {
    let sb = Sandbox::new();
    let mut server = sb.serve(&[]);
    let mut conn = Conn::open(&sb.socket());
    for i in 0..300 {
        conn.ask(format!(r#"{{"op":"want","unit":"u{i:03}","deps":["d{i:03}"]}}"#).as_bytes());
    }
    let before = units(&sb.socket());
    // `conn` is still open.
    let baseline = settled_threads(&server, 1);
    let vanish = |bytes: &[u8]| {
        let stream = UnixStream::connect(sb.socket()).unwrap();
        let _ = (&stream).write_all(bytes);
        drop(stream);
    };
    for round in 0..300 {
        // A long answer written to a socket already closed (EPIPE), a
        // request cut mid-line, and a connection that only says hello.
        vanish(b"{\"op\":\"list\"}\n{\"op\":\"list\"}\n");
        vanish(br#"{"op":"want","unit":"cut"#);
        vanish(b"");
        if round % 100 == 0 {
            assert_alive(&mut server, "while clients vanished mid-answer");
        }
    }
    eventually("the connection threads of vanished clients end", || {
        proc_status(server.pid(), "Threads").is_some_and(|n| n <= baseline)
    });
    assert_alive(&mut server, "after 900 vanished clients");
    assert_eq!(units(&sb.socket()), before);
    sb.run(&["ping"]).ok();
}
