//! The state machine tested as data: `check` replays a script of commands,
//! one per line as `command => expected`, and compares the transcript.
//! Line N runs at time N seconds, so timings in the transcript are exact.

use std::collections::HashSet;

use super::*;
use crate::rng::Rng;

fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs())
}

fn run(state: &mut State, line: &str, now: Duration) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    let strings = |ws: &[&str]| ws.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let result = match words.as_slice() {
        ["want", "--soft", unit, deps @ ..] => {
            state.want(unit, &strings(deps), true, now).map(|w| render_wanted(&w))
        }
        ["want", unit, deps @ ..] => {
            state.want(unit, &strings(deps), false, now).map(|w| render_wanted(&w))
        }
        ["start", unit] => render_start(state.start(unit, Duration::ZERO, None, now)),
        ["start", "--poll", poll, unit] => {
            let poll = Duration::from_secs(poll.parse().expect("seconds"));
            render_start(state.start(unit, poll, None, now))
        }
        ["stop-waiting", unit] => state.stop_waiting(unit, now).map(|s| match s {
            StopWaiting::Stopped { waited } => format!("stopped waiting after {}", secs(waited)),
            StopWaiting::NotWaiting => "was not waiting".to_owned(),
        }),
        ["ready", unit] => state.ready(unit, now).map(|r| match r {
            Readied::Now { after } => format!("ready after {}", secs(after)),
            Readied::Already { after } => format!("already ready after {}", secs(after)),
        }),
        ["complete", unit] => state.complete(unit, None, now).map(render_finished),
        ["complete", unit, note @ ..] => {
            state.complete(unit, Some(&note.join(" ")), now).map(render_finished)
        }
        ["fail", unit] => state.fail(unit, None, now).map(render_finished),
        ["fail", unit, reason @ ..] => {
            state.fail(unit, Some(&reason.join(" ")), now).map(render_finished)
        }
        ["restart", unit, reason @ ..] => {
            let reason = (!reason.is_empty()).then(|| reason.join(" "));
            state.restart(unit, None, reason.as_deref(), now).map(|r| {
                let was = if r.was_ready { ", was ready" } else { "" };
                format!("restart {}, ran {}{was}", r.count, secs(r.ran))
            })
        }
        ["status", unit] => state.status(unit, now).map(|i| render_info(&i)),
        ["timings", unit] => state.status(unit, now).map(|i| {
            let at = |t: Option<Duration>| t.map_or("-".to_owned(), secs);
            format!(
                "started {}, finished {}, waited {}, waiting since {}",
                at(i.started_at),
                at(i.finished_at),
                at(i.waited),
                at(i.waiting_since)
            )
        }),
        ["list"] => Ok(state
            .list(now)
            .iter()
            .map(|i| format!("{}={}", i.unit, i.status.as_str().replace(' ', "-")))
            .collect::<Vec<_>>()
            .join(" ")),
        _ => panic!("bad test script line: {line}"),
    };
    result.unwrap_or_else(|e| format!("error: {e}"))
}

fn render_start(result: Result<Start, Error>) -> Result<String, Error> {
    result.map(|s| match s {
        Start::Started { waited, waited_for } if waited_for.is_empty() => {
            format!("started, waited {}", secs(waited))
        }
        Start::Started { waited, waited_for } => {
            format!("started, waited {} for {}", secs(waited), waited_for.join(", "))
        }
        Start::Blocked { unmet, began_waiting, polled } => format!(
            "{}blocked on {}{}",
            if began_waiting { "" } else { "still " },
            unmet
                .iter()
                .map(|d| format!("{} ({})", d.unit, d.status))
                .collect::<Vec<_>>()
                .join(", "),
            if polled { ", poll recorded" } else { "" }
        ),
        Start::DependencyFailed { dep, reason } => match reason {
            Some(r) => format!("dependency failed: {dep}: {r}"),
            None => format!("dependency failed: {dep}"),
        },
    })
}

fn render_wanted(w: &Wanted) -> String {
    match w.registered {
        true => format!("added {}, registered", w.added),
        false => format!("added {}", w.added),
    }
}

fn render_finished(f: Finished) -> String {
    match f.ran {
        Some(ran) => format!("ok, ran {}", secs(ran)),
        None => "ok".to_owned(),
    }
}

