//! PROTOCOL.md's examples, replayed against a real server: the example
//! requests are understood, and the socat session's answers have the
//! shapes the server gives today (every field with its value, but for the
//! instance id, the pid and the times).

use std::fs;
use std::path::Path;

use crate::util::*;

fn protocol_md() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("PROTOCOL.md");
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The lines of the first code block after `heading`.
fn block(text: &str, heading: &str) -> Vec<String> {
    let after = text.split(heading).nth(1).unwrap_or_else(|| panic!("no {heading:?}"));
    let body =
        after.split("```").nth(1).unwrap_or_else(|| panic!("no code block after {heading:?}"));
    body.lines().filter(|l| !l.is_empty()).map(str::to_owned).collect()
}

#[test]
fn the_socat_session_is_what_the_server_answers() {
    let text = protocol_md();
    let lines = block(&text, "## A session with socat");
    let session: Vec<&String> = lines.iter().filter(|l| !l.starts_with('$')).collect();
    assert!(
        session.len() >= 20 && session.len().is_multiple_of(2),
        "request and answer pairs: {session:?}"
    );
    let sb = Sandbox::new();
    let mut server = sb.serve(&[]);
    server.wait_ready();
    let mut conn = Conn::open(&sb.socket());
    for pair in session.chunks(2) {
        let (request, documented) = (pair[0], pair[1]);
        let answer = conn.ask(request.as_bytes());
        assert_eq!(
            normalized(&answer),
            normalized(documented),
            "PROTOCOL.md's answer to {request} differs from the server's: {answer}"
        );
    }
}

#[test]
fn the_example_requests_are_understood() {
    let text = protocol_md();
    let requests = block(&text, "## Requests");
    assert!(requests.len() >= 10, "{requests:?}");
    let sb = Sandbox::new();
    let mut server = sb.serve(&[]);
    server.wait_ready();
    let mut conn = Conn::open(&sb.socket());
    for request in &requests {
        let answer = normalized(&conn.ask(request.as_bytes()));
        let kind = answer["error"]["kind"].as_str().unwrap_or("");
        assert!(
            !["bad_request", "unknown_op", "bad_name"].contains(&kind),
            "PROTOCOL.md's example {request} is refused as {kind}: {answer}"
        );
    }
}
