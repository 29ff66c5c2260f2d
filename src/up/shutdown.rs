//! The ordered shutdown (README.md, "Stopping"): the main command first,
//! then the running scripts in reverse dependency order, in parallel where
//! independent, each stopped with its signal and killed after its stop
//! timeout, all within `--grace`; then the sweep of whatever is left.
//! Which scripts may be stopped next is a pure function of the scripts and
//! the edges between their units ([`stoppable`]). The stop scripts
//! (`on=stop`) run once the main command ended, and hold the units they
//! name until they end.

use std::time::Instant;

use nix::sys::signal::{Signal, kill};

use crate::bell;
use crate::duration::human;
use crate::protocol::Status;
use crate::signals;

use super::{Child, SWEEP, Stop, TICK, Up, procs};

impl Up<'_> {
    /// SIGTERM to a script: to its process group if it has no header, to
    /// its `run` process otherwise (which forwards it to its command and
    /// escalates by itself).
    pub(super) fn stop(&mut self, i: usize, timed_out: bool) {
        let status = self.status(&self.children[i].script.unit);
        let had_failed = status == Some(Status::Failed);
        let child = &mut self.children[i];
        let waiting = child.script.header.is_some() && status == Some(Status::Pending);
        let Some(pid) = child.pid else { return };
        match child.script.header {
            Some(_) => {
                let _ = kill(pid, Signal::SIGTERM);
            }
            None => procs::signal_group(pid, Signal::SIGTERM),
        }
        child.stop =
            Some(Stop { at: Instant::now(), timed_out, killed: None, had_failed, waiting });
    }

    /// SIGKILL to every stopped script still running after its stop
    /// timeout, and to every stop script still running at its stop timeout.
    pub(super) fn escalate(&mut self) {
        for child in self.children.iter_mut().filter(|c| c.at_stop && c.stop.is_none()) {
            let Some(pid) = child.pid.filter(|_| child.ended.is_none()) else { continue };
            if child.stop_timeout.is_zero() || child.began.elapsed() < child.stop_timeout {
                continue;
            }
            self.say.line(&format!(
                "up: stop script {}: still running at its stop timeout of {}; killing it (SIGKILL)",
                child.script.name,
                human(child.stop_timeout)
            ));
            procs::signal_tree(pid, Signal::SIGKILL);
            let killed = Some(child.stop_timeout);
            child.stop = Some(Stop {
                at: Instant::now(),
                timed_out: true,
                killed,
                had_failed: false,
                waiting: false,
            });
        }
        for child in self.children.iter_mut().filter(|c| c.ended.is_none()) {
            let (Some(pid), Some(stop)) = (child.pid, child.stop.as_mut()) else { continue };
            // A stop timeout of 0 never sends SIGKILL (as for `run`): the
            // grace still bounds the wait.
            let due = !child.stop_timeout.is_zero() && stop.at.elapsed() >= child.stop_timeout;
            if stop.killed.is_none() && due {
                stop.killed = Some(child.stop_timeout);
                self.say.line(&format!(
                    "up: {}: still running {} after SIGTERM; killing it (SIGKILL)",
                    child.script.unit,
                    human(child.stop_timeout)
                ));
                procs::signal_tree(pid, Signal::SIGKILL);
            }
        }
    }

    /// The ordered shutdown (README.md, "Stopping"): the main command first,
    /// then the running units in reverse dependency order, in parallel
    /// where independent, all within `--grace`; then everything left.
    /// A stop signal that comes during it ends it at once ([`Up::kill_now`]).
    pub(super) fn shutdown(&mut self, signal: i32) {
        let deadline = Instant::now() + self.spec.grace;
        let seen = signals::stops();
        self.shutdown_within(signal, deadline, seen);
        if signals::stops() > seen && self.killed_by.is_none() {
            self.kill_now();
        }
        self.sweep(deadline);
    }

    fn shutdown_within(&mut self, signal: i32, deadline: Instant, seen: u32) {
        let again = || signals::stops() > seen;
        if let Some(pid) = self.main.as_ref().filter(|m| m.ended.is_none()).map(|m| m.pid) {
            let signal = Signal::try_from(signal).unwrap_or(Signal::SIGTERM);
            let _ = kill(pid, signal);
            let kill_at = (Instant::now() + self.spec.stop_timeout).min(deadline);
            let mut killed = false;
            while self.main.as_ref().is_some_and(|m| m.ended.is_none()) {
                if again() {
                    return;
                }
                self.forward_pending();
                if !killed && Instant::now() >= kill_at {
                    killed = true;
                    self.say.line(&format!(
                        "up: the main command is still running {} after {}; killing it (SIGKILL)",
                        human(self.spec.stop_timeout),
                        signals::name(signal as i32)
                    ));
                    procs::signal_tree(pid, Signal::SIGKILL);
                }
                self.poll();
                // Ended just now: on to the units without waiting.
                if self.main.as_ref().is_some_and(|m| m.ended.is_some()) {
                    break;
                }
                self.wait_event(Some(kill_at).filter(|_| !killed));
            }
        }
        self.run_stop_scripts();
        let mut over = false;
        while self.children.iter().any(Child::running) {
            // Who ended first, then who may stop now, and only then the
            // server: the next unit's stop signal does not wait for a
            // round trip (the order needs only the processes and the
            // edges, which do not change).
            let (ended, ours) = self.reap_ends();
            let running = self.children.iter().any(Child::running);
            if running && !again() {
                self.forward_pending();
                for i in self.stoppable() {
                    self.say.line(&format!("up: stopping {}", self.children[i].script.unit));
                    self.stop(i, false);
                }
            }
            match ours {
                true => self.end_units(ended),
                false => self.refresh(),
            }
            if again() {
                return;
            }
            // The last one ended just now: nothing to wait for.
            if !running {
                break;
            }
            self.escalate();
            if !over && Instant::now() >= deadline {
                over = true;
                let running: Vec<usize> =
                    (0..self.children.len()).filter(|&i| self.children[i].running()).collect();
                for i in running {
                    self.say.line(&format!(
                        "up: {}: still running when the grace of {} was over; killing it (SIGKILL)",
                        self.children[i].script.unit,
                        human(self.spec.grace)
                    ));
                    // A stop script is killed outright: its `run`, given
                    // SIGTERM first, would end its unit as merely stopped.
                    if self.children[i].stop.is_none() && self.children[i].at_stop {
                        let at = Instant::now();
                        let stop = Stop {
                            at,
                            timed_out: false,
                            killed: None,
                            had_failed: false,
                            waiting: false,
                        };
                        self.children[i].stop = Some(stop);
                    }
                    if self.children[i].stop.is_none() {
                        self.stop(i, false);
                    }
                    let child = &mut self.children[i];
                    if let Some(stop) = child.stop.as_mut() {
                        stop.killed = Some(stop.at.elapsed());
                    }
                    procs::signal_tree(
                        child.pid.expect("running children have a pid"),
                        Signal::SIGKILL,
                    );
                }
            }
            // A process stuck in the kernel does not die even of SIGKILL:
            // do not wait for it forever.
            if over && Instant::now() >= deadline + SWEEP {
                break;
            }
            let due = if over { deadline + SWEEP } else { deadline };
            self.wait_event(Some(self.next_due().map_or(due, |next| next.min(due))));
        }
    }

    /// Starts every stop script at once, each declared first with its
    /// edges, so that the units it names are held from now on.
    fn run_stop_scripts(&mut self) {
        let finish = std::mem::take(&mut self.finish);
        if finish.is_empty() {
            return;
        }
        self.declare(&finish);
        for script in finish {
            self.say.line(&format!("up: running stop script {}", script.name));
            self.spawn(script);
        }
        self.poll();
    }

    /// The stop scripts not run, and why (startup did not succeed: what
    /// they would need may never have run).
    pub(super) fn skip_stop_scripts(&mut self, why: &str) {
        let finish = std::mem::take(&mut self.finish);
        if !finish.is_empty() {
            let names: Vec<&str> = finish.iter().map(|s| s.name.as_str()).collect();
            self.say
                .line(&format!("up: not running the stop scripts ({why}): {}", names.join(" ")));
        }
    }

    /// A second stop signal: SIGKILL to the main command and every script
    /// still running, with all they started; the sweep follows at once.
    fn kill_now(&mut self) {
        let signal = signals::received().unwrap_or(Signal::SIGTERM as i32);
        self.killed_by = Some(signal);
        self.say.line(&format!(
            "up: {} again: killing everything now (SIGKILL)",
            signals::name(signal)
        ));
        if let Some(main) = self.main.as_ref().filter(|m| m.ended.is_none()) {
            procs::signal_tree(main.pid, Signal::SIGKILL);
        }
        for child in self.children.iter_mut().filter(|c| c.running()) {
            let pid = child.pid.expect("running children have a pid");
            if let Some(stop) = child.stop.as_mut() {
                stop.killed = Some(stop.at.elapsed());
            }
            procs::signal_tree(pid, Signal::SIGKILL);
        }
        let until = Instant::now() + SWEEP;
        while self.children.iter().any(Child::running) && Instant::now() < until {
            self.reap();
            if !self.children.iter().any(Child::running) {
                break;
            }
            self.wait_event(Some(until));
        }
    }

    /// The running scripts that may get their stop signal now (see
    /// [`stoppable`]).
    fn stoppable(&self) -> Vec<usize> {
        let scripts: Vec<Candidate> = self
            .children
            .iter()
            .map(|c| Candidate {
                unit: &c.script.unit,
                running: c.running(),
                signalled: c.stop.is_some(),
                at_stop: c.at_stop,
            })
            .collect();
        // The server's edges, and the stop scripts' own, even before the
        // server has them.
        let stop_edges = self.children.iter().filter(|c| c.at_stop).flat_map(|c| {
            let (after, soft_after) = c.script.edges();
            after.iter().chain(soft_after).map(|d| (c.script.unit.as_str(), d.as_str()))
        });
        let edges: Vec<(&str, &str)> = self
            .units
            .iter()
            .flat_map(|u| u.dependencies.iter().map(|d| (u.unit.as_str(), d.unit.as_str())))
            .chain(stop_edges)
            .collect();
        stoppable(&scripts, &edges)
    }

    /// Everything still alive that `up` started, daemons included: SIGTERM,
    /// then SIGKILL once the grace is over (and at least [`SWEEP`] later).
    fn sweep(&mut self, deadline: Instant) {
        let left = || match procs::left_behind() {
            Some(pids) => pids,
            // Without /proc, the groups of the scripts and the main command.
            None => self
                .children
                .iter()
                .filter_map(|c| c.pid)
                .chain(self.main.as_ref().map(|m| m.pid))
                .collect(),
        };
        let mut rung = self.rung;
        let first = left();
        if !first.is_empty() {
            self.say.line(&format!(
                "up: stopping {} process{} left behind",
                first.len(),
                if first.len() == 1 { "" } else { "es" }
            ));
            // After a second stop signal, nothing gets more time.
            let (first_signal, kill_at) = match self.killed_by {
                Some(_) => (Signal::SIGKILL, Instant::now()),
                None => (Signal::SIGTERM, deadline.max(Instant::now() + SWEEP)),
            };
            for &pid in &first {
                procs::signal_group(pid, first_signal);
            }
            loop {
                let (_, any) = procs::reap();
                let now_left = left();
                if !any || now_left.is_empty() {
                    break;
                }
                if Instant::now() >= kill_at {
                    for pid in now_left {
                        procs::signal_group(pid, Signal::SIGKILL);
                    }
                    break;
                }
                // `left` holds `self`: the bell's count is kept aside.
                let nap = kill_at.saturating_duration_since(Instant::now()).min(TICK);
                rung = bell::wait(rung, nap);
            }
        }
        self.rung = rung;
        // Reap what the SIGKILLs leave, so that nothing stays a zombie.
        let until = Instant::now() + SWEEP;
        while procs::reap().1 && Instant::now() < until {
            self.wait_event(Some(until));
        }
        self.poll();
    }
}

