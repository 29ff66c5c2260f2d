//! Running in pods and compose projects: `wait --once`, the one-call check
//! that readiness and health probes run, and the examples in
//! `examples/kubernetes/` and `examples/compose/`, parsed and checked for
//! the fields their READMEs explain.

use crate::util::*;

#[test]
fn wait_once_answers_at_once_for_each_status() {
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    let once = |units: &[&str]| {
        let mut args = vec!["wait"];
        args.extend_from_slice(units);
        args.push("--once");
        sb.run(&args)
    };
    // `why` up to the time, which varies.
    let not_yet = |units: &[&str], why: &str| {
        let heard = once(units);
        heard.code(4).stdout_is("");
        let said = format!("unitsync: wait {}: not yet completed or ready: {why}", units.join(" "));
        assert!(heard.stderr.starts_with(&said) && heard.stderr.lines().count() == 1, "{heard}");
    };
    // Not registered, pending, started: not yet (exit 4), and nothing is
    // registered by asking.
    not_yet(&["ghost"], "ghost (never registered)");
    sb.run(&["status", "ghost", "--json"]).ok().stdout_has("\"status\": \"not registered\"");
    sb.run(&["want", "app", "db"]).ok();
    not_yet(&["app"], "app (registered, not started)");
    sb.run(&["start", "db"]).ok();
    not_yet(&["db"], "db (started ");
    // Ready and completed: exit 0, silently.
    sb.run(&["ready", "db"]).ok();
    once(&["db"]).ok().stdout_is("").stderr_is("");
    sb.run(&["start", "app"]).ok();
    sb.run(&["complete", "app"]).ok();
    once(&["app", "db"]).ok().stdout_is("").stderr_is("");
    // Several: the ones not yet are named, the others are not.
    sb.run(&["want", "web"]).ok();
    not_yet(&["app", "web", "db"], "web (registered, not started)");
    // Failed: exit 5 with the reason.
    sb.run(&["fail", "web", "--reason", "port taken"]).ok();
    once(&["app", "web"]).code(5).stderr_is("unitsync: web failed: port taken\n");
    // The deadline variables do not make it wait; --timeout is refused.
    let mut slow = sb.cmd(&["wait", "later", "--once"]);
    slow.env("UNITSYNC_TIMEOUT", "1h");
    let heard = output("UNITSYNC_TIMEOUT=1h unitsync wait later --once".to_owned(), slow);
    heard.code(4).stderr_has("later (never registered)");
    sb.run(&["wait", "a", "--once", "--timeout", "0"]).code(2).stderr_has(
        "--once checks without waiting: it takes no --timeout or --poll; see 'unitsync wait --help'",
    );
}

#[test]
fn wait_once_without_a_server_exits_3_at_once() {
    let sb = Sandbox::new();
    sb.run(&["wait", "app", "--once"]).code(3).stderr_is(&format!(
        "unitsync: cannot reach the server at {}: no such socket; is the server running? start \
         it with 'unitsync serve'\n",
        sb.socket().display()
    ));
}
