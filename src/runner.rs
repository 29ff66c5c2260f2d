//! `unitsync run`: one unit's whole life around a command, so that a
//! startup script needs no trap boilerplate.
//!
//! Declare the edges, wait like `start`, run the command with inherited
//! stdio, then complete the unit on exit 0 and fail it otherwise, with the
//! exit status or signal as the reason. SIGTERM, SIGINT and SIGHUP are
//! caught by a dedicated thread: while waiting they stop the wait and fail
//! the unit; while the command runs they are forwarded to it (to its whole
//! process group when it has one), and SIGKILL follows after the stop
//! timeout. Either way dependents learn at once.
//!
//! With `--ready COND` the command is a service: one loop watches it exit,
//! checks COND, keeps the ready deadline and sees stop signals; the unit
//! becomes `ready` when COND holds and ends when the command does.
//! README.md, "Commands", documents the rules.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, ErrorKind, IsTerminal, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::wait::{Id, WaitPidFlag, waitid, waitpid};
use nix::unistd::Pid;

use crate::bell;
use crate::client::{self, Client, Patience, Say};
use crate::duration::human;
use crate::exit::{self, Ended};
use crate::owner;
use crate::procfs;
use crate::protocol::{self, Body, Owners, Request, Status};
use crate::readiness::{Check, Cond, Watch};
use crate::restart::{self, Backoff};
use crate::signals;
use crate::user::{self, User};

/// How often a ready service's health is checked, unless it says.
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(10);
/// How many failed health checks in a row fail it, unless it says.
pub const HEALTH_FAILURES: u32 = 3;

/// How long the `fd:N` reader may lag behind a command that exited.
const LAST_WORD: Duration = Duration::from_millis(200);

pub struct Spec {
    pub unit: String,
    pub after: Vec<String>,
    pub soft_after: Vec<String>,
    /// `--ready`: the command is a service, ready when this holds.
    pub ready: Option<Cond>,
    /// `--ready-timeout`: not ready by then, it fails. Zero: no deadline.
    pub ready_timeout: Duration,
    /// `--stop-timeout`: from the stop signal to SIGKILL. Zero: no SIGKILL.
    pub stop_timeout: Duration,
    /// `--probe-timeout`: how long one `exec:` or `http://` probe may run.
    /// Zero: no limit.
    pub probe_timeout: Duration,
    /// `--restart`: when the command runs again.
    pub restart: restart::Policy,
    /// `--health`: once ready, checked every `health_interval`;
    /// `health_failures` failures in a row fail the run.
    pub health: Option<Cond>,
    pub health_interval: Duration,
    pub health_failures: u32,
    /// `--stop-signal`: the first signal of the command's stop; without
    /// it, a stop signal `run` receives is forwarded as it came, and
    /// `run`'s own stops (a ready deadline) send SIGTERM.
    pub stop_signal: Option<Signal>,
    /// `--user`: the user the command runs as; probes stay `run`'s own.
    pub user: Option<User>,
    /// Who owns the unit: `run` itself, for the whole life of the unit, or
    /// the `up` that runs it (README.md, "Abandoned units").
    pub owner: Option<Owners>,
    pub command: Vec<OsString>,
}

/// Runs the unit. Returns the exit code: the command's own status once it
/// ran (128 + N for signal N), or an error from before it could run.
pub fn run(
    client: &mut Client,
    spec: &Spec,
    patience: Patience,
    say: Say,
    optional: bool,
) -> Result<u8, client::Error> {
    signals::init(&[Signal::SIGTERM, Signal::SIGINT]);
    // Its loops sleep until something happens: a child's end, a signal,
    // a readiness thread's answer (docs/ARCHITECTURE.md, `bell.rs`).
    bell::arm();
    // A forwarded SIGTERM or SIGINT reaches the command as its own stop
    // signal (PostgreSQL wants INT, nginx QUIT).
    if let Some(signal) = spec.stop_signal {
        signals::STOP_AS.store(signal as i32, Ordering::SeqCst);
    }
    let patience = Patience { cancel: Some(&signals::RECEIVED), ..patience };
    let unit = spec.unit.as_str();

    match declare(client, spec) {
        Ok(()) => {}
        Err(client::Error::Unreachable { path, reason }) if optional => {
            Say::error(&format!(
                "warning: cannot reach the server at {}: {reason}; running {unit} without coordination (--optional)",
                path.display()
            ));
            return Ok(execute(
                spec,
                &mut Unit { client: None, spec, say, ended: false },
                patience.poll,
            ));
        }
        Err(e) => return Err(e),
    }
    if let Err(e) = wait(client, spec, patience, say) {
        // Give up on the unit so that its dependents fail fast rather than
        // wait for a command that will never run. A failed dependency has
        // already failed it on the server.
        let reason = match &e {
            client::Error::TimedOut(_) => Some("timed out waiting for its dependencies".to_owned()),
            client::Error::Interrupted { signal, .. } => {
                Some(format!("interrupted by {} while waiting", signals::name(*signal)))
            }
            _ => None,
        };
        if let Some(reason) = reason {
            report(client, unit, End::Failed(reason), say);
        }
        return Err(e);
    }
    Ok(execute(spec, &mut Unit { client: Some(client), spec, say, ended: false }, patience.poll))
}

