//! Coder's own test cases for `coder exp sync`, ported: each test is named
//! after the upstream case it ports and runs the real binary as `coder`
//! against a real server.
//!
//! - `golden_*`: coder/coder's `TestSyncCommands_Golden` (cli/sync_test.go).
//!   Each seeds the server, runs one command with `--socket-path` and
//!   compares its output with the golden file's bytes (cli/testdata/
//!   TestSyncCommands_Golden/*.golden, whose `\r\n` the golden comparison
//!   folds to `\n`). Upstream seeds through its socket client; here the
//!   seeding runs the same requests through `coder exp sync`.
//! - `sync_*`: the CLI-reachable cases of `TestDRPCAgentSocketService`
//!   (agent/agentsocket/service_test.go).
//! - `manager_*`: the CLI-reachable cases of agent/unit/manager_test.go,
//!   with the `completed` requirement the CLI declares where upstream also
//!   uses `started`.

use std::fs;
use std::os::unix::process::CommandExt;
use std::process::Stdio;

use crate::coder::{coder, coder_error};
use crate::util::*;

/// A sandbox and its server (first, so that it is dropped first).
fn served() -> (Server, Sandbox) {
    let sb = Sandbox::new();
    (sb.serve(&[]), sb)
}

/// `coder exp sync ARGS --socket-path SOCKET`, as upstream's cases run it.
fn sync(sb: &Sandbox, args: &[&str]) -> Output {
    let socket = sb.socket().display().to_string();
    let mut all = vec!["exp", "sync"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--socket-path", &socket]);
    coder(sb, &all)
}

/// Runs each of `commands` (`coder exp sync` arguments), which must succeed.
fn seed(sb: &Sandbox, commands: &[&[&str]]) {
    for args in commands {
        sync(sb, args).ok();
    }
}

/// A server, seeded with `commands`, then `args` run against it: its
/// output must be `golden`, with nothing on stderr.
#[track_caller]
fn golden(commands: &[&[&str]], args: &[&str], golden: &str) {
    let (_server, sb) = served();
    seed(&sb, commands);
    let out = sync(&sb, args);
    out.ok().stdout_is(golden).stderr_is("");
}

/// `unit`'s status as `status -o json` shows it.
fn json(sb: &Sandbox, unit: &str) -> String {
    let out = sync(sb, &["status", unit, "-o", "json"]);
    out.ok();
    out.stdout
}

/// Whether `unit` may start, as Coder's `is_ready` says.
fn is_ready(sb: &Sandbox, unit: &str) -> bool {
    let status = json(sb, unit);
    match (status.contains("\"is_ready\": true"), status.contains("\"is_ready\": false")) {
        (true, false) => true,
        (false, true) => false,
        _ => panic!("no is_ready in {status}"),
    }
}

/// `coder exp sync VERB test-unit` fails: agent/unit's manager refuses to
/// set a status a unit already has.
#[track_caller]
fn same_status_refused(sb: &Sandbox, verb: &str) {
    sync(sb, &[verb, "test-unit"]).code(1).stderr_has(&coder_error(
        verb,
        &format!(
            "{verb} unit failed: cannot {verb} unit \"test-unit\": checking status for unit \
             \"test-unit\": same status already set"
        ),
    ));
}

#[track_caller]
fn status_is(sb: &Sandbox, unit: &str, status: &str) {
    let json = json(sb, unit);
    assert!(json.contains(&format!("\"status\": \"{status}\",")), "{unit} is not {status}: {json}");
}

#[test]
fn golden_ping() {
    golden(&[], &["ping"], "Success\n");
}

#[test]
fn golden_start_no_dependencies() {
    golden(&[], &["start", "test-unit"], "Unit \"test-unit\" started with no dependencies\n");
}

#[test]
fn golden_start_with_satisfied_dependencies() {
    golden(
        &[
            &["want", "test-unit", "dep-unit"],
            &["want", "test-unit", "dep-unit-2"],
            &["start", "dep-unit"],
            &["complete", "dep-unit"],
            &["start", "dep-unit-2"],
            &["complete", "dep-unit-2"],
        ],
        &["start", "test-unit"],
        "Unit \"test-unit\" started immediately, dependencies already satisfied: [dep-unit, dep-unit-2]\n",
    );
}

#[test]
fn golden_want() {
    golden(
        &[],
        &["want", "test-unit", "dep-unit"],
        "Unit \"test-unit\" declared dependencies: [dep-unit]\n",
    );
}

#[test]
fn golden_complete() {
    golden(&[&["start", "test-unit"]], &["complete", "test-unit"], "Success\n");
}

#[test]
fn golden_status_pending() {
    golden(
        &[&["want", "test-unit", "dep-unit"]],
        &["status", "test-unit"],
        "Unit: test-unit\nStatus: pending\nReady: false\n\nDependencies:\n\
         DEPENDS ON  REQUIRED STATUS  CURRENT STATUS  SATISFIED  \n\
         dep-unit    completed        not registered  false      \n",
    );
}

#[test]
fn golden_status_started() {
    golden(
        &[&["start", "test-unit"]],
        &["status", "test-unit"],
        "Unit: test-unit\nStatus: started\nReady: true\n\nDependencies:\nNo dependencies found\n",
    );
}

#[test]
fn golden_status_completed() {
    golden(
        &[&["start", "test-unit"], &["complete", "test-unit"]],
        &["status", "test-unit"],
        "Unit: test-unit\nStatus: completed\nReady: true\n\nDependencies:\nNo dependencies found\n",
    );
}

#[test]
fn golden_status_with_dependencies() {
    golden(
        &[
            &["want", "test-unit", "dep-1"],
            &["want", "test-unit", "dep-2"],
            &["start", "dep-1"],
            &["complete", "dep-1"],
        ],
        &["status", "test-unit"],
        "Unit: test-unit\nStatus: pending\nReady: false\n\nDependencies:\n\
         DEPENDS ON  REQUIRED STATUS  CURRENT STATUS  SATISFIED  \n\
         dep-1       completed        completed       true       \n\
         dep-2       completed        not registered  false      \n",
    );
}

#[test]
fn golden_status_json_format() {
    golden(
        &[&["want", "test-unit", "dep-unit"], &["start", "dep-unit"], &["complete", "dep-unit"]],
        &["status", "test-unit", "--output", "json"],
        r#"{
  "unit_name": "test-unit",
  "status": "pending",
  "is_ready": true,
  "dependencies": [
    {
      "depends_on": "dep-unit",
      "required_status": "completed",
      "current_status": "completed",
      "is_satisfied": true
    }
  ]
}
"#,
    );
}

