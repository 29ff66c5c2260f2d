//! Dispatch: the pure step from a request to its answer, its log line and
//! whether it changed the state. No lock, no clock, no I/O: the caller
//! holds the lock and passes the time, and replaying a journal runs the
//! same function.

use std::time::Duration;

use crate::duration::human;
use crate::protocol::{self, Body, NearView, PROTOCOL_VERSION, Request, UnitView, secs};
use crate::state::{self, Readied, Start, State, Status, StopWaiting};
use crate::suggest;

/// What applying one request did: the answer, the log line, and whether
/// the state changed (so the request must be journaled), as the state
/// machine's transition said.
#[derive(Debug, PartialEq)]
pub(super) struct Outcome {
    pub body: Body,
    pub log: Option<String>,
    pub changed: bool,
}

impl Outcome {
    fn change(body: Body, log: impl Into<Option<String>>) -> Outcome {
        Outcome { body, log: log.into(), changed: true }
    }

    fn unchanged(body: Body, log: Option<String>) -> Outcome {
        Outcome { body, log, changed: false }
    }
}

/// The pure part of a request: what to answer and what to log. Runs under
/// the lock; builds only what the answer needs. Replaying a journal runs
/// the same function, so a recovered state is the state that was lost.
pub(super) fn apply(state: &mut State, request: &Request, now: Duration) -> Outcome {
    let refused = |op: &str, unit: &str, e: state::Error| {
        // The name may be hostile: quoted, so it cannot forge log lines.
        let log = format!("refused {op} {}: {e}", state::quote(unit));
        Outcome::unchanged(Body::Error { error: e.into() }, Some(log))
    };
    match request {
        Request::Ping => {
            let version = env!("CARGO_PKG_VERSION").into();
            let pid = Some(std::process::id());
            Outcome::unchanged(Body::Pong { version, protocol: PROTOCOL_VERSION, pid }, None)
        }
        Request::Want { unit, deps, soft } => match state.want(unit, deps, *soft, now) {
            Ok(w) => {
                let kind = if *soft { "softly wants" } else { "wants" };
                let log = match (w.changed(), deps.is_empty()) {
                    (false, _) => None,
                    (true, true) => Some(format!("{unit} registered")),
                    (true, false) => Some(format!("{unit} {kind} {}", deps.join(", "))),
                };
                let body = Body::Wanted { added: w.added, registered: w.registered };
                Outcome { body, log, changed: w.changed() }
            }
            Err(e) => refused("want", unit, e),
        },
        // A poll that is no duration (negative, huge) promises nothing.
        Request::Start { unit, poll, owner, via, .. } => match state.start(
            unit,
            poll.and_then(|p| Duration::try_from_secs_f64(p).ok()).unwrap_or_default(),
            protocol::owners(owner.as_ref(), via.as_deref()),
            now,
        ) {
            Ok(Start::Started { waited, waited_for }) => {
                let log = match waited_for.is_empty() {
                    true => format!("{unit} started"),
                    false => format!(
                        "{unit} started (waited {} for {})",
                        human(waited),
                        waited_for.join(", ")
                    ),
                };
                Outcome::change(Body::Started { waited: secs(waited), waited_for }, log)
            }
            Ok(Start::Blocked { unmet, began_waiting, polled }) => {
                // Once per wait, not per poll: it reads every name.
                let near = match began_waiting {
                    true => unmet
                        .iter()
                        .filter(|d| d.status == Status::NotRegistered)
                        .filter_map(|d| {
                            let near = near(state, &d.unit)?;
                            Some(NearView { unit: d.unit.clone(), near })
                        })
                        .collect(),
                    false => Vec::new(),
                };
                let unmet = unmet.into_iter().map(Into::into).collect();
                let body = Body::Blocked { now: secs(now), unmet, near };
                Outcome { body, log: None, changed: began_waiting || polled }
            }
            Ok(Start::DependencyFailed { dep, reason }) => {
                let log = format!("{unit} failed: dependency {dep} failed");
                Outcome::change(Body::DependencyFailed { dependency: dep, reason }, log)
            }
            Err(e) => refused("start", unit, e),
        },
        Request::Ready { unit, .. } => match state.ready(unit, now) {
            Ok(Readied::Now { after }) => {
                let body = Body::Ready { after: secs(after), already: false };
                Outcome::change(body, format!("{unit} ready (after {})", human(after)))
            }
            Ok(Readied::Already { after }) => {
                Outcome::unchanged(Body::Ready { after: secs(after), already: true }, None)
            }
            Err(e) => refused("ready", unit, e),
        },
        Request::Complete { unit, note, .. } => match state.complete(unit, note.as_deref(), now) {
            Ok(f) => {
                let ran = f.ran.map(|d| format!(" (ran {})", human(d))).unwrap_or_default();
                let how = note.as_ref().map(|n| format!(": {n}")).unwrap_or_default();
                let body = Body::Completed { ran: f.ran.map(secs), abandoned: f.was_abandoned };
                Outcome::change(body, format!("{unit} completed{ran}{how}"))
            }
            Err(e) => refused("complete", unit, e),
        },
        Request::Fail { unit, reason, .. } => match state.fail(unit, reason.as_deref(), now) {
            Ok(f) => {
                let ran = f.ran.map(|d| format!(" (ran {})", human(d))).unwrap_or_default();
                let why = f.reason.map(|r| format!(": {r}")).unwrap_or_default();
                let body = Body::Failed { ran: f.ran.map(secs) };
                Outcome::change(body, format!("{unit} failed{ran}{why}"))
            }
            Err(e) => refused("fail", unit, e),
        },
        Request::Restart { unit, reason, owner, .. } => {
            let owner = owner.as_ref().map(state::Owner::from);
            match state.restart(unit, owner, reason.as_deref(), now) {
                Ok(r) => {
                    let why = reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default();
                    let log = format!(
                        "{unit} restarting (restart {}, ran {}){why}",
                        r.count,
                        human(r.ran)
                    );
                    Outcome::change(Body::Restarted { restarts: r.count, ran: secs(r.ran) }, log)
                }
                Err(e) => refused("restart", unit, e),
            }
        }
        Request::StopWaiting { unit } => match state.stop_waiting(unit, now) {
            Ok(StopWaiting::Stopped { waited }) => {
                let body = Body::StoppedWaiting { waited: Some(secs(waited)) };
                Outcome::change(body, format!("{unit} stopped waiting (after {})", human(waited)))
            }
            Ok(StopWaiting::NotWaiting) => {
                Outcome::unchanged(Body::StoppedWaiting { waited: None }, None)
            }
            Err(e) => refused("stop_waiting", unit, e),
        },
        Request::Near { unit } => Outcome::unchanged(Body::Near { near: near(state, unit) }, None),
        Request::Status { unit } => match state.status(unit, now) {
            Ok(info) => Outcome::unchanged(
                Body::Status { now: secs(now), unit: Box::new(UnitView::from(info)) },
                None,
            ),
            Err(e) => Outcome::unchanged(Body::Error { error: e.into() }, None),
        },
        Request::List => {
            let units = state.list(now).into_iter().map(UnitView::from).collect();
            Outcome::unchanged(Body::List { now: secs(now), units }, None)
        }
    }
}