/// `want` for the hard and the soft edges; always registers the unit.
fn declare(client: &mut Client, spec: &Spec) -> Result<(), client::Error> {
    let unit = spec.unit.clone();
    client.call(&Request::Want { unit: unit.clone(), deps: spec.after.clone(), soft: false })?;
    if !spec.soft_after.is_empty() {
        client.call(&Request::Want { unit, deps: spec.soft_after.clone(), soft: true })?;
    }
    Ok(())
}

/// `start`, declaring the edges again if the server restarted with a fresh
/// state: unlike a bare `start`, `run` knows the whole declaration.
fn wait(
    client: &mut Client,
    spec: &Spec,
    patience: Patience,
    say: Say,
) -> Result<(), client::Error> {
    let began = Instant::now();
    let mut timeout = patience.timeout;
    loop {
        match client::start(
            client,
            &spec.unit,
            spec.owner.clone(),
            Patience { timeout, ..patience },
            say,
        ) {
            Err(client::Error::InstanceChanged { .. }) => {
                // Keep the one deadline across restarts; never zero, which
                // would mean "forever".
                if !timeout.is_zero() {
                    let left = patience.timeout.saturating_sub(began.elapsed());
                    timeout = left.max(Duration::from_millis(1));
                }
                say.line(&format!(
                    "{}: the server restarted with a fresh state; declaring {} again",
                    spec.unit, spec.unit
                ));
                client.accept_new_instance();
                declare(client, spec)?;
            }
            other => return other,
        }
    }
}

/// How a unit ends on the server.
enum End {
    /// Completed; "stopped" when a forwarded stop signal ended it.
    Completed {
        note: Option<&'static str>,
    },
    Failed(String),
}

/// Why `run` is stopping its command; but for a signal, each is a
/// failure, with its reason.
enum Stop {
    /// A stop signal `run` received; the signal thread forwarded it.
    Signal,
    /// `--ready-timeout` passed before the service was ready.
    NotReady(String),
    /// The condition can never hold, `fd:N` closed.
    Never(String),
    /// `--health-failures` health checks in a row failed.
    Unhealthy(String),
}

/// The unit on the server while its command runs; without a client
/// (`--optional` and no server), nothing is told.
struct Unit<'a> {
    client: Option<&'a mut Client>,
    spec: &'a Spec,
    say: Say,
    /// Whether `run` has ended it (completed or failed) on the server.
    ended: bool,
}

