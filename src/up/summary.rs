//! What `up`'s summary says of each script: one closed set of results,
//! decided once by a pure function of what `up` saw of the script (its
//! [`Facts`]) and the server's view of its unit ([`View`]). Whether a
//! script counts as failed (and so whether the main command runs, and
//! `up`'s exit status) is a property of the result, never worked out again.

use std::fmt;
use std::time::Duration;

use crate::duration::human;
use crate::protocol::{Status, UnitView};

use super::Stop;

/// The note on a unit completed because it was stopped (README.md).
pub const STOPPED: &str = "stopped";

/// A script's result, as its summary row says it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Ran and ended well.
    Ok,
    /// A stop script that ran at shutdown and ended well.
    RanAtStop,
    /// A service, ready and still running.
    Ready,
    /// Its unit completed while the script still runs.
    CompletedRunning,
    /// Neither ended nor ready yet.
    Running,
    /// Stopped by `up` (or by someone else's signal, as `run` tells);
    /// `killed` says how long after its stop signal SIGKILL followed.
    Stopped { killed: Option<Duration> },
    /// Stopped while it still waited for its dependencies.
    StoppedWaiting,
    /// Stopped by `--script-timeout`.
    TimedOut,
    /// Never ran: it cannot run, or a dependency failed first.
    NotRun(String),
    /// Ran and failed, or its unit failed.
    Failed(String),
}

impl Outcome {
    /// Whether the script counts as failed: the main command does not run
    /// and `up` exits 1. A stopped script did not fail.
    pub fn failed(&self) -> bool {
        matches!(self, Outcome::TimedOut | Outcome::NotRun(_) | Outcome::Failed(_))
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Ok => f.write_str("ok"),
            Outcome::RanAtStop => f.write_str("ran at stop"),
            Outcome::Ready => f.write_str("ready"),
            Outcome::CompletedRunning => f.write_str("completed, still running"),
            Outcome::Running => f.write_str("running"),
            Outcome::Stopped { killed: None } => f.write_str(STOPPED),
            Outcome::Stopped { killed: Some(after) } => {
                write!(f, "{STOPPED} (killed after {})", human(*after))
            }
            Outcome::StoppedWaiting => f.write_str("not run: stopped while waiting"),
            Outcome::TimedOut => f.write_str("timed out (--script-timeout)"),
            Outcome::NotRun(why) => write!(f, "not run: {why}"),
            Outcome::Failed(why) => write!(f, "failed: {why}"),
        }
    }
}

/// The failures among `outcomes`, by kind: `1 failed, 4 not run` (a
/// dependent that never ran is not one more failure of its own).
pub fn tally<'a>(outcomes: impl IntoIterator<Item = &'a Outcome>) -> String {
    let (mut failed, mut timed_out, mut not_run) = (0, 0, 0);
    for outcome in outcomes {
        match outcome {
            Outcome::Failed(_) => failed += 1,
            Outcome::TimedOut => timed_out += 1,
            Outcome::NotRun(_) => not_run += 1,
            _ => {}
        }
    }
    let parts = [(failed, "failed"), (timed_out, "timed out"), (not_run, "not run")];
    let parts: Vec<String> =
        parts.iter().filter(|(n, _)| *n > 0).map(|(n, what)| format!("{n} {what}")).collect();
    parts.join(", ")
}

/// What `up` itself saw of a script.
#[derive(Clone, Copy)]
pub struct Facts<'a> {
    /// A stop script (`on=stop`).
    pub at_stop: bool,
    /// Why it could not run at all, if it could not.
    pub unrunnable: Option<&'a str>,
    /// Set once `up` sent it its stop signal.
    pub stop: Option<&'a Stop>,
    /// How it ended, in words ("exit status 3"), with whether that was
    /// success; None while it runs.
    pub ended: Option<(bool, &'a str)>,
}