fn render_info(i: &UnitInfo) -> String {
    let mut out =
        format!("{}, {}", i.status, if i.startable { "startable" } else { "not startable" });
    for d in &i.deps {
        let kind = if d.soft { "soft " } else { "" };
        let ok = if d.satisfied { "satisfied" } else { "unmet" };
        out += &format!("; {kind}{} {} {ok}", d.unit, d.status);
    }
    if let Some(dep) = &i.failed_by {
        out += &format!("; failed by {dep}");
    }
    if let Some(r) = &i.reason {
        out += &format!("; reason: {r}");
    }
    if let Some(n) = &i.note {
        out += &format!("; note: {n}");
    }
    if let Some(at) = i.ready_at {
        out += &format!("; ready at {}", secs(at));
    }
    if i.restarts > 0 {
        let at: Vec<String> = i.restarted_at.iter().map(|&t| secs(t)).collect();
        let last = i.last_failure.as_deref().unwrap_or("no reason");
        out += &format!("; restarts {} at {} (last: {last})", i.restarts, at.join(","));
    }
    out
}

/// Replays `script` on a fresh state and asserts each line's result.
fn check(script: &str) {
    check_on(&mut State::new(), script);
}

fn check_on(state: &mut State, script: &str) {
    replay(script, |command, now| run(state, command, now));
}

/// Runs each `command => expected` line of `script` through `run`, line N
/// at N seconds, and asserts that every result is the expected one,
/// showing the whole transcript if not. Other data-driven tests (the
/// server's dispatch) share it. The last ` => ` splits a line, so a
/// command may hold one.
pub(crate) fn replay(script: &str, mut run: impl FnMut(&str, Duration) -> String) {
    let mut failures = Vec::new();
    let mut transcript = String::new();
    for (n, line) in script.lines().map(str::trim).filter(|l| !l.is_empty()).enumerate() {
        let (command, expected) =
            line.rsplit_once("=>").expect("each line is `command => expected`");
        let (command, expected) = (command.trim(), expected.trim());
        let got = run(command, Duration::from_secs(n as u64 + 1));
        transcript += &format!("{command} => {got}\n");
        if got != expected {
            failures.push(format!("  {command}\n    expected: {expected}\n    got:      {got}"));
        }
    }
    assert!(failures.is_empty(), "\n{}\nfull transcript:\n{transcript}", failures.join("\n"));
}

#[test]
fn want_registers_the_unit_and_placeholders_for_its_deps() {
    check(
        "
        want b a     => added 1, registered
        status b     => pending, not startable; a not registered unmet
        status a     => not registered, startable
        list         => a=not-registered b=pending
        ",
    );
}

#[test]
fn want_registers_a_placeholder_when_its_own_script_speaks() {
    check(
        "
        want b a     => added 1, registered
        want a       => added 0, registered
        want a       => added 0
        status a     => pending, startable
        ",
    );
}

#[test]
fn repeating_an_edge_is_a_no_op() {
    check(
        "
        want b a     => added 1, registered
        want b a     => added 0
        want b a a   => added 0
        status b     => pending, not startable; a not registered unmet
        ",
    );
}

#[test]
fn a_unit_with_no_dependencies_or_unknown_is_ready() {
    check(
        "
        status x     => not registered, startable
        start x      => started, waited 0s
        want y       => added 0, registered
        start y      => started, waited 0s
        ",
    );
}

#[test]
fn start_waits_for_every_hard_dependency() {
    check(
        "
        want c a b   => added 2, registered
        start c      => blocked on a (not registered), b (not registered)
        complete a   => ok
        start c      => still blocked on b (not registered)
        start b      => started, waited 0s
        start c      => still blocked on b (started)
        complete b   => ok, ran 2s
        start c      => started, waited 6s for a, b
        status c     => started, startable; a completed satisfied; b completed satisfied
        ",
    );
}

#[test]
fn a_failed_hard_dependency_fails_the_dependent_fast() {
    check(
        "
        want b a     => added 1, registered
        start a      => started, waited 0s
        fail a exit status 2 => ok, ran 1s
        start b      => dependency failed: a: exit status 2
        status b     => failed, not startable; a failed unmet; failed by a; reason: dependency a failed: exit status 2
        want c b     => added 1, registered
        start c      => dependency failed: b: dependency a failed: exit status 2
        ",
    );
}

#[test]
fn a_wait_that_ends_without_a_start_keeps_how_long_it_waited() {
    check(
        "
        want c b     => added 1, registered
        start b      => started, waited 0s
        start c      => blocked on b (started)
        start c      => still blocked on b (started)
        timings c    => started -, finished -, waited -, waiting since 3s
        fail b       => ok, ran 4s
        start c      => dependency failed: b
        timings c    => started -, finished 7s, waited 4s, waiting since -
        want d e     => added 1, registered
        start d      => blocked on e (not registered)
        complete d   => ok
        timings d    => started -, finished 11s, waited 1s, waiting since -
        ",
    );
}