impl Unit<'_> {
    fn ready(&mut self) {
        let unit = &self.spec.unit;
        let Some(client) = self.client.as_deref_mut() else { return };
        let instance = client.instance().map(str::to_owned);
        match tell(client, &Request::Ready { unit: unit.clone(), instance }) {
            Ok(_) => self.say.line(&format!("{unit}: ready")),
            Err(e) if restarted(&e) => Say::error(&format!(
                "{unit}: not marked ready: the server restarted with a fresh state since it started {unit}"
            )),
            Err(e) => Say::error(&format!(
                "{unit}: could not mark it ready, so its dependents may wait: {e}"
            )),
        }
    }

    fn end(&mut self, end: End) {
        self.ended = true;
        if let Some(client) = self.client.as_deref_mut() {
            report(client, &self.spec.unit, end, self.say);
        }
    }

    /// The failure to report, `why` and its `restarts`, unless the unit
    /// was failed already (when `run` decided to stop the command).
    fn unless_ended(&self, why: &str, restarts: &str) -> Option<End> {
        (!self.ended).then(|| End::Failed(format!("{why}{restarts}")))
    }

    /// Tells the server that the command runs again after `why`
    /// (README.md, "Supervision"): the unit is `started` until it is
    /// ready again. False if the server would not have it (it was ended
    /// meanwhile, or it is another server): then it is not restarted.
    fn restart(&mut self, why: &str) -> bool {
        let unit = &self.spec.unit;
        let Some(client) = self.client.as_deref_mut() else { return true };
        let request = Request::Restart {
            unit: unit.clone(),
            reason: Some(why.to_owned()),
            owner: self.spec.owner.as_ref().map(|o| o.owner.into()),
            instance: client.instance().map(str::to_owned),
        };
        match tell(client, &request) {
            Ok(_) => true,
            Err(e) if restarted(&e) => {
                Say::error(&format!(
                    "{unit}: not restarted: the server restarted with a fresh state since it started {unit}"
                ));
                false
            }
            Err(client::Error::Refused(body)) => {
                Say::error(&format!("{unit}: not restarted: {}", body.message));
                false
            }
            // Unreachable: supervised all the same, as when `ready` is lost.
            Err(e) => {
                Say::error(&format!("{unit}: could not record its restart: {e}"));
                true
            }
        }
    }

    /// Whether the server has the unit `ready`: the command said so itself
    /// (`unitsync ready`). Unknown counts as no.
    fn is_ready(&mut self) -> bool {
        let request = Request::Status { unit: self.spec.unit.clone() };
        let answer = self.client.as_deref_mut().map(|client| client.call(&request));
        matches!(answer, Some(Ok(Body::Status { unit, .. })) if unit.status == Status::Ready)
    }
}

/// Runs the command as the unit's, again as its restart policy says;
/// tells the server how it went as it goes (ready, restarts, and how it
/// ended). Returns the exit code.
fn execute(spec: &Spec, unit: &mut Unit, poll: Duration) -> u8 {
    // Without a terminal there is no job control to keep, and a stop must
    // reach everything the command started (a script's own children): it
    // gets a process group of its own. With one, it stays in ours, so that
    // ^C and ^Z work as usual.
    let own_group = !io::stdin().is_terminal();
    // Orphans of the command come to us, not to init (or to nobody, when
    // we are PID 1), so that we reap them and stop them at the end.
    let _ = nix::sys::prctl::set_child_subreaper(true);
    let mut backoff = Backoff::new(spec.restart);
    loop {
        let life = match live(spec, unit, poll, own_group, &backoff) {
            Ok(life) => life,
            Err(code) => return code,
        };
        match settle(spec, unit, &life, &mut backoff) {
            Some(code) => return code,
            None => continue,
        }
    }
}

/// One run of the command, as [`supervise`] saw it end.
struct Life {
    status: ExitStatus,
    /// Why `run` stopped it, if it did.
    stop: Option<Stop>,
    /// Whether it became ready by its condition.
    ready: bool,
    ran: Duration,
    /// Its process group (as kill(2) takes it) or its pid.
    target: i32,
    own_group: bool,
}