#[test]
fn golden_list_no_units() {
    golden(&[], &["list"], "No units registered\n");
}

#[test]
fn golden_list_with_units() {
    // unit-a started, unit-b completed, unit-c pending on unit-a.
    golden(
        &[
            &["start", "unit-a"],
            &["start", "unit-b"],
            &["complete", "unit-b"],
            &["want", "unit-c", "unit-a"],
        ],
        &["list"],
        "UNIT    STATUS     READY  \n\
         unit-a  started    true   \n\
         unit-b  completed  true   \n\
         unit-c  pending    false  \n",
    );
}

#[test]
fn golden_list_json_format() {
    golden(
        &[&["start", "my-unit"]],
        &["list", "--output", "json"],
        "[\n  {\n    \"unit_name\": \"my-unit\",\n    \"status\": \"started\",\n    \"is_ready\": true\n  }\n]\n",
    );
}

#[test]
fn golden_start_with_dependencies() {
    let (_server, sb) = served();
    seed(&sb, &[&["want", "test-unit", "dep-unit"], &["want", "test-unit", "dep-unit-2"]]);
    // Upstream runs the start, waits for its output to say it waits, then
    // starts and completes both dependencies.
    let log = sb.path("start.out");
    let socket = sb.socket().display().to_string();
    let mut cmd = sb.cmd(&["exp", "sync", "start", "test-unit", "--socket-path", &socket]);
    cmd.arg0("coder").stdout(fs::File::create(&log).unwrap()).stderr(Stdio::piped());
    let start = cmd.spawn().expect("coder runs");
    eventually("start says it waits", || {
        fs::read_to_string(&log).unwrap_or_default().contains("is waiting for dependencies")
    });
    seed(
        &sb,
        &[
            &["start", "dep-unit"],
            &["complete", "dep-unit"],
            &["start", "dep-unit-2"],
            &["complete", "dep-unit-2"],
        ],
    );
    let out = start.wait_with_output().unwrap();
    assert!(out.status.success(), "start: {out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    assert_eq!(
        fs::read_to_string(&log).unwrap(),
        "Unit \"test-unit\" is waiting for dependencies to be satisfied: [dep-unit, dep-unit-2]\n\
         Unit \"test-unit\" finished waiting for dependencies: [dep-unit, dep-unit-2]\n"
    );
}