#[test]
fn a_client_that_stops_waiting_ends_the_wait_and_keeps_its_length() {
    check(
        "
        want c b      => added 1, registered
        start c       => blocked on b (not registered)
        start c       => still blocked on b (not registered)
        stop-waiting c => stopped waiting after 2s
        timings c     => started -, finished -, waited 2s, waiting since -
        stop-waiting c => was not waiting
        stop-waiting x => was not waiting
        list          => b=not-registered c=pending
        start c       => blocked on b (not registered)
        timings c     => started -, finished -, waited 2s, waiting since 9s
        complete b    => ok
        start c       => started, waited 3s for b
        stop-waiting c => was not waiting
        stop-waiting bad/name? => was not waiting
        ",
    );
}

#[test]
fn a_wait_its_client_stops_refreshing_lapses() {
    // Polls are recorded every half window (10 s, or three announced
    // polls); silence for a whole window ends the wait at its last one.
    check(
        "
        want c b => added 1, registered
        start c => blocked on b (not registered)
        start c => still blocked on b (not registered)
        start c => still blocked on b (not registered)
        start c => still blocked on b (not registered)
        start c => still blocked on b (not registered)
        start c => still blocked on b (not registered), poll recorded
        timings c => started -, finished -, waited -, waiting since 2s
        timings c => started -, finished -, waited -, waiting since 2s
        timings c => started -, finished -, waited -, waiting since 2s
        timings c => started -, finished -, waited -, waiting since 2s
        timings c => started -, finished -, waited -, waiting since 2s
        timings c => started -, finished -, waited -, waiting since 2s
        timings c => started -, finished -, waited -, waiting since 2s
        timings c => started -, finished -, waited -, waiting since 2s
        timings c => started -, finished -, waited -, waiting since 2s
        timings c => started -, finished -, waited -, waiting since 2s
        timings c => started -, finished -, waited 5s, waiting since -
        start c => blocked on b (not registered)
        timings c => started -, finished -, waited 5s, waiting since 19s
        want d e => added 1, registered
        start --poll 4 d => blocked on e (not registered)
        timings d => started -, finished -, waited -, waiting since 22s
        timings d => started -, finished -, waited -, waiting since 22s
        timings d => started -, finished -, waited -, waiting since 22s
        timings d => started -, finished -, waited -, waiting since 22s
        timings d => started -, finished -, waited -, waiting since 22s
        timings d => started -, finished -, waited -, waiting since 22s
        timings d => started -, finished -, waited -, waiting since 22s
        timings d => started -, finished -, waited -, waiting since 22s
        timings d => started -, finished -, waited -, waiting since 22s
        timings d => started -, finished -, waited -, waiting since 22s
        timings d => started -, finished -, waited -, waiting since 22s
        timings d => started -, finished -, waited -, waiting since 22s
        timings d => started -, finished -, waited 0s, waiting since -
        complete e => ok
        start d => started, waited 0s
        timings d => started 37s, finished -, waited 0s, waiting since -
        ",
    );
}

#[test]
fn failed_by_names_the_dependency_until_the_unit_finishes_otherwise() {
    check(
        "
        want c b     => added 1, registered
        want b a     => added 1, registered
        fail a       => ok
        start b      => dependency failed: a
        status b     => failed, not startable; a failed unmet; failed by a; reason: dependency a failed
        start c      => dependency failed: b: dependency a failed
        status c     => failed, not startable; b failed unmet; failed by b; reason: dependency b failed: dependency a failed
        fail b given up => ok
        status b     => failed, not startable; a failed unmet; reason: given up
        complete c   => ok
        status c     => completed, not startable; b failed unmet
        complete a   => ok
        start b      => started, waited 0s
        status b     => started, startable; a completed satisfied
        ",
    );
}

#[test]
fn a_failure_without_reason_is_reported_without_one() {
    check(
        "
        want b a     => added 1, registered
        fail a       => ok
        start b      => dependency failed: a
        status a     => failed, startable
        ",
    );
}

#[test]
fn a_soft_dependency_is_satisfied_by_completion_or_failure() {
    check(
        "
        want --soft b a  => added 1, registered
        start b          => blocked on a (not registered)
        start a          => started, waited 0s
        start b          => still blocked on a (started)
        fail a           => ok, ran 2s
        start b          => started, waited 4s for a
        want --soft c d  => added 1, registered
        complete d       => ok
        start c          => started, waited 0s
        ",
    );
}