/// Spawns the command once and supervises it to its end; an exit code if
/// it could not be spawned or watched.
fn live(
    spec: &Spec,
    unit: &mut Unit,
    poll: Duration,
    own_group: bool,
    backoff: &Backoff,
) -> Result<Life, u8> {
    let program = &spec.command[0];
    let mut command = Command::new(program);
    command.args(&spec.command[1..]).env("UNITSYNC_UNIT", &spec.unit);
    // The command's own unit ($UNITSYNC_UNIT) is run's, which ends it:
    // other units the command starts are the command's.
    if let Some(me) = owner::me() {
        command.env(owner::ENV, owner::to_env(me));
    }
    signals::reset_in_child(&mut command, own_group);
    let watch = spec
        .ready
        .as_ref()
        .map(|cond| Watch::new(cond, spec.probe_timeout, &mut command))
        .transpose();
    // Last of the pre_exec hooks: the ones above still run as root.
    if let Some(user) = &spec.user {
        user::switch_in_child(&mut command, user);
    }
    let spawned = watch.and_then(|watch| Ok((watch, command.spawn()?)));
    let (watch, mut child) = match spawned {
        Ok(spawned) => spawned,
        Err(e) => {
            // As a shell would: missing, or not runnable.
            let code = if e.kind() == ErrorKind::NotFound {
                exit::NOT_FOUND
            } else {
                exit::NOT_EXECUTABLE
            };
            let reason =
                format!("cannot run {}: {}", program.to_string_lossy(), why_not(program, &e));
            Say::error(&format!("{}: {reason}", spec.unit));
            unit.end(End::Failed(reason));
            return Err(code);
        }
    };
    let began = Instant::now();
    let pid = child.id() as i32;
    let target = if own_group { -pid } else { pid };
    signals::FORWARD_TO.store(target, Ordering::SeqCst);
    // A signal that came between the wait and the spawn is forwarded now.
    if let Some(early) = signals::received() {
        signals::forward(early);
    }
    let watched = Watched { child: &mut child, watch, target, began };
    let ended = supervise(spec, unit, watched, poll, backoff);
    signals::FORWARD_TO.store(0, Ordering::SeqCst);
    match ended {
        Ok((status, stop, ready)) => {
            Ok(Life { status, stop, ready, ran: began.elapsed(), target, own_group })
        }
        Err(e) => {
            unit.end(End::Failed(format!("lost track of the command: {e}")));
            Err(exit::ERROR)
        }
    }
}

/// After one run: restarts the command if its policy says so (None), or
/// ends the unit and returns the exit code.
fn settle(spec: &Spec, unit: &mut Unit, life: &Life, backoff: &mut Backoff) -> Option<u8> {
    let (code, how) = outcome(life.status);
    let stopped = matches!(life.stop, Some(Stop::Signal));
    let never_ready = spec.ready.is_some() && !life.ready && life.stop.is_none();
    let how_ended = || how.clone().unwrap_or_else(|| "exit status 0".to_owned());
    // Why this run failed, if it did.
    let failure = match &life.stop {
        Some(Stop::Signal) => None,
        Some(Stop::NotReady(why) | Stop::Never(why) | Stop::Unhealthy(why)) => Some(why.clone()),
        None if never_ready => Some(format!("exited before it was ready: {}", how_ended())),
        None => how.clone(),
    };
    // A stop signal ends it for good, whatever the policy.
    if !stopped && signals::received().is_none() {
        let restart_after = backoff.after(failure.is_some(), life.ran);
        if let Some(delay) = restart_after {
            let why = failure.clone().unwrap_or_else(how_ended);
            match restart(spec, unit, life, &why, delay, backoff) {
                Again::Now => return None,
                Again::Stopped => {
                    // Stopped while it waited: not ready, so not done.
                    let why = format!("stopped while waiting to restart (last: {why})");
                    unit.end(End::Failed(why));
                    let signal = signals::received().unwrap_or(Signal::SIGTERM as i32);
                    return Some(exit::signaled(signal));
                }
                // The server holds it ended already: so it stays.
                Again::Refused => {}
            }
        }
    }
    let restarts = after_restarts(backoff);
    // Leftovers are cleared for a service, not for a one-shot command that
    // may have started a daemon on purpose; asked only when it matters.
    let leftovers = life.own_group && signals::exists(life.target);
    // Ready by its condition, or by its own `unitsync ready`.
    let was_ready = life.ready || ((stopped || leftovers) && unit.is_ready());
    let service = spec.ready.is_some() || was_ready;
    let (code, end) = match &life.stop {
        // The unit failed when `run` decided to stop it, unless a restart
        // was still possible then.
        Some(Stop::NotReady(why)) => (exit::TIMED_OUT, unit.unless_ended(why, &restarts)),
        Some(Stop::Never(why) | Stop::Unhealthy(why)) => {
            (exit::ERROR, unit.unless_ended(why, &restarts))
        }
        // Stopped is not done (README.md, "As a container's init"): only a
        // service that was ready did its job; anything else stopped must
        // not release what waits for it.
        Some(Stop::Signal) if was_ready => (code, Some(End::Completed { note: Some("stopped") })),
        Some(Stop::Signal) if spec.ready.is_some() => {
            (code, Some(End::Failed("stopped before it was ready".to_owned())))
        }
        Some(Stop::Signal) => (code, Some(End::Failed("stopped before it completed".to_owned()))),
        None => {
            // The usual cause: a server that forked into the background.
            if never_ready {
                Say::error(&format!(
                    "{}: the service exited ({}) before it was ready; if it daemonized, run it \
                     in the foreground (nginx -g 'daemon off;', redis-server --daemonize no, \
                     postgres rather than pg_ctl start)",
                    spec.unit,
                    how_ended()
                ));
            }
            let code = if never_ready && code == exit::SUCCESS { exit::ERROR } else { code };
            let end = failure.map_or(End::Completed { note: None }, |why| {
                End::Failed(format!("{why}{restarts}"))
            });
            (code, Some(end))
        }
    };
    if let Some(end) = end {
        unit.end(end);
    }
    // A second stop signal killed it: say so, as `up` does.
    let code = match signals::received() {
        Some(signal) if signals::stops() > 1 => exit::signaled(signal),
        _ => code,
    };
    // A service's leftovers do not outlive it, nor anything under PID 1.
    if service || life.stop.is_some() || std::process::id() == 1 {
        stop_leftovers(life.own_group.then_some(life.target), spec.stop_timeout);
    }
    reap_orphans(&[]);
    Some(code)
}

