//! Defects a new user found, each pinned end to end: the real binary, a
//! real server, a real socket.

use crate::util::*;

#[test]
fn a_failure_is_never_lost_to_its_reason() {
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    sb.run(&["want", "api", "db"]).ok();
    sb.run(&["start", "db"]).ok();
    // What `--reason "$(cat err.log)"` passes: lines, tabs, escapes, and
    // far more than 1,024 bytes (more even than a request line holds).
    let log = "error: connection refused\n\tat db.connect()\r\n\n\u{1b}[31mgave up\u{1b}[0m\n";
    sb.run(&["fail", "db", "--reason", log]).ok();
    let kept = "error: connection refused / at db.connect() / [31mgave up [0m";
    sb.run(&["status", "db", "--json"]).ok().stdout_has(&format!("\"reason\": \"{kept}\""));
    sb.run(&["start", "api"]).code(5).stderr_has(&format!("dependency db failed: {kept}"));
    let huge = "x".repeat(100 * 1024);
    sb.run(&["fail", "db", "--reason", &huge]).ok();
    let json = sb.run(&["status", "db", "--json"]);
    json.ok().stdout_has(&format!("\"reason\": \"{}...\"", "x".repeat(1021)));
}