#[test]
fn hard_and_soft_mix_in_one_unit() {
    check(
        "
        want c a         => added 1, registered
        want --soft c b  => added 1
        fail b           => ok
        start c          => blocked on a (not registered)
        status c         => pending, not startable; a not registered unmet; soft b failed satisfied
        complete a       => ok
        start c          => started, waited 3s for a
        ",
    );
}

#[test]
fn the_stronger_edge_wins_when_redeclared() {
    check(
        "
        want --soft b a  => added 1, registered
        want b a         => added 1
        want --soft b a  => added 0
        fail a           => ok
        start b          => dependency failed: a
        ",
    );
}

#[test]
fn cycles_are_refused_with_their_path() {
    check(
        "
        want a b     => added 1, registered
        want b c     => added 1, registered
        want c a     => error: cycle: c -> a -> b -> c
        want c d a   => error: cycle: c -> a -> b -> c
        status c     => not registered, startable
        list         => a=pending b=pending c=not-registered
        want c d     => added 1, registered
        ",
    );
}

#[test]
fn soft_edges_count_for_cycles() {
    check(
        "
        want --soft a b  => added 1, registered
        want b a         => error: cycle: b -> a -> b
        want --soft b a  => error: cycle: b -> a -> b
        ",
    );
}

#[test]
fn a_refused_want_adds_no_edge_of_its_call() {
    check(
        "
        want b a     => added 1, registered
        want a x b y => error: cycle: a -> b -> a
        list         => a=not-registered b=pending
        status a     => not registered, startable
        want a x y   => added 2, registered
        ",
    );
}

#[test]
fn self_dependency_is_refused() {
    check(
        "
        want a a     => error: cycle: a -> a (a unit cannot depend on itself)
        want a b a   => error: cycle: a -> a (a unit cannot depend on itself)
        list         => 
        ",
    );
}

#[test]
fn bad_names_are_refused_and_change_nothing() {
    check(
        "
        want a b\u{7f}     => error: invalid unit name \"b\\u{7f}\": a name may not contain control characters
        list               => 
        ",
    );
    let mut state = State::new();
    let err = state.start("a\u{a0}b", Duration::ZERO, None, Duration::ZERO).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid unit name \"a\\u{a0}b\": a name may not contain whitespace"
    );
    let long = "x".repeat(256);
    let err = state.want("a", &[long], false, Duration::ZERO).unwrap_err();
    assert!(matches!(err, Error::BadName { .. }), "{err:?}");
    assert!(err.to_string().ends_with("...: a name is 1 to 255 bytes long"), "{err}");
    assert!(matches!(state.complete("", None, Duration::ZERO), Err(Error::BadName { .. })));
    assert!(state.is_empty());
    // At the limit is fine, and names may hold what Coder names hold.
    let max = "y".repeat(255);
    state
        .want("coder_script.x[\"y\"]", &[max, "org.git-clone".into()], false, Duration::ZERO)
        .unwrap();
    assert_eq!(state.len(), 3);
}

#[test]
fn start_of_a_started_unit_is_refused() {
    check(
        "
        start a      => started, waited 0s
        start a      => error: a is already started; complete or fail it before starting it again
        status a     => started, startable
        ",
    );
}

#[test]
fn completed_and_failed_units_may_run_again() {
    check(
        "
        want b a     => added 1, registered
        start a      => started, waited 0s
        complete a   => ok, ran 1s
        start a      => started, waited 0s
        start b      => blocked on a (started)
        fail a boom  => ok, ran 2s
        start b      => dependency failed: a: boom
        start a      => started, waited 0s
        complete a   => ok, ran 1s
        start b      => started, waited 0s
        ",
    );
}

#[test]
fn complete_registers_and_refuses_twice() {
    check(
        "
        complete a   => ok
        status a     => completed, startable
        complete a   => error: a is already completed
        want b a     => added 1, registered
        start b      => started, waited 0s
        fail a       => ok
        complete a   => ok
        ",
    );
}

#[test]
fn complete_works_from_every_other_status() {
    check(
        "
        want p       => added 0, registered
        complete p   => ok
        want x np    => added 1, registered
        complete np  => ok
        start s      => started, waited 0s
        complete s   => ok, ran 1s
        fail f       => ok
        complete f   => ok
        list         => f=completed np=completed p=completed s=completed x=pending
        ",
    );
}