/// ` (after 2 restarts)`, for the reason of a failure that ends the unit;
/// nothing if it was never restarted.
fn after_restarts(backoff: &Backoff) -> String {
    match backoff.restarts() {
        0 => String::new(),
        1 => " (after 1 restart)".to_owned(),
        n => format!(" (after {n} restarts)"),
    }
}

/// Whether the command runs again.
enum Again {
    Now,
    /// A stop signal came during the delay.
    Stopped,
    /// The server would not have the unit restarted (PROTOCOL.md, "restart").
    Refused,
}

/// Restarts the unit after `delay`: clears what the last run left, tells
/// the server, and waits.
fn restart(
    spec: &Spec,
    unit: &mut Unit,
    life: &Life,
    why: &str,
    delay: Duration,
    backoff: &Backoff,
) -> Again {
    stop_leftovers(life.own_group.then_some(life.target), spec.stop_timeout);
    reap_orphans(&[]);
    if !unit.restart(why) {
        return Again::Refused;
    }
    unit.say.line(&format!(
        "{}: {why}; restarting in {} (restart {})",
        spec.unit,
        human(delay),
        backoff.count()
    ));
    let at = Instant::now() + delay;
    loop {
        let seen = bell::count();
        if signals::received().is_some() {
            return Again::Stopped;
        }
        let left = at.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Again::Now;
        }
        bell::wait(seen, left);
    }
}

/// The children of `run` as waitid(2) sees them, none of them reaped.
enum Children {
    /// None at all, so nothing is left below `run`: orphans come to it.
    None,
    /// Some, and none of them has exited.
    Live,
    /// One has exited and waits to be reaped.
    Exited(u32),
}

fn children() -> Children {
    let peek = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    match waitid(Id::All, peek) {
        Err(Errno::ECHILD) => Children::None,
        Ok(status) => {
            status.pid().map_or(Children::Live, |pid| Children::Exited(pid.as_raw() as u32))
        }
        Err(_) => Children::Live,
    }
}

/// Reaps the orphans that came to `run` as a child subreaper (zombies
/// whose parent is us), except `keep`: the command and a probe, which are
/// waited for where they were spawned. One waitid(2) when nothing exited;
/// `/proc` is read only to look past a kept one.
fn reap_orphans(keep: &[u32]) {
    loop {
        match children() {
            Children::None | Children::Live => return,
            Children::Exited(pid) if !keep.contains(&pid) => {
                let _ = waitpid(Pid::from_raw(pid as i32), Some(WaitPidFlag::WNOHANG));
            }
            Children::Exited(_) => {
                for pid in procfs::zombie_children(std::process::id()) {
                    if !keep.contains(&pid) {
                        let _ = waitpid(Pid::from_raw(pid as i32), Some(WaitPidFlag::WNOHANG));
                    }
                }
                return;
            }
        }
    }
}

