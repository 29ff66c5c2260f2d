//! Seeded fuzzing of the request parser: random, generated and damaged
//! lines through [`parse_request`]. It must never panic; it refuses only
//! with `bad_request` or `unknown_op`; whatever it accepts serializes back
//! to one line that parses to the same request. A failure prints its seed:
//! rerun it with `UNITSYNC_FUZZ_SEED=N cargo test fuzz`.

use super::*;

/// Lines tried per run.
const LINES: usize = 20_000;

use crate::rng::{self, Rng, seed};

const NAMES: [&str; 16] = [
    "a",
    "b",
    "git-clone",
    "coder_script.x[\"y\"]",
    "",
    " ",
    "a b",
    "x\ny",
    "\u{0}",
    "\u{7f}",
    "\u{85}",
    "\u{2028}",
    "\u{feff}",
    "é",
    "😀",
    "\\",
];

const OPS: [&str; 9] =
    ["ping", "want", "start", "ready", "complete", "fail", "status", "list", "stop_waiting"];

/// A random name: from the list, cut to a size, or random characters.
fn name(rng: &mut Rng) -> String {
    match rng.below(4) {
        0 => "a".repeat(254 + rng.below(3)),
        1 => "é".repeat(127 + rng.below(2)),
        2 => {
            let chars = ['a', 'Z', '-', '.', 'é', '😀', '\u{0}', '\n', '"', '\\', '\u{ffff}', ' '];
            (0..rng.below(12)).map(|_| *rng.pick(&chars)).collect()
        }
        _ => rng.pick(&NAMES).to_string(),
    }
}