#[test]
fn golden_want_multiple_deps() {
    let (_server, sb) = served();
    sync(&sb, &["want", "test-unit", "dep-1", "dep-2", "dep-3"])
        .ok()
        .stdout_has("Unit \"test-unit\" declared dependencies: [dep-1, dep-2, dep-3]");
    // Every dependency was registered.
    let status = json(&sb, "test-unit");
    for dep in ["dep-1", "dep-2", "dep-3"] {
        assert!(status.contains(&format!("\"depends_on\": \"{dep}\"")), "{status}");
    }
}

#[test]
fn sync_start_new_unit() {
    let (_server, sb) = served();
    seed(&sb, &[&["start", "test-unit"]]);
    status_is(&sb, "test-unit", "started");
}

#[test]
fn sync_start_unit_already_started() {
    let (_server, sb) = served();
    seed(&sb, &[&["start", "test-unit"]]);
    status_is(&sb, "test-unit", "started");
    same_status_refused(&sb, "start");
    status_is(&sb, "test-unit", "started");
}

#[test]
fn sync_start_unit_already_completed() {
    // A completed unit may start again.
    let (_server, sb) = served();
    seed(&sb, &[&["start", "test-unit"], &["complete", "test-unit"]]);
    status_is(&sb, "test-unit", "completed");
    seed(&sb, &[&["start", "test-unit"]]);
    status_is(&sb, "test-unit", "started");
}

#[test]
fn sync_start_unit_not_ready() {
    // Upstream's agent refuses the start; the CLI waits, here until its
    // timeout, and the unit stays pending.
    let (_server, sb) = served();
    seed(&sb, &[&["want", "test-unit", "dependency-unit"]]);
    sync(&sb, &["start", "test-unit", "--timeout", "100ms"])
        .code(1)
        .stderr_has(&coder_error("start", "timeout waiting for dependencies of unit 'test-unit'"));
    status_is(&sb, "test-unit", "pending");
    assert!(!is_ready(&sb, "test-unit"));
}

#[test]
fn sync_complete_unit_already_completed() {
    // agent/unit's manager refuses a status a unit already has.
    let (_server, sb) = served();
    seed(&sb, &[&["start", "test-unit"], &["complete", "test-unit"]]);
    same_status_refused(&sb, "complete");
    status_is(&sb, "test-unit", "completed");
}

#[test]
fn sync_want_new_units() {
    // A dependency nobody registered is registered for the edge.
    let (_server, sb) = served();
    seed(&sb, &[&["want", "test-unit", "dependency-unit"]]);
    let status = json(&sb, "test-unit");
    assert!(status.contains("\"depends_on\": \"dependency-unit\""), "{status}");
    assert!(status.contains("\"required_status\": \"completed\""), "{status}");
}

#[test]
fn sync_want_dependency_already_registered() {
    let (_server, sb) = served();
    seed(&sb, &[&["start", "dependency-unit"]]);
    status_is(&sb, "dependency-unit", "started");
    seed(&sb, &[&["want", "test-unit", "dependency-unit"]]);
    let status = json(&sb, "test-unit");
    assert!(status.contains("\"depends_on\": \"dependency-unit\""), "{status}");
    assert!(status.contains("\"required_status\": \"completed\""), "{status}");
}

#[test]
fn sync_want_dependency_added_after_dependent_started() {
    // Allowed: the dependency applies the next time the unit starts; its
    // current status stays.
    let (_server, sb) = served();
    seed(&sb, &[&["start", "test-unit"]]);
    seed(&sb, &[&["want", "test-unit", "dependency-unit"]]);
    let status = json(&sb, "test-unit");
    assert!(status.contains("\"depends_on\": \"dependency-unit\""), "{status}");
    status_is(&sb, "test-unit", "started");
}

#[test]
fn sync_ready_unit_not_ready() {
    let (_server, sb) = served();
    seed(&sb, &[&["want", "test-unit", "dependency-unit"]]);
    assert!(!is_ready(&sb, "test-unit"));
}

#[test]
fn sync_ready_unit_ready() {
    let (_server, sb) = served();
    seed(&sb, &[&["start", "test-unit"]]);
    assert!(is_ready(&sb, "test-unit"));
    seed(&sb, &[&["want", "dependent-unit", "test-unit"], &["complete", "test-unit"]]);
    assert!(is_ready(&sb, "dependent-unit"));
}

#[test]
fn manager_is_ready_with_unregistered_unit() {
    // agent/unit's manager: a unit it never saw is not registered and may
    // start (IsReady answers true for it), with no dependencies.
    golden(
        &[],
        &["status", "unregistered-unit", "-o", "json"],
        "{\n  \"unit_name\": \"unregistered-unit\",\n  \"status\": \"\",\n  \"is_ready\": true,\n  \"dependencies\": null\n}\n",
    );
}