/// Stops what the command left behind, as systemd does with a service's
/// control group: its process group (`group`, as kill(2) takes it) and
/// every process below `run`, daemons that left the group with setsid
/// included (they were re-parented to `run`, a subreaper). SIGTERM, then
/// SIGKILL after the stop timeout (never, for a stop timeout of 0). The
/// set is taken before anything is signalled.
fn stop_leftovers(group: Option<i32>, stop_timeout: Duration) {
    let me = std::process::id();
    let group = group.filter(|&g| signals::exists(g));
    // No child at all: nothing below us, and no need to read `/proc`.
    if matches!(children(), Children::None) && group.is_none() {
        return;
    }
    let left = || procfs::descendants(me).unwrap_or_default();
    let first = left();
    if first.is_empty() && group.is_none() {
        return;
    }
    for pid in &first {
        signals::send(*pid as i32, Signal::SIGTERM);
    }
    if let Some(group) = group {
        signals::send(group, Signal::SIGTERM);
    }
    if stop_timeout.is_zero() {
        return;
    }
    let kill_at = Instant::now() + stop_timeout;
    // Woken by the exit of a child (the orphans are ours); a grandchild's
    // exit tells its own parent, so the set is looked at every 10 ms too.
    let look = Duration::from_millis(10);
    loop {
        let seen = bell::count();
        reap_orphans(&[]);
        let now_left = left();
        if now_left.is_empty() {
            return;
        }
        if Instant::now() >= kill_at {
            for pid in now_left {
                signals::send(pid as i32, Signal::SIGKILL);
            }
            if let Some(group) = group {
                signals::send(group, Signal::SIGKILL);
            }
            // Reap what the SIGKILLs leave, so that nothing stays a zombie.
            let until = Instant::now() + Duration::from_millis(500);
            loop {
                let seen = bell::count();
                reap_orphans(&[]);
                if procfs::zombie_children(me).is_empty() || Instant::now() >= until {
                    return;
                }
                bell::wait(seen, look);
            }
        }
        bell::wait(seen, look.min(kill_at.saturating_duration_since(Instant::now())));
    }
}

/// The command being supervised.
struct Watched<'a> {
    child: &'a mut Child,
    /// Its readiness condition, if it is a service.
    watch: Option<Watch>,
    /// Its process group (as kill(2) takes it) or its pid.
    target: i32,
    began: Instant,
}

/// The health checks of a ready service (`--health`): when the next is
/// due, and how many failed in a row.
struct Health {
    watch: Watch,
    next: Instant,
    failed: u32,
}

impl Health {
    fn new(cond: &Cond, spec: &Spec, now: Instant) -> Health {
        let watch = Watch::polled(cond, spec.probe_timeout);
        Health { watch, next: now + spec.health_interval, failed: 0 }
    }

    /// Runs the check when it is due (or hears its probe's answer); the
    /// reason to stop the service once `--health-failures` failed in a row.
    fn check(&mut self, spec: &Spec, unit: &Unit, now: Instant) -> Option<String> {
        if now < self.next && !self.watch.probing() {
            return None;
        }
        match self.watch.check() {
            Check::Ready => self.failed = 0,
            // An `exec:` probe that has not answered yet.
            Check::NotYet if self.watch.probing() => return None,
            Check::NotYet | Check::Never(_) => {
                self.failed += 1;
                unit.say.line(&format!(
                    "{}: health check failed ({} of {} in a row)",
                    spec.unit, self.failed, spec.health_failures
                ));
            }
        }
        self.next = now + spec.health_interval;
        (self.failed >= spec.health_failures).then(|| {
            let cond = spec.health.as_ref().map(Cond::to_string).unwrap_or_default();
            format!("{} health checks in a row failed ({cond})", self.failed)
        })
    }
}

/// How long the loop sleeps when nothing is polled and no deadline is
/// near: events (a child's exit, a signal, an fd's newline) wake it
/// sooner. A safety net only.
const IDLE: Duration = Duration::from_secs(1);