/// The server's view of a script's unit, as far as the result needs it.
#[derive(Clone, Copy, Default)]
pub struct View<'a> {
    pub status: Option<Status>,
    pub reason: Option<&'a str>,
    pub note: Option<&'a str>,
    /// The hard dependency whose failure failed it.
    pub failed_by: Option<&'a str>,
}

impl<'a> View<'a> {
    pub fn of(view: Option<&'a UnitView>) -> View<'a> {
        let Some(v) = view else { return View::default() };
        View {
            status: Some(v.status),
            reason: v.reason.as_deref(),
            note: v.note.as_deref(),
            failed_by: v.failed_by.as_deref(),
        }
    }
}

/// A script's result.
pub fn outcome(facts: &Facts, view: View) -> Outcome {
    let reason = view.reason;
    if let Some(why) = facts.unrunnable {
        return Outcome::NotRun(why.to_owned());
    }
    if facts.at_stop {
        // Not stopped, but killed at its stop timeout or the grace's end:
        // its job is not done, and its unit's reason says which.
        return match (facts.ended, view.status) {
            (Some((true, _)), Some(status)) if status != Status::Failed => Outcome::RanAtStop,
            (_, Some(Status::Failed)) if view.failed_by.is_some() => {
                Outcome::NotRun(reason.unwrap_or("a dependency failed").to_owned())
            }
            (Some((_, how)), _) => Outcome::Failed(reason.unwrap_or(how).to_owned()),
            (None, _) => Outcome::Running,
        };
    }
    if let Some(stop) = facts.stop {
        if stop.timed_out {
            return Outcome::TimedOut;
        }
        if stop.had_failed {
            return Outcome::Failed(reason.unwrap_or("unknown").to_owned());
        }
        if stop.waiting {
            return Outcome::StoppedWaiting;
        }
        return Outcome::Stopped { killed: stop.killed };
    }
    match facts.ended {
        // Stopped by someone else's signal, as `run` tells.
        Some(_) if view.status == Some(Status::Completed) && view.note == Some(STOPPED) => {
            Outcome::Stopped { killed: None }
        }
        Some((true, _)) if view.status != Some(Status::Failed) => Outcome::Ok,
        Some((_, how)) => match reason {
            // A dependency failed its unit before the script could run;
            // the reason says which and why.
            Some(reason) if view.failed_by.is_some() => Outcome::NotRun(reason.to_owned()),
            Some(reason) => Outcome::Failed(reason.to_owned()),
            None => Outcome::Failed(how.to_owned()),
        },
        None => match view.status {
            // Still running, but its unit was failed by a dependency: it
            // never ran its work, whichever of its exit and this look
            // comes first.
            Some(Status::Failed) if view.failed_by.is_some() => {
                Outcome::NotRun(reason.unwrap_or("a dependency failed").to_owned())
            }
            Some(Status::Failed) => Outcome::Failed(reason.unwrap_or("unknown").to_owned()),
            Some(Status::Ready) => Outcome::Ready,
            Some(Status::Completed) => Outcome::CompletedRunning,
            _ => Outcome::Running,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One row of facts and view, and the text the summary shows (with a
    /// `!` in front when the script counts as failed).
    fn check(facts: Facts, view: View, expected: &str) {
        let outcome = outcome(&facts, view);
        let shown = format!("{}{outcome}", if outcome.failed() { "!" } else { "" });
        assert_eq!(shown, expected);
    }

    fn stop(timed_out: bool, had_failed: bool, waiting: bool, killed: Option<u64>) -> Stop {
        Stop {
            at: std::time::Instant::now(),
            timed_out,
            killed: killed.map(Duration::from_millis),
            had_failed,
            waiting,
        }
    }

    const RUNS: Facts = Facts { at_stop: false, unrunnable: None, stop: None, ended: None };

    fn status(status: Status) -> View<'static> {
        View { status: Some(status), ..View::default() }
    }

    fn failed(reason: &'static str, by: Option<&'static str>) -> View<'static> {
        View { status: Some(Status::Failed), reason: Some(reason), failed_by: by, note: None }
    }

    #[test]
    fn results_read_as_transcripts() {
        let ok = Facts { ended: Some((true, "exit status 0")), ..RUNS };
        let three = Facts { ended: Some((false, "exit status 3")), ..RUNS };
        let term = stop(false, false, false, None);
        let killed = stop(false, false, false, Some(1000));
        let late = stop(true, false, false, None);
        let had_failed = stop(false, true, false, None);
        let waiting = stop(false, false, true, None);
        let stopped_note = View { note: Some(STOPPED), ..status(Status::Completed) };
        check(RUNS, View::default(), "running");
        check(RUNS, status(Status::Started), "running");
        check(RUNS, status(Status::Ready), "ready");
        check(RUNS, status(Status::Completed), "completed, still running");
        check(RUNS, failed("disk full", None), "!failed: disk full");
        // Failed by a dependency: not run, before the script's exit as after.
        check(
            RUNS,
            failed("dependency a failed: x", Some("a")),
            "!not run: dependency a failed: x",
        );
        check(ok, status(Status::Completed), "ok");
        check(ok, status(Status::Started), "ok");
        check(ok, failed("no space left", None), "!failed: no space left");
        check(three, View::default(), "!failed: exit status 3");
        check(three, failed("exit status 3", None), "!failed: exit status 3");
        check(
            three,
            failed("dependency a failed: x", Some("a")),
            "!not run: dependency a failed: x",
        );
        check(ok, stopped_note, "stopped");
        check(three, stopped_note, "stopped");
        let unrunnable = Facts { unrunnable: Some("not executable"), ..RUNS };
        check(unrunnable, failed("not executable", None), "!not run: not executable");
        check(Facts { stop: Some(&term), ..RUNS }, status(Status::Ready), "stopped");
        check(
            Facts { stop: Some(&killed), ..three },
            status(Status::Ready),
            "stopped (killed after 1.00s)",
        );
        check(
            Facts { stop: Some(&late), ..RUNS },
            status(Status::Started),
            "!timed out (--script-timeout)",
        );
        check(Facts { stop: Some(&had_failed), ..RUNS }, failed("bad", None), "!failed: bad");
        check(
            Facts { stop: Some(&waiting), ..RUNS },
            status(Status::Pending),
            "not run: stopped while waiting",
        );
    }

    #[test]
    fn a_stop_script_ran_at_stop_or_failed() {
        let at_stop = Facts { at_stop: true, ..RUNS };
        let ok = Facts { ended: Some((true, "exit status 0")), ..at_stop };
        let three = Facts { ended: Some((false, "exit status 3")), ..at_stop };
        let killed = stop(true, false, false, Some(1000));
        let sigkill =
            Facts { stop: Some(&killed), ended: Some((false, "killed by SIGKILL")), ..at_stop };
        check(at_stop, status(Status::Started), "running");
        check(ok, status(Status::Completed), "ran at stop");
        check(three, failed("exit status 3", None), "!failed: exit status 3");
        check(three, View::default(), "!failed: exit status 3");
        check(
            sigkill,
            failed("killed at its stop timeout of 1.00s", None),
            "!failed: killed at its stop timeout of 1.00s",
        );
        check(
            ok,
            failed("dependency db failed: x", Some("db")),
            "!not run: dependency db failed: x",
        );
    }

    #[test]
    fn the_failures_are_told_by_kind() {
        let outcomes = [
            Outcome::Failed("exit status 1".into()),
            Outcome::NotRun("dependency a failed".into()),
            Outcome::NotRun("dependency a failed".into()),
            Outcome::Ok,
            Outcome::Stopped { killed: None },
        ];
        assert_eq!(tally(&outcomes), "1 failed, 2 not run");
        assert_eq!(tally(&[Outcome::TimedOut]), "1 timed out");
    }
}