#[test]
fn fail_works_from_every_status_and_keeps_the_last_reason() {
    check(
        "
        fail a one   => ok
        fail a two   => ok
        status a     => failed, startable; reason: two
        complete a   => ok
        fail a       => ok
        status a     => failed, startable
        ",
    );
    let mut state = State::new();
    let f = state.fail("a", Some(" two\r\n\n\tlines\x1b[0m "), Duration::ZERO).unwrap();
    assert_eq!(f.reason.as_deref(), Some("two / lines [0m"));
    assert_eq!(
        state.status("a", Duration::ZERO).unwrap().reason.as_deref(),
        Some("two / lines [0m")
    );
    let f = state.fail("a", Some("\n\t\n"), Duration::ZERO).unwrap();
    assert_eq!(f.reason, None);
}

#[test]
fn any_reason_is_cleaned_to_one_short_line() {
    let max = MAX_REASON_LEN;
    assert_eq!(clean_reason("exit status 2").as_deref(), Some("exit status 2"));
    assert_eq!(clean_reason("a\nb\r\nc\rd").as_deref(), Some("a / b / c d"));
    assert_eq!(clean_reason("  \n\u{0}\n ").as_deref(), None);
    assert_eq!(clean_reason(&"r".repeat(max)).map(|r| r.len()), Some(max));
    let long = clean_reason(&"r".repeat(max + 1)).unwrap();
    assert_eq!((long.len(), &long[max - 4..]), (max, "r..."));
    // Cut at a character boundary: 2-byte characters, 1,021 bytes kept.
    let accents = clean_reason(&"é".repeat(max)).unwrap();
    assert!(accents.len() <= max && accents.ends_with("é..."), "{accents}");
    let many = clean_reason(&"line\n".repeat(10_000)).unwrap();
    assert!(many.len() == max && many.starts_with("line / line"), "{many}");
    // A chain of failures keeps the names of the dependencies, in the limit.
    let mut state = State::new();
    state.want("b", &["a".into()], false, Duration::ZERO).unwrap();
    state.fail("a", Some(&"r".repeat(max)), Duration::ZERO).unwrap();
    state.start("b", Duration::ZERO, None, Duration::ZERO).unwrap();
    let reason = state.status("b", Duration::ZERO).unwrap().reason.unwrap();
    assert!(reason.len() == max && reason.starts_with("dependency a failed: rrr"), "{reason}");
    assert!(reason.ends_with("r..."), "{reason}");
    for text in ["a\tb\n\nc", &"é\n".repeat(600), &"x".repeat(5000)] {
        let once = clean_reason(text).unwrap();
        assert_eq!(clean_reason(&once).as_deref(), Some(once.as_str()), "cleaning is idempotent");
        assert!(!once.chars().any(char::is_control) && once.len() <= max);
    }
}

#[test]
fn ready_releases_dependents_while_the_unit_runs() {
    check(
        "
        want b a     => added 1, registered
        start a      => started, waited 0s
        start b      => blocked on a (started)
        ready a      => ready after 2s
        status a     => ready, startable; ready at 4s
        status b     => pending, startable; a ready satisfied
        start b      => started, waited 4s for a
        complete a   => ok, ran 6s
        status a     => completed, startable; ready at 4s
        ",
    );
}

#[test]
fn ready_satisfies_soft_edges_like_completed() {
    check(
        "
        want --soft b a  => added 1, registered
        start a          => started, waited 0s
        ready a          => ready after 1s
        start b          => started, waited 0s
        fail a crashed   => ok, ran 3s
        status a         => failed, startable; reason: crashed; ready at 3s
        ",
    );
}

#[test]
fn repeating_ready_changes_nothing_and_says_so() {
    check(
        "
        start a      => started, waited 0s
        ready a      => ready after 1s
        ready a      => already ready after 1s
        ready a      => already ready after 1s
        status a     => ready, startable; ready at 2s
        ",
    );
}

#[test]
fn ready_of_a_unit_not_running_is_refused_with_what_to_do() {
    check(
        "
        ready x      => error: x is not registered: start it first, then mark it ready
        want b a     => added 1, registered
        ready a      => error: a is not registered: start it first, then mark it ready
        ready b      => error: b is pending: start it first, then mark it ready
        complete c   => ok
        ready c      => error: c already completed, so it cannot become ready: start it again first
        fail d       => ok
        ready d      => error: d already failed, so it cannot become ready: start it again first
        ready bad\u{7f} => error: invalid unit name \"bad\\u{7f}\": a name may not contain control characters
        list         => a=not-registered b=pending c=completed d=failed
        ",
    );
}

#[test]
fn start_of_a_ready_unit_is_refused_like_a_started_one() {
    check(
        "
        start a      => started, waited 0s
        ready a      => ready after 1s
        start a      => error: a is already started; complete or fail it before starting it again
        status a     => ready, startable; ready at 2s
        ",
    );
}