/// The one loop while the command runs: sees it exit, checks readiness
/// and health, keeps the ready deadline, sees stop signals and escalates
/// to SIGKILL. Between turns it sleeps until something happens (SIGCHLD,
/// a signal, the `fd:N` newline) or a deadline comes; only readiness
/// conditions that must be polled, and probes, wake it every `poll`.
/// Returns the command's status, why `run` stopped it (if it did), and
/// whether it had become ready by its condition.
fn supervise(
    spec: &Spec,
    unit: &mut Unit,
    watched: Watched,
    poll: Duration,
    backoff: &Backoff,
) -> io::Result<(ExitStatus, Option<Stop>, bool)> {
    let Watched { child, mut watch, target, began } = watched;
    if let Some(watch) = &mut watch {
        watch.spawned();
    }
    let ready_by =
        (watch.is_some() && !spec.ready_timeout.is_zero()).then(|| began + spec.ready_timeout);
    let mut ready = false;
    let mut never = None;
    let mut health: Option<Health> = None;
    let mut stop: Option<(Stop, Instant)> = None;
    let mut killed = false;
    loop {
        // Read before looking around: whatever happens after wakes the
        // sleep at the end of this turn.
        let seen = bell::count();
        if let Some(status) = child.try_wait()? {
            // The signal thread forwards at once: the command may end of a
            // stop signal before this loop has seen it.
            if stop.is_none() && signals::received().is_some() {
                stop = Some((Stop::Signal, Instant::now()));
            }
            // A command that wrote its newline and exited at once was ready.
            if let (None, false, Some(watch)) = (&stop, ready, &watch)
                && watch.was_notified(LAST_WORD)
            {
                ready = true;
                unit.ready();
            }
            return Ok((status, stop.map(|(why, _)| why), ready));
        }
        // The command first (above): then an exited one is no longer in
        // the way of the one waitid(2) that finds no orphan to reap.
        let probes = [
            Some(child.id()),
            watch.as_ref().and_then(Watch::probe_pid),
            health.as_ref().and_then(|h| h.watch.probe_pid()),
        ];
        reap_orphans(&probes.into_iter().flatten().collect::<Vec<_>>());
        let now = Instant::now();
        if stop.is_none() {
            let failed = if let Some(why) = never.take() {
                Some(Stop::Never(format!("will never be ready: {why}")))
            } else if !ready && ready_by.is_some_and(|by| now >= by) {
                Some(Stop::NotReady(format!("not ready within {}", human(spec.ready_timeout))))
            } else {
                health.as_mut().and_then(|h| h.check(spec, unit, now)).map(Stop::Unhealthy)
            };
            let why = if signals::received().is_some() { Some(Stop::Signal) } else { failed };
            if let Some(why) = why {
                // A probe's answer cannot matter any more.
                for watch in [watch.as_mut(), health.as_mut().map(|h| &mut h.watch)] {
                    watch.map(Watch::cancel);
                }
                match &why {
                    Stop::Signal => unit.say.line(&format!(
                        "{}: stopping; send the signal again to kill it now",
                        spec.unit
                    )),
                    Stop::NotReady(reason) | Stop::Never(reason) | Stop::Unhealthy(reason) => {
                        // Its dependents learn at once, unless it is to
                        // run again.
                        if !backoff.would_restart(true, began.elapsed()) {
                            let restarts = after_restarts(backoff);
                            unit.end(End::Failed(format!("{reason}{restarts}")));
                        }
                        signals::send(target, spec.stop_signal.unwrap_or(Signal::SIGTERM));
                    }
                }
                stop = Some((why, now));
            }
        }
        if let (None, false, Some(watch)) = (&stop, ready, &mut watch) {
            match watch.check() {
                Check::Ready => {
                    ready = true;
                    unit.ready();
                    health = spec.health.as_ref().map(|cond| Health::new(cond, spec, now));
                }
                Check::NotYet => {}
                // Acted on at the next turn, unless the command has exited
                // by then: its status says more than the closed pipe.
                Check::Never(why) => never = Some(why),
            }
        }
        let now = Instant::now();
        let kill_at = match stop {
            Some((_, at)) if !killed && !spec.stop_timeout.is_zero() => {
                Some(at + spec.stop_timeout)
            }
            _ => None,
        };
        if kill_at.is_some_and(|at| now >= at) {
            signals::send(target, Signal::SIGKILL);
            killed = true;
            unit.say.line(&format!(
                "{}: still running {} after it was told to stop; sent SIGKILL",
                spec.unit,
                human(spec.stop_timeout)
            ));
        }
        let running = stop.is_none();
        let polled = running
            && ((!ready && watch.as_ref().is_some_and(|w| !w.by_event()))
                || health.as_ref().is_some_and(|h| h.watch.probing()));
        let deadlines = [
            ready_by.filter(|_| !ready && running),
            kill_at,
            health.as_ref().filter(|_| running).map(|h| h.next),
        ];
        let nap =
            deadlines.into_iter().flatten().fold(if polled { poll } else { IDLE }, |nap, at| {
                nap.min(at.saturating_duration_since(now))
            });
        bell::wait(seen, nap);
    }
}