/// A script as the shutdown sees it.
pub struct Candidate<'a> {
    pub unit: &'a str,
    pub running: bool,
    /// Already sent its stop signal.
    pub signalled: bool,
    /// A stop script: it ends by itself (or at its stop timeout), never by
    /// the order, and holds what it depends on while it runs.
    pub at_stop: bool,
}

/// The scripts (by index) that may get their stop signal now: running, not
/// yet signalled, not stop scripts, and no running script's unit (a stop
/// script's included) depends on theirs, directly or through units that
/// are not running. `edges` are `(unit, dependency)`.
pub fn stoppable(scripts: &[Candidate], edges: &[(&str, &str)]) -> Vec<usize> {
    // A handful of scripts: lists do.
    let mut needed: Vec<&str> = Vec::new();
    for script in scripts.iter().filter(|s| s.running) {
        let mut next = vec![script.unit];
        while let Some(unit) = next.pop() {
            for &(_, dep) in edges.iter().filter(|(u, _)| *u == unit) {
                if !needed.contains(&dep) {
                    needed.push(dep);
                    next.push(dep);
                }
            }
        }
    }
    (0..scripts.len())
        .filter(|&i| {
            let s = &scripts[i];
            s.running && !s.signalled && !s.at_stop && !needed.contains(&s.unit)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scripts as `name` (running), `name*` (running, signalled) or
    /// `name-` (ended), each with a leading `^` for a stop script; the
    /// names of those that may be stopped now.
    fn check(scripts: &str, edges: &[(&str, &str)], expected: &str) {
        let scripts: Vec<Candidate> = scripts
            .split_whitespace()
            .map(|s| Candidate {
                unit: s.trim_start_matches('^').trim_end_matches(['*', '-']),
                running: !s.ends_with('-'),
                signalled: s.ends_with('*'),
                at_stop: s.starts_with('^'),
            })
            .collect();
        let found: Vec<&str> =
            stoppable(&scripts, edges).iter().map(|&i| scripts[i].unit).collect();
        assert_eq!(found.join(" "), expected);
    }

    #[test]
    fn dependents_are_stopped_before_their_dependencies() {
        // web -> api -> db; cache alone.
        let chain = [("web", "api"), ("api", "db")];
        check("db api web cache", &chain, "web cache");
        check("db api web* cache*", &chain, "");
        check("db api web-", &chain, "api");
        check("db api- web-", &chain, "db");
        // Through a unit that is not running: web still needs db.
        check("db web", &chain, "web");
        check("db web-", &chain, "db");
        // Independent ones all at once.
        check("a b c", &[], "a b c");
        check("", &chain, "");
        // A diamond: d waits for both b and c.
        let diamond = [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")];
        check("a b c d", &diamond, "a");
        check("a- b c d", &diamond, "b c");
        check("a- b- c d", &diamond, "c");
    }

    #[test]
    fn a_stop_script_holds_what_it_names_until_it_ends() {
        // backup -> db -> volume; web -> db; cache alone.
        let edges = [("backup", "db"), ("db", "volume"), ("web", "db")];
        // Never stopped by the order itself; what it needs stays up.
        check("^backup db volume web cache", &edges, "web cache");
        check("^backup db volume web- cache-", &edges, "");
        // Once it ended, the rest goes in order.
        check("^backup- db volume web-", &edges, "db");
        // Two stop scripts on one unit: stopped once both ended.
        let two = [("backup", "db"), ("flush", "db")];
        check("^backup- ^flush db", &two, "");
        check("^backup- ^flush- db", &two, "db");
        // A stop script after another stop script: neither is stopped.
        check("^a ^b", &[("a", "b")], "");
        // A stop script naming nothing holds nothing.
        check("^hook db", &edges, "db");
    }
}