#[test]
fn a_ready_unit_ends_completed_or_failed_and_runs_again_afresh() {
    check(
        "
        want b a           => added 1, registered
        start a            => started, waited 0s
        ready a            => ready after 1s
        complete a stopped => ok, ran 2s
        status a           => completed, startable; note: stopped; ready at 3s
        start a            => started, waited 0s
        status a           => started, startable
        status b           => pending, not startable; a started unmet
        ready a            => ready after 3s
        fail a exit status 1 => ok, ran 4s
        status a           => failed, startable; reason: exit status 1; ready at 9s
        start b            => dependency failed: a: exit status 1
        ",
    );
}

#[test]
fn a_completion_note_is_one_line_and_kept_until_the_next_run() {
    check(
        "
        complete a stopped   => ok
        status a             => completed, startable; note: stopped
        fail a boom          => ok
        status a             => failed, startable; reason: boom
        complete a           => ok
        status a             => completed, startable
        ",
    );
    let mut state = State::new();
    let err = state.complete("a", Some("two\nlines"), Duration::ZERO).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid note for a: a note is one line without control characters"
    );
    let err = state.complete("a", Some(&"n".repeat(1025)), Duration::ZERO).unwrap_err();
    assert_eq!(err.to_string(), "invalid note for a: a note is at most 1024 bytes");
    assert!(state.is_empty());
    // An empty note is no note.
    state.complete("a", Some(""), Duration::ZERO).unwrap();
    assert_eq!(state.status("a", Duration::ZERO).unwrap().note, None);
}

#[test]
fn edges_added_after_start_apply_to_the_next_start() {
    check(
        "
        start a      => started, waited 0s
        want a b     => added 1
        status a     => started, not startable; b not registered unmet
        complete a   => ok, ran 3s
        start a      => blocked on b (not registered)
        complete b   => ok
        start a      => started, waited 2s for b
        ",
    );
}

#[test]
fn timings_record_when_and_how_long() {
    let mut state = State::new();
    let at = Duration::from_secs;
    state.want("b", &["a".into()], false, at(1)).unwrap();
    assert!(matches!(
        state.start("b", Duration::ZERO, None, at(2)).unwrap(),
        Start::Blocked { .. }
    ));
    state.start("a", Duration::ZERO, None, at(3)).unwrap();
    state.complete("a", None, at(5)).unwrap();
    state.start("b", Duration::ZERO, None, at(6)).unwrap();
    let b = state.status("b", Duration::ZERO).unwrap();
    assert_eq!((b.started_at, b.waited, b.finished_at), (Some(at(6)), Some(at(4)), None));
    let a = state.status("a", Duration::ZERO).unwrap();
    assert_eq!((a.started_at, a.finished_at, a.since), (Some(at(3)), Some(at(5)), at(5)));
    assert_eq!(b.deps[0].since, at(5));
    assert_eq!(state.complete("b", None, at(9)).unwrap().ran, Some(at(3)));
}

#[test]
fn long_chains_declare_with_linear_search_in_either_order() {
    // The cycle checks' work, counted in units visited: a check that
    // searched the whole chain for each edge would visit about N * N / 2.
    const N: usize = 100_000;
    super::topo::VISITED.with(|v| v.set(0));
    let name = |i: usize| format!("u{i}");
    let mut forward = State::new();
    for i in 1..N {
        forward.want(&name(i), &[name(i - 1)], false, Duration::ZERO).unwrap();
    }
    let mut backward = State::new();
    for i in (1..N).rev() {
        backward.want(&name(i), &[name(i - 1)], false, Duration::ZERO).unwrap();
    }
    // Pre-registered units: both ends of each new edge already exist.
    let mut registered = State::new();
    for i in 0..N {
        registered.want(&name(i), &[], false, Duration::ZERO).unwrap();
    }
    for i in 1..N {
        registered.want(&name(i), &[name(i - 1)], false, Duration::ZERO).unwrap();
    }
    let err = registered.want("u0", &[name(N - 1)], false, Duration::ZERO).unwrap_err();
    assert!(matches!(err, Error::Cycle { .. }), "{err:?}");
    assert_eq!(forward.list(Duration::ZERO).len(), N);
    // Declared in the usual orders, no edge needs a search; the closing
    // edge searches the chain once.
    let visited = super::topo::VISITED.with(|v| v.get());
    assert!(
        (N..=2 * N).contains(&visited),
        "{visited} units visited for {N} edges in three orders"
    );
}