/// Why `program` could not be started. A script whose `#!` interpreter is
/// missing fails with ENOENT on the script itself, which would read as if
/// the script were missing: name the interpreter instead.
pub fn why_not(program: &OsStr, e: &io::Error) -> String {
    let path = Path::new(program);
    if e.kind() == ErrorKind::NotFound && path.is_file() {
        let mut head = [0u8; 256];
        let read = fs::File::open(path).and_then(|mut f| f.read(&mut head)).unwrap_or(0);
        let line = head[..read].split(|&b| b == b'\n').next().unwrap_or_default();
        if let Some(rest) = line.strip_prefix(b"#!") {
            let rest = String::from_utf8_lossy(rest);
            if let Some(interpreter) = rest.split_whitespace().next() {
                return format!(
                    "its interpreter {interpreter} (its #! line) was not found; install it or change that line"
                );
            }
        }
    }
    e.to_string()
}

/// The exit code and, unless it succeeded, how the command ended, worded
/// as `up` words it ([`Ended`]).
fn outcome(status: ExitStatus) -> (u8, Option<String>) {
    let ended = match (status.code(), status.signal()) {
        (Some(code), _) => Ended::Exited(code),
        (None, Some(signal)) => Ended::Killed(signal),
        (None, None) => return (exit::ERROR, Some("ended abnormally".to_owned())),
    };
    (ended.code(), (!ended.success()).then(|| ended.to_string()))
}

/// Completes or fails the unit, on the server that accepted its start:
/// the result carries that server's instance id (PROTOCOL.md, "Results belong to a server"). A server
/// restarted with a fresh state refuses it: the unit of that name there,
/// if any, is not the one that ran, and must not be ended by it.
fn report(client: &mut Client, unit: &str, end: End, say: Say) {
    let instance = client.instance().map(str::to_owned);
    let request = match &end {
        End::Completed { note } => {
            Request::Complete { unit: unit.to_owned(), note: note.map(str::to_owned), instance }
        }
        End::Failed(reason) => {
            Request::Fail { unit: unit.to_owned(), reason: Some(reason.clone()), instance }
        }
    };
    match (tell(client, &request), end) {
        (Ok(_), End::Completed { note: None }) => say.line(&format!("{unit}: completed")),
        (Ok(_), End::Completed { note: Some(note) }) => {
            say.line(&format!("{unit}: completed ({note})"))
        }
        (Ok(_), End::Failed(reason)) => say.line(&format!("{unit}: marked failed: {reason}")),
        (Err(e), _) if restarted(&e) => Say::error(&format!(
            "{unit}: its result was not recorded: the server restarted with a fresh state since it started {unit}"
        )),
        (Err(e), _) => Say::error(&format!(
            "{unit}: could not record how it ended, so its dependents may wait: {e}"
        )),
    }
}

/// Sends a result about a command that runs or ran; if the connection is
/// lost, once more: a server restarted with `--state` keeps its instance
/// and takes it, another refuses it. Without a known instance (no answer
/// yet), whichever server answers now takes it, as before instance ids.
fn tell(client: &mut Client, request: &Request) -> Result<Body, client::Error> {
    let result = client.call(request);
    match result {
        Err(client::Error::Unreachable { .. }) => client.call(request),
        Err(client::Error::InstanceChanged { .. }) if request.instance().is_none() => {
            client.accept_new_instance();
            client.call(request)
        }
        result => result,
    }
}

/// Whether `e` says the result went to another server than the one that
/// accepted the start: the client saw the instance change, or the server
/// refused it as another instance's.
fn restarted(e: &client::Error) -> bool {
    match e {
        client::Error::InstanceChanged { .. } => true,
        client::Error::Refused(body) => body.kind == protocol::ErrorKind::OtherInstance,
        _ => false,
    }
}