#[test]
fn manager_add_dependency_on_an_unregistered_unit() {
    let (_server, sb) = served();
    seed(&sb, &[&["want", "serviceA", "serviceB"]]);
    status_is(&sb, "serviceB", "");
    assert!(!is_ready(&sb, "serviceA"));
    // Registered and started is not yet completed.
    seed(&sb, &[&["start", "serviceB"]]);
    assert!(!is_ready(&sb, "serviceA"));
    seed(&sb, &[&["complete", "serviceB"]]);
    assert!(is_ready(&sb, "serviceA"));
}

#[test]
fn manager_add_dependency_creates_a_cyclic_dependency() {
    // Refused, as upstream; our message names the cycle (a deliberate
    // difference, see compat.rs).
    let (_server, sb) = served();
    seed(
        &sb,
        &[
            &["want", "serviceA", "serviceB"],
            &["want", "serviceB", "serviceC"],
            &["want", "serviceC", "serviceD"],
        ],
    );
    sync(&sb, &["want", "serviceD", "serviceA"]).code(1).stderr_has(&coder_error(
        "want",
        "declare dependency failed: cycle: serviceD -> serviceA -> serviceB -> serviceC -> serviceD",
    ));
}

#[test]
fn manager_update_status_triggers_readiness_recalculation() {
    let (_server, sb) = served();
    seed(&sb, &[&["want", "serviceA", "serviceB"]]);
    assert!(!is_ready(&sb, "serviceA"));
    seed(&sb, &[&["start", "serviceB"], &["complete", "serviceB"]]);
    status_is(&sb, "serviceA", "pending");
    assert!(is_ready(&sb, "serviceA"));
}

#[test]
fn manager_update_status_with_unregistered_unit() {
    // Upstream refuses to complete a unit nobody registered ("unit not
    // found"); unitsync registers it, on purpose (see compat.rs): a
    // script's EXIT trap must not fail because its start never got through.
    let (_server, sb) = served();
    sync(&sb, &["complete", "serviceA"]).ok().stdout_is("Success\n");
    status_is(&sb, "serviceA", "completed");
}

#[test]
fn manager_linear_chain_dependencies() {
    let (_server, sb) = served();
    seed(&sb, &[&["want", "serviceA", "serviceB"], &["want", "serviceB", "serviceC"]]);
    seed(&sb, &[&["start", "serviceC"]]);
    assert!(!is_ready(&sb, "serviceB"));
    assert!(!is_ready(&sb, "serviceA"));
    seed(&sb, &[&["complete", "serviceC"]]);
    assert!(is_ready(&sb, "serviceB"));
    assert!(!is_ready(&sb, "serviceA"));
    seed(&sb, &[&["start", "serviceB"], &["complete", "serviceB"]]);
    assert!(is_ready(&sb, "serviceA"));
}

#[test]
fn manager_unit_with_multiple_dependencies() {
    let (_server, sb) = served();
    seed(&sb, &[&["want", "serviceA", "serviceB", "serviceC"]]);
    assert!(!is_ready(&sb, "serviceA"));
    seed(&sb, &[&["start", "serviceB"], &["complete", "serviceB"]]);
    assert!(!is_ready(&sb, "serviceA"));
    seed(&sb, &[&["start", "serviceC"], &["complete", "serviceC"]]);
    assert!(is_ready(&sb, "serviceA"));
}

#[test]
fn manager_complex_dependency_chain() {
    let (_server, sb) = served();
    seed(
        &sb,
        &[
            &["want", "serviceA", "serviceB", "serviceC"],
            &["want", "serviceB", "serviceD"],
            &["want", "serviceC", "serviceD"],
            &["start", "serviceD"],
        ],
    );
    assert!(is_ready(&sb, "serviceD"));
    for unit in ["serviceB", "serviceC", "serviceA"] {
        assert!(!is_ready(&sb, unit), "{unit}");
    }
    seed(&sb, &[&["complete", "serviceD"]]);
    assert!(is_ready(&sb, "serviceB"));
    assert!(is_ready(&sb, "serviceC"));
    assert!(!is_ready(&sb, "serviceA"));
    seed(&sb, &[&["start", "serviceB"], &["complete", "serviceB"]]);
    assert!(!is_ready(&sb, "serviceA"));
    seed(&sb, &[&["start", "serviceC"], &["complete", "serviceC"]]);
    assert!(is_ready(&sb, "serviceA"));
}