/// A random JSON value, as text. A `tame` one is valid JSON that any JSON
/// parser holds (no lone surrogates, no infinite numbers, nesting well
/// within serde_json's limit of 128), so an unknown field may carry it.
fn value(rng: &mut Rng, depth: usize, tame: bool) -> String {
    let deepest = if tame { 100 } else { 200 };
    match rng.below(if depth > 4 { 5 } else { 9 }) {
        0 if tame => rng.pick(&["0", "-0", "18446744073709551616", "-1", "0.5", "7"]).to_string(),
        0 => rng
            .pick(&["0", "-0", "1e999", "18446744073709551616", "-1", "0.5", "1e-400", "7"])
            .to_string(),
        1 => rng.pick(&["true", "false", "null"]).to_string(),
        2 => serde_json::to_string(&name(rng)).unwrap(),
        3 if tame => rng.pick(&[r#""\u0000""#, r#""\u00e9""#, r#""\/""#]).to_string(),
        3 => rng.pick(&[r#""\ud800""#, r#""\u0000""#, r#""\u00e9""#, r#""\/""#]).to_string(),
        4 => serde_json::to_string(rng.pick(&OPS)).unwrap(),
        5 => {
            let items: Vec<String> =
                (0..rng.below(4)).map(|_| value(rng, depth + 1, tame)).collect();
            format!("[{}]", items.join(","))
        }
        6 => {
            let fields: Vec<String> = (0..rng.below(4))
                .map(|_| {
                    let key = rng.pick(&["op", "unit", "deps", "soft", "reason", "note", "x", ""]);
                    format!("\"{key}\":{}", value(rng, depth + 1, tame))
                })
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        7 => {
            let n = 1 + rng.below(deepest);
            format!("{}{}", "[".repeat(n), "]".repeat(n))
        }
        _ => {
            let n = 1 + rng.below(deepest);
            format!("{}0{}", "{\"a\":".repeat(n), "}".repeat(n))
        }
    }
}

/// A `start`'s owner, half the time.
fn owner(rng: &mut Rng) -> Option<OwnerField> {
    let pid = rng.below(100_000) as u32;
    rng.chance(50).then(|| OwnerField { pid, start: rng.below(1_000_000) as u64, name: None })
}

/// A valid request of every kind, as a value and as text with its fields in
/// any order, odd spacing, escapes and unknown fields: the parser must
/// accept it and get exactly that request back.
fn valid(rng: &mut Rng) -> (Request, String) {
    let unit = name(rng);
    let request = match rng.below(10) {
        0 => Request::Ping,
        1 => Request::Want {
            unit,
            deps: (0..rng.below(4)).map(|_| name(rng)).collect(),
            soft: rng.chance(50),
        },
        2 => Request::Start {
            unit,
            poll: rng.chance(50).then(|| rng.below(100_000) as f64 / 1000.0),
            owner: owner(rng),
            via: rng.chance(50).then(|| (0..rng.below(3)).filter_map(|_| owner(rng)).collect()),
            client_pid: rng.chance(50).then(|| rng.below(100_000) as u32),
        },
        3 => Request::Complete {
            unit,
            note: rng.chance(50).then(|| name(rng)),
            instance: rng.chance(50).then(|| name(rng)),
        },
        4 => Request::Fail {
            unit,
            reason: rng.chance(50).then(|| name(rng)),
            instance: rng.chance(50).then(|| name(rng)),
        },
        5 => Request::Status { unit },
        6 => Request::Ready { unit, instance: rng.chance(50).then(|| name(rng)) },
        7 => Request::StopWaiting { unit },
        8 => Request::Near { unit },
        _ => Request::List,
    };
    let text = String::from_utf8(request.to_line()).unwrap();
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&text).expect("a request serializes to an object");
    let mut fields: Vec<String> = object
        .iter()
        .map(|(key, v)| format!("{}:{}", serde_json::to_string(key).unwrap(), v))
        .collect();
    // Optional fields may be left out when they hold their default.
    fields.retain(|f| !(f == "\"soft\":false" || f == "\"deps\":[]") || rng.chance(50));
    for _ in 0..rng.below(3) {
        let key = rng.pick(&["x", "", "Op", "units", "__proto__"]);
        fields.push(format!("\"{key}\":{}", value(rng, 1, true)));
    }
    for i in (1..fields.len()).rev() {
        fields.swap(i, rng.below(i + 1));
    }
    let space = |rng: &mut Rng| *rng.pick(&["", "", " ", "\t", "\r", " \r\n "]);
    let mut line = format!("{}{{", space(rng));
    for (i, field) in fields.iter().enumerate() {
        let comma = if i == 0 { "" } else { "," };
        line += &format!("{comma}{}{field}{}", space(rng), space(rng));
    }
    line += &format!("}}{}", space(rng));
    (request, line)
}

/// An object shaped like a request, with any op and any field values.
fn shaped(rng: &mut Rng) -> Vec<u8> {
    let mut fields = Vec::new();
    for key in ["op", "unit", "deps", "soft", "reason", "note", "x"] {
        if rng.chance(60) {
            let v = match (key, rng.chance(60)) {
                ("op", true) => serde_json::to_string(rng.pick(&OPS)).unwrap(),
                ("unit" | "reason" | "note", true) => serde_json::to_string(&name(rng)).unwrap(),
                _ => value(rng, 1, false),
            };
            fields.push(format!("\"{key}\":{v}"));
        }
    }
    for i in (1..fields.len()).rev() {
        fields.swap(i, rng.below(i + 1));
    }
    format!("{{{}}}", fields.join(",")).into_bytes()
}

/// Byte-level damage: flips, deletions, insertions, truncation, splices.
fn mutate(rng: &mut Rng, line: Vec<u8>) -> Vec<u8> {
    const BYTES: [u8; 14] =
        [0, 0xff, 0xc3, 0x80, 0xed, b'"', b'\\', b'{', b'}', b'[', b']', b',', b':', b'\n'];
    const TOKENS: [&str; 7] = ["\\u0000", "\\ud800", "null", "1e999", "[", "{", "\"op\":\"list\","];
    rng::mutate(rng, line, &BYTES, &TOKENS)
}

/// Checks the parser's promises for one line.
fn check(line: &[u8], expected: Option<&Request>) -> Result<(), String> {
    let parsed = std::panic::catch_unwind(|| parse_request(line))
        .map_err(|_| "parse_request panicked".to_owned())?;
    match (parsed, expected) {
        (Ok(request), expected) => {
            if expected.is_some_and(|e| *e != request) {
                return Err(format!("parsed as {request:?}, expected {expected:?}"));
            }
            let again = request.to_line();
            let (last, body) = again.split_last().expect("a line is never empty");
            if *last != b'\n' || body.contains(&b'\n') {
                return Err(format!("{request:?} serializes to more than one line"));
            }
            match parse_request(body) {
                Ok(back) if back == request => Ok(()),
                other => Err(format!("{request:?} serializes and parses back as {other:?}")),
            }
        }
        (Err(e), Some(expected)) => Err(format!("refused a valid {expected:?}: {e:?}")),
        (Err(e), None) => {
            if !matches!(e.kind, ErrorKind::BadRequest | ErrorKind::UnknownOp) {
                return Err(format!("refused with kind {:?}", e.kind));
            }
            if e.message.is_empty() {
                return Err("refused without a message".into());
            }
            if std::str::from_utf8(line).is_err() && e.message != "request is not valid UTF-8" {
                return Err(format!("not UTF-8, yet refused with {:?}", e.message));
            }
            Ok(())
        }
    }
}

#[test]
fn the_request_parser_survives_random_and_damaged_lines() {
    let seed = seed();
    let mut rng = Rng(seed);
    let mut counts = [0usize; 2];
    for i in 0..LINES {
        let (line, expected) = match rng.below(10) {
            0 => ((0..rng.below(120)).map(|_| rng.next() as u8).collect(), None),
            1 | 2 => {
                let (request, text) = valid(&mut rng);
                (text.into_bytes(), Some(request))
            }
            3 | 4 => (shaped(&mut rng), None),
            5..=7 => {
                let (_, text) = valid(&mut rng);
                (mutate(&mut rng, text.into_bytes()), None)
            }
            8 => {
                let line = shaped(&mut rng);
                (mutate(&mut rng, line), None)
            }
            _ => (value(&mut rng, 0, false).into_bytes(), None),
        };
        counts[usize::from(parse_request(&line).is_ok())] += 1;
        if let Err(why) = check(&line, expected.as_ref()) {
            let shown = &line[..line.len().min(400)];
            panic!(
                "seed {seed} (rerun with UNITSYNC_FUZZ_SEED={seed}), line #{i} ({} bytes) \"{}\": {why}",
                line.len(),
                shown.escape_ascii()
            );
        }
    }
    // The generators must reach both sides, or the test proves little.
    assert!(counts[0] > LINES / 4 && counts[1] > LINES / 10, "seed {seed}: {counts:?}");
}