fn assert_acyclic(state: &State) {
    // Kahn's algorithm over the whole graph.
    let mut indegree: Vec<usize> = state.units.iter().map(|u| u.deps.len()).collect();
    let mut ready: Vec<Id> = (0..indegree.len()).filter(|&i| indegree[i] == 0).collect();
    let mut seen = 0;
    while let Some(n) = ready.pop() {
        seen += 1;
        for &p in &state.units[n].dependents {
            indegree[p] -= 1;
            if indegree[p] == 0 {
                ready.push(p);
            }
        }
    }
    assert_eq!(seen, state.units.len(), "the graph has a cycle");
}

fn assert_consistent(state: &State) {
    let mut edges = 0;
    for (id, u) in state.units.iter().enumerate() {
        edges += u.deps.len();
        for &d in u.deps.keys() {
            assert!(state.units[d].dependents.contains(&id));
            assert!(
                state.units[d].ord < u.ord,
                "{} is not ordered before {}",
                state.units[d].name,
                u.name
            );
        }
        for &p in &u.dependents {
            assert!(state.units[p].deps.contains_key(&id));
        }
        assert_eq!(state.index[&u.name], id);
    }
    assert_eq!(edges, state.edges);
    let ords: HashSet<i64> = state.units.iter().map(|u| u.ord).collect();
    assert_eq!(ords.len(), state.units.len(), "two units share a place in the order");
    for info in state.list(Duration::ZERO) {
        let by_definition = info.deps.iter().all(|d| match d.status {
            Status::Completed | Status::Ready => true,
            Status::Failed => d.soft,
            _ => false,
        });
        assert_eq!(info.startable, by_definition, "startability of {}", info.unit);
        // Only a unit started since has a ready time; a ready one has one.
        assert!(info.ready_at.is_none() || info.started_at.is_some(), "{}", info.unit);
        if info.status == Status::Ready {
            assert_eq!(info.ready_at, Some(info.since), "ready time of {}", info.unit);
        }
    }
}

#[test]
fn random_operations_keep_the_invariants() {
    const NAMES: [&str; 10] = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "bad name"];
    for seed in 1..=20u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut state = State::new();
        for step in 0..1_000 {
            let now = Duration::from_millis(step);
            let unit = NAMES[rng.below(NAMES.len())];
            let before = state.clone();
            let op = rng.below(8);
            let result = match op {
                0 | 1 => {
                    let deps: Vec<String> = (0..rng.below(4))
                        .map(|_| NAMES[rng.below(NAMES.len())].to_owned())
                        .collect();
                    state.want(unit, &deps, rng.below(3) == 0, now).map(|_| ())
                }
                2 => state.start(unit, Duration::ZERO, None, now).map(|s| {
                    if let Start::Started { .. } = s {
                        assert!(
                            before.status(unit, now).unwrap().startable,
                            "seed {seed} step {step}: started {unit} while not startable"
                        );
                    }
                }),
                3 => {
                    let note = rng.below(2) == 0;
                    state.complete(unit, note.then_some("stopped"), now).map(|_| ())
                }
                4 => state.fail(unit, Some("r"), now).map(|_| ()),
                5 => state.ready(unit, now).map(|r| {
                    let was = before.status(unit, now).unwrap().status;
                    assert!(
                        matches!(was, Status::Started | Status::Ready),
                        "seed {seed} step {step}: {unit} became ready from {was}"
                    );
                    if !r.changed() {
                        assert_eq!(state, before, "seed {seed} step {step}: a repeated ready");
                    }
                }),
                6 => state.restart(unit, None, Some("exit status 3"), now).map(|_| {
                    let was = before.status(unit, now).unwrap().status;
                    assert!(
                        matches!(was, Status::Started | Status::Ready),
                        "seed {seed} step {step}: {unit} restarted from {was}"
                    );
                    assert_eq!(state.status(unit, now).unwrap().status, Status::Started);
                }),
                _ => state.status(unit, now).map(|_| ()),
            };
            if let Err(e) = result {
                assert_eq!(
                    state, before,
                    "seed {seed} step {step}: refused op {op} on {unit} ({e}) changed the state"
                );
            }
            assert_acyclic(&state);
            assert_consistent(&state);
            // A compacted journal's snapshot rebuilds exactly this state.
            if step % 16 == 0 {
                let restored = State::restore(&state.snapshot()).expect("a snapshot restores");
                assert_eq!(restored, state, "seed {seed} step {step}: snapshot differs");
            }
        }
    }
}