/// A registered unit other than `unit` whose name is close to it.
fn near(state: &State, unit: &str) -> Option<String> {
    let mut names = state.registered_names().filter(|&n| n != unit);
    suggest::nearest(unit, &mut names).map(str::to_owned)
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Journal;
    use crate::protocol;

    /// A request in words (`want --soft b a`, `fail a exit 2`), or a raw
    /// JSON line for what words cannot say.
    fn request(line: &str) -> Request {
        if line.starts_with('{') {
            return protocol::parse_request(line.as_bytes()).expect("a valid request line");
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let strings = |ws: &[&str]| ws.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        match words.as_slice() {
            ["ping"] => Request::Ping,
            ["want", "--soft", unit, deps @ ..] => {
                Request::Want { unit: unit.to_string(), deps: strings(deps), soft: true }
            }
            ["want", unit, deps @ ..] => {
                Request::Want { unit: unit.to_string(), deps: strings(deps), soft: false }
            }
            ["start", unit] => Request::Start {
                unit: unit.to_string(),
                poll: None,
                owner: None,
                via: None,
                client_pid: None,
            },
            ["ready", unit] => Request::Ready { unit: unit.to_string(), instance: None },
            ["complete", unit] => {
                Request::Complete { unit: unit.to_string(), note: None, instance: None }
            }
            ["complete", unit, note @ ..] => Request::Complete {
                unit: unit.to_string(),
                note: Some(note.join(" ")),
                instance: None,
            },
            ["fail", unit] => {
                Request::Fail { unit: unit.to_string(), reason: None, instance: None }
            }
            ["fail", unit, reason @ ..] => Request::Fail {
                unit: unit.to_string(),
                reason: Some(reason.join(" ")),
                instance: None,
            },
            ["status", unit] => Request::Status { unit: unit.to_string() },
            ["list"] => Request::List,
            ["stop-waiting", unit] => Request::StopWaiting { unit: unit.to_string() },
            _ => panic!("bad test script line: {line}"),
        }
    }

    /// An outcome in one line: the answer's `result` (an error's kind),
    /// `journaled` when the state changed, then the log line.
    fn render(outcome: &Outcome) -> String {
        let body = serde_json::to_value(&outcome.body).expect("a body serializes");
        let mut out = match &outcome.body {
            Body::Error { .. } => format!("error {}", body["error"]["kind"]).replace('"', ""),
            _ => body["result"].as_str().expect("every body has a result").to_owned(),
        };
        if outcome.changed {
            out += ", journaled";
        }
        if let Some(log) = &outcome.log {
            out += " | ";
            out += log;
        }
        out
    }

    /// Replays `script` (`request => outcome` lines; line N at N seconds)
    /// on a fresh state and compares the transcript.
    fn check(script: &str) {
        let mut state = State::new();
        state::tests::replay(script, |command, now| {
            render(&apply(&mut state, &request(command), now))
        });
    }

    #[test]
    fn declarations_are_journaled_only_when_they_change_something() {
        check(
            "
            want b a         => wanted, journaled | b wants a
            want b a         => wanted
            want --soft b a  => wanted
            want c           => wanted, journaled | c registered
            want c           => wanted
            want --soft d a  => wanted, journaled | d softly wants a
            want d a         => wanted, journaled | d wants a
            ",
        );
    }

    #[test]
    fn only_the_first_refused_start_of_a_wait_is_journaled() {
        check(
            "
            want b a         => wanted, journaled | b wants a
            start b          => blocked, journaled
            start b          => blocked
            start a          => started, journaled | a started
            start b          => blocked
            complete a       => completed, journaled | a completed (ran 2.00s)
            start b          => started, journaled | b started (waited 5.00s for a)
            fail b exit 2    => failed, journaled | b failed (ran 1.00s): exit 2
            start b          => started, journaled | b started
            ",
        );
    }

    #[test]
    fn a_poll_is_journaled_every_half_lapse_window() {
        check(
            r#"
            want b a         => wanted, journaled | b wants a
            start b          => blocked, journaled
            start b          => blocked
            start b          => blocked
            start b          => blocked
            start b          => blocked
            start b          => blocked, journaled
            start b          => blocked
            {"op":"start","unit":"b","poll":1.5} => blocked, journaled
            {"op":"start","unit":"b","poll":1.5} => blocked
            {"op":"start","unit":"b","poll":-1} => blocked, journaled
            "#,
        );
    }

    #[test]
    fn stopping_a_wait_is_journaled_and_logged_once() {
        check(
            r#"
            want b a         => wanted, journaled | b wants a
            start b          => blocked, journaled
            start b          => blocked
            stop-waiting b   => stopped_waiting, journaled | b stopped waiting (after 2.00s)
            stop-waiting b   => stopped_waiting
            stop-waiting zz  => stopped_waiting
            {"op":"stop_waiting","unit":""} => error bad_name | refused stop_waiting "": invalid unit name "": a name is 1 to 255 bytes long
            start b          => blocked, journaled
            "#,
        );
    }

    #[test]
    fn an_owner_is_recorded_with_the_start_and_an_abandoned_unit_fails_its_dependents() {
        check(
            r#"
            want b a         => wanted, journaled | b wants a
            {"op":"start","unit":"a","owner":{"pid":42,"start":7},"client_pid":43} => started, journaled | a started
            start b          => blocked, journaled
            {"op":"fail","unit":"a","reason":"abandoned: the script that started it (pid 42) exited without completing it"} => failed, journaled | a failed (ran 2.00s): abandoned: the script that started it (pid 42) exited without completing it
            start b          => dependency_failed, journaled | b failed: dependency a failed
            "#,
        );
    }

    #[test]
    fn a_failed_dependency_fails_the_dependent_and_is_journaled() {
        check(
            "
            want b a         => wanted, journaled | b wants a
            fail a           => failed, journaled | a failed
            start b          => dependency_failed, journaled | b failed: dependency a failed
            fail b again     => failed, journaled | b failed: again
            ",
        );
    }

    #[test]
    fn refusals_change_nothing_and_say_why_in_the_log() {
        check(
            r#"
            want a a         => error self_dependency | refused want "a": cycle: a -> a (a unit cannot depend on itself)
            want b a         => wanted, journaled | b wants a
            want a b         => error cycle | refused want "a": cycle: a -> b -> a
            start a          => started, journaled | a started
            start a          => error already_started | refused start "a": a is already started; complete or fail it before starting it again
            complete a       => completed, journaled | a completed (ran 2.00s)
            complete a       => error already_completed | refused complete "a": a is already completed
            {"op":"start","unit":"x\ny"} => error bad_name | refused start "x\ny": invalid unit name "x\ny": a name may not contain whitespace
            {"op":"status","unit":""} => error bad_name
            "#,
        );
    }

    #[test]
    fn ready_is_journaled_once_and_releases_dependents() {
        check(
            "
            want b a         => wanted, journaled | b wants a
            start a          => started, journaled | a started
            start b          => blocked, journaled
            ready a          => ready, journaled | a ready (after 2.00s)
            ready a          => ready
            start b          => started, journaled | b started (waited 3.00s for a)
            complete a stopped => completed, journaled | a completed (ran 5.00s): stopped
            {\"op\":\"complete\",\"unit\":\"b\",\"note\":\"stopped\"} => completed, journaled | b completed (ran 2.00s): stopped
            ",
        );
    }

    #[test]
    fn ready_of_a_unit_not_running_is_refused_and_logged() {
        check(
            r#"
            want b a         => wanted, journaled | b wants a
            ready b          => error not_running | refused ready "b": b is pending: start it first, then mark it ready
            ready zz         => error not_running | refused ready "zz": zz is not registered: start it first, then mark it ready
            start b          => blocked, journaled
            complete a       => completed, journaled | a completed
            ready a          => error not_running | refused ready "a": a already completed, so it cannot become ready: start it again first
            start a          => started, journaled | a started
            ready a          => ready, journaled | a ready (after 1.00s)
            start a          => error already_started | refused start "a": a is already started; complete or fail it before starting it again
            {"op":"complete","unit":"a","note":"two\nlines"} => error bad_note | refused complete "a": invalid note for a: a note is one line without control characters
            "#,
        );
    }

    #[test]
    fn a_replayed_journal_restores_ready_units_and_notes() {
        // What the server does with `--state`: journal the changes, then
        // replay them on a fresh state at their recorded times.
        let dir = std::env::temp_dir().join(format!("unitsync-replay-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state");
        let (mut journal, _) = Journal::open(&path, "i1", false, None).unwrap();
        let mut state = State::new();
        let script = [
            "want b a",
            "start a",
            "ready a",
            "ready a",
            "start b",
            "want d c",
            "start c",
            "ready c",
            "complete c stopped",
        ];
        for (i, line) in script.iter().enumerate() {
            let (request, now) = (request(line), Duration::from_millis(100 * i as u64 + 7));
            if apply(&mut state, &request, now).changed {
                journal.append(&request, now).unwrap();
            }
        }
        drop(journal);
        let (_, recovered) = Journal::open(&path, "i2", false, None).unwrap();
        let mut replayed = State::new();
        for (at, request) in &recovered.entries {
            assert!(apply(&mut replayed, request, *at).changed, "{request:?}");
        }
        assert_eq!(replayed, state);
        let a = replayed.status("a", Duration::ZERO).unwrap();
        assert_eq!(
            (a.status, a.ready_at),
            (state::Status::Ready, Some(Duration::from_millis(207)))
        );
        let c = replayed.status("c", Duration::ZERO).unwrap();
        assert_eq!((c.status, c.note.as_deref()), (state::Status::Completed, Some("stopped")));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn reads_are_never_journaled() {
        check(
            "
            ping             => pong
            status a         => status
            list             => list
            want b a         => wanted, journaled | b wants a
            status b         => status
            list             => list
            ",
        );
    }
}