#[test]
fn an_owner_is_kept_while_its_unit_runs() {
    let mut state = State::new();
    let (me, other) = (Owner { pid: 10, start: 7 }, Owner { pid: 10, start: 8 });
    let (me, other) = (Owners::from(me), Owners::from(other));
    let at = Duration::from_secs;
    state.want("b", &["a".to_owned()], false, at(0)).unwrap();
    state.start("a", Duration::ZERO, Some(me.clone()), at(1)).unwrap();
    let mut owners = |unit| state.owners(unit, at(1), Duration::ZERO);
    assert_eq!(owners(Some("b")), vec![("a".to_owned(), me.clone())], "a dependency's owner");
    assert_eq!(owners(Some("a")), vec![("a".to_owned(), me.clone())], "the unit's own owner");
    assert_eq!(owners(Some("c")), vec![], "an unknown unit has none");
    assert_eq!(owners(None), vec![("a".to_owned(), me.clone())]);
    // Looked at a moment ago: not again until `fresh` has passed.
    let fresh = Duration::from_millis(5);
    assert_eq!(state.owners(None, at(1), fresh), vec![]);
    assert_eq!(state.owners(None, at(1) + fresh, fresh), vec![("a".to_owned(), me.clone())]);
    assert!(state.is_owned_by("a", &me));
    assert!(!state.is_owned_by("a", &other), "a reused pid is another process");
    assert_eq!(state.status("a", at(1)).unwrap().owner, Some(me.owner));
    state.ready("a", at(2)).unwrap();
    assert!(state.is_owned_by("a", &me), "a ready unit still runs, owned by its starter");
    state.fail("a", Some("abandoned"), at(3)).unwrap();
    assert!(!state.is_owned_by("a", &me));
    assert_eq!(state.owners(None, at(3), Duration::ZERO), vec![]);
    assert_eq!(state.status("a", at(3)).unwrap().owner, None);
    // A start without an owner (detached) has none, even after an owned one.
    state.start("a", Duration::ZERO, None, at(4)).unwrap();
    assert_eq!(state.owners(None, at(4), Duration::ZERO), vec![]);
    // A ready keeps it so.
    state.ready("a", at(5)).unwrap();
    assert_eq!(state.owners(None, at(5), Duration::ZERO), vec![]);
    // Started again by another owner: its first look is not put off by
    // the last owner's.
    state.complete("a", None, at(6)).unwrap();
    state.start("a", Duration::ZERO, Some(other.clone()), at(7)).unwrap();
    let fresh = Duration::from_secs(60);
    assert_eq!(state.owners(None, at(7), fresh), vec![("a".to_owned(), other)]);
}

#[test]
fn a_restart_takes_a_ready_unit_back_to_started_and_counts() {
    check(
        "
        want app db                   => added 1, registered
        start db                      => started, waited 0s
        start app                     => blocked on db (started)
        restart db exit status 3      => restart 1, ran 2s
        start app                     => still blocked on db (started)
        ready db                      => ready after 2s
        start app                     => started, waited 4s for db
        restart db killed by SIGKILL  => restart 2, ran 4s, was ready
        status db                     => started, startable; restarts 2 at 4s,8s (last: killed by SIGKILL)
        status app                    => started, not startable; db started unmet
        ready db                      => ready after 3s
        fail db gave up               => ok, ran 10s
        status db                     => failed, startable; reason: gave up; ready at 11s; restarts 2 at 4s,8s (last: killed by SIGKILL)
        restart db                    => error: db is failed, so it cannot be restarted: only a started or ready unit is (start it again instead)
        restart nobody                => error: nobody is not registered, so it cannot be restarted: only a started or ready unit is (start it again instead)
        start db                      => started, waited 0s
        status db                     => started, startable
        ",
    );
}

#[test]
fn only_the_owner_that_started_a_unit_restarts_it() {
    let mut state = State::new();
    let (me, other) = (Owner { pid: 10, start: 7 }, Owner { pid: 11, start: 7 });
    let at = Duration::from_secs;
    state.start("a", Duration::ZERO, Some(Owners::from(me)), at(1)).unwrap();
    let before = state.clone();
    assert_eq!(
        state.restart("a", Some(other), None, at(2)),
        Err(Error::NotOwner { unit: "a".into(), owner: 10 })
    );
    assert_eq!(
        state.restart("a", None, None, at(2)),
        Err(Error::NotOwner { unit: "a".into(), owner: 10 })
    );
    assert_eq!(state, before, "a refused restart changes nothing");
    assert_eq!(state.restart("a", Some(me), None, at(3)).map(|r| r.count), Ok(1));
    assert!(state.is_owned_by("a", &Owners::from(me)), "a restart keeps the owner");
    // A unit started by nobody (detached) is restarted by whoever runs it.
    state.start("b", Duration::ZERO, None, at(4)).unwrap();
    assert_eq!(state.restart("b", Some(other), None, at(5)).map(|r| r.count), Ok(1));
}
