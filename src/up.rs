//! `unitsync up`: the entrypoint of a plain container (README.md, "A
//! container entrypoint"). Hosts the server in-process, runs every startup
//! script at once with its output prefixed, prints a summary once every
//! unit is completed or ready, runs the main command while services keep
//! running, and stops everything in reverse dependency order at the end.
//!
//! Every script is a unit (`plan`). A script with a `# unitsync:` header is
//! run through `unitsync run` (this binary runs itself as the wrapper); one
//! without coordinates itself, and `up` ends its unit from its exit status
//! unless the script did.
//!
//! Processes (`procs`): each script runs in a process group of its own.
//! `up` is a child subreaper (and may be PID 1): it reaps every orphan that
//! lands on it with `waitpid(-1)`, which is also how it learns that its
//! own children ended, and at its end it finds whatever is left through
//! `/proc` and stops it, so nothing it started survives it.
//!
//! Its loops sleep on the [`bell`]: SIGCHLD, the other signals, a change in
//! the in-process server and the end of a script's output wake them, so a
//! hand-off or a stop waits for no tick.

mod plan;
mod procs;
mod shutdown;
mod summary;

use std::ffi::OsString;
use std::fmt;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::bell;
use crate::client::{Client, Say};
use crate::duration::{human, human_secs};
use crate::exit::{self, Ended};
use crate::owner;
use crate::protocol::{Body, Request, Status, UnitView};
use crate::render;
use crate::runner;
use crate::server;
use crate::signals;

use plan::Script;
pub use plan::default_dir;
use procs::Relays;
use summary::{Facts, Outcome, STOPPED, View};

/// How long a unit gets between SIGTERM and SIGKILL unless it says.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// The most the whole shutdown may take: inside `docker stop`'s 10 s.
pub const GRACE: Duration = Duration::from_secs(8);
/// The supervising loop wakes on events ([`Up::wait_event`]); it looks at
/// least this often anyway, a safety net for what rings no bell (a pipe a
/// daemon still holds, a process that is not `up`'s child).
const SAFETY_NET: Duration = Duration::from_millis(100);
/// How often the sweep looks for what is left: those processes are not
/// all `up`'s children, so their ends do not all wake it.
const TICK: Duration = Duration::from_millis(10);
/// How long what is left after the units gets between SIGTERM and SIGKILL,
/// at least, even when the grace is used up.
const SWEEP: Duration = Duration::from_millis(500);
/// The hint given when a shutdown starts.
const AGAIN: &str = "send the signal again to kill everything now";
/// Without `/proc`, how long to wait for the output of a script that ended
/// (a background process may hold its pipe open).
const BLIND_DRAIN: Duration = Duration::from_secs(1);

pub struct Spec {
    /// `--dir`, each given (all are run, in order).
    pub dirs: Vec<PathBuf>,
    pub scripts: Vec<PathBuf>,
    /// `Duration::ZERO`: no limit.
    pub script_timeout: Duration,
    pub stop_timeout: Duration,
    pub grace: Duration,
    pub command: Vec<OsString>,
    /// The variables of `--env-file`, for every script and CMD.
    pub env: Vec<(String, String)>,
    /// Columns for the summary's timeline.
    pub width: usize,
}

#[derive(Debug)]
pub enum Error {
    Dir { path: PathBuf, err: io::Error },
    Script { path: PathBuf, problem: String },
    Server(server::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Dir { path, err } => {
                write!(f, "up: cannot read --dir {}: {err}", path.display())
            }
            Error::Script { path, problem } => write!(f, "up: {}: {problem}", path.display()),
            Error::Server(e) => write!(f, "up: {e}"),
        }
    }
}

// Messages name their causes (they are written for a log), so no
// `source()`: an error reporter walking the chain would say each twice.
impl std::error::Error for Error {}

/// A script being supervised.
struct Child {
    script: Script,
    /// None for a script that could not run (not executable).
    pid: Option<Pid>,
    began: Instant,
    ended: Option<(Ended, Duration)>,
    relays: Option<Relays>,
    /// How long it gets between SIGTERM and SIGKILL.
    stop_timeout: Duration,
    /// Set once `up` sent it SIGTERM: when, why, and whether SIGKILL followed.
    stop: Option<Stop>,
    /// A stop script (`on=stop`), run at shutdown.
    at_stop: bool,
}

struct Stop {
    at: Instant,
    /// Stopped by `--script-timeout`, not by the shutdown; for a stop
    /// script, killed at its own stop timeout.
    timed_out: bool,
    /// How long after SIGTERM it got SIGKILL, if it did.
    killed: Option<Duration>,
    /// Its unit had failed before (a script that failed it and went on).
    had_failed: bool,
    /// It was still waiting for its dependencies in `run`.
    waiting: bool,
}

impl Child {
    fn running(&self) -> bool {
        self.pid.is_some() && self.ended.is_none()
    }
}

/// The main command.
struct Main {
    pid: Pid,
    ended: Option<Ended>,
}

/// How startup ended.
enum Startup {
    /// Every unit is completed, ready or failed.
    Settled,
    /// A stop signal came first.
    Interrupted(i32),
}

/// Runs `up`. Returns the exit code.
pub fn up(spec: &Spec, config: &server::Config, say: Say) -> Result<u8, Error> {
    let scripts = plan::collect(&spec.dirs, &spec.scripts)?;
    // An empty directory is most likely a mount that did not happen.
    for dir in &spec.dirs {
        if !scripts.iter().any(|s| s.path.parent() == Some(dir.as_path())) {
            say.line(&format!(
                "up: warning: --dir {} holds no scripts (hidden files are skipped); is it the \
                 right directory, or mounted?",
                dir.display()
            ));
        }
    }
    for warning in plan::check(&scripts)? {
        say.line(&format!("up: warning: {warning}"));
    }
    // SIGHUP stops `up` only without a main command, which gets it
    // otherwise (a shell's hangup, a server's reload).
    let stops: &[Signal] = match spec.command.is_empty() {
        true => &[Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP],
        false => &[Signal::SIGTERM, Signal::SIGINT],
    };
    // Before anything that rings it starts: the signal thread, the server.
    bell::arm();
    signals::init(stops);
    // Orphans of our scripts come to us, not to init, so we can reap them.
    let _ = nix::sys::prctl::set_child_subreaper(true);
    let running =
        server::prepare(config).and_then(server::Prepared::launch).map_err(Error::Server)?;
    let mut up = Up::new(spec, config.socket.clone(), say);
    let code = up.run(scripts);
    running.stop("up: stopping");
    Ok(code)
}

struct Up<'a> {
    spec: &'a Spec,
    socket: PathBuf,
    client: Client,
    say: Say,
    children: Vec<Child>,
    main: Option<Main>,
    /// The server's view of every unit, as of the last [`Up::poll`].
    /// The server's last `list`, sorted by name as it sends it.
    units: Vec<UnitView>,
    now: f64,
    /// The second stop signal, that ended the shutdown at once.
    killed_by: Option<i32>,
    /// A script that failed after startup (README.md, "Supervision"):
    /// which, and why. It stops the container.
    died: Option<String>,
    /// The stop scripts (`on=stop`), until the shutdown runs them; left
    /// unrun when startup did not succeed.
    finish: Vec<Script>,
    /// The width of the scripts' names, for their output's prefix.
    width: usize,
    /// The [`bell`]'s count when the loop last woke.
    rung: u64,
}

impl<'a> Up<'a> {
    fn new(spec: &'a Spec, socket: PathBuf, say: Say) -> Up<'a> {
        let client = Client::new(socket.clone(), Duration::ZERO);
        Up {
            spec,
            socket,
            client,
            say,
            children: Vec::new(),
            main: None,
            units: Vec::new(),
            now: 0.0,
            killed_by: None,
            died: None,
            finish: Vec::new(),
            width: 0,
            rung: bell::count(),
        }
    }

    fn run(&mut self, scripts: Vec<Script>) -> u8 {
        self.width = scripts.iter().map(|s| s.name.len()).max().unwrap_or(0);
        let (finish, scripts) = scripts.into_iter().partition(Script::at_stop);
        self.finish = finish;
        self.declare(&scripts);
        self.spawn_all(scripts);
        let startup = self.startup();
        let (code, summarised) = match startup {
            Startup::Interrupted(signal) => {
                self.skip_stop_scripts("stopped during startup");
                self.say.line(&format!(
                    "up: stopped by {} during startup; {AGAIN}",
                    signals::name(signal)
                ));
                self.shutdown(signal);
                (exit::signaled(signal), false)
            }
            Startup::Settled => self.after_startup(),
        };
        // A final word on every unit that was still running at the first.
        if !summarised {
            self.poll();
            self.summarise();
        }
        self.killed_by.map_or(code, exit::signaled)
    }

    /// Registers every script's unit and edges before any script runs, so
    /// that others can depend on a script without a header by name; fails
    /// at once the unit of a script that cannot run.
    fn declare(&mut self, scripts: &[Script]) {
        for script in scripts {
            let (after, soft_after) = script.edges();
            let unit = script.unit.clone();
            let _ = self.client.call(&Request::Want {
                unit: unit.clone(),
                deps: after.to_vec(),
                soft: false,
            });
            if !soft_after.is_empty() {
                let _ = self.client.call(&Request::Want {
                    unit: unit.clone(),
                    deps: soft_after.to_vec(),
                    soft: true,
                });
            }
            if let Some(why) = &script.unrunnable {
                self.refuse(script, why);
            }
        }
    }

    /// Starts every script that can run. One that cannot be started (a
    /// missing interpreter, say) fails its unit and counts as failed.
    fn spawn_all(&mut self, scripts: Vec<Script>) {
        for script in scripts {
            self.spawn(script);
        }
    }

    /// Starts one script (see [`Up::spawn_all`]).
    fn spawn(&mut self, mut script: Script) {
        let stop_timeout =
            script.header.as_ref().and_then(|h| h.stop_timeout).unwrap_or(self.spec.stop_timeout);
        let at_stop = script.at_stop();
        let (mut pid, mut relays) = (None, None);
        if script.unrunnable.is_none() {
            let mut command = self.command_for(&script, stop_timeout);
            let width = self.width;
            let label = format!("{:<width$} | ", script.name);
            match procs::spawn_script(&mut command, &label) {
                Ok((started, output)) => (pid, relays) = (Some(started), Some(output)),
                Err(e) => {
                    let why =
                        format!("cannot run it: {}", runner::why_not(command.get_program(), &e));
                    self.refuse(&script, &why);
                    script.unrunnable = Some(why);
                }
            }
        }
        self.children.push(Child {
            script,
            pid,
            began: Instant::now(),
            ended: None,
            relays,
            stop_timeout,
            stop: None,
            at_stop,
        });
    }

    /// Reports a script that cannot run and fails its unit, so that its
    /// dependents stop at once. An error, not chatter: printed even with -q.
    fn refuse(&mut self, script: &Script, why: &str) {
        Say::error(&format!("up: {}: {why}; counted as failed", script.path.display()));
        let reason = Some(why.to_owned());
        let _ =
            self.client.call(&Request::Fail { unit: script.unit.clone(), reason, instance: None });
    }

    /// The command that runs a script: through `unitsync run` if it has a
    /// header, as it is otherwise.
    fn command_for(&self, script: &Script, stop_timeout: Duration) -> Command {
        let mut command = match &script.header {
            Some(header) => {
                let mut command = Command::new(self_exe());
                // The server's log already tells the story: only errors.
                command.args(["-q", "run"]).arg(&script.unit);
                for dep in &header.after {
                    command.arg("--after").arg(dep);
                }
                for dep in &header.soft_after {
                    command.arg("--soft-after").arg(dep);
                }
                if let Some(ready) = &header.ready {
                    command.arg("--ready").arg(ready);
                }
                if let Some(timeout) = header.ready_timeout {
                    command.arg("--ready-timeout").arg(millis(timeout));
                }
                if let Some(timeout) = header.probe_timeout {
                    command.arg("--probe-timeout").arg(millis(timeout));
                }
                if let Some(signal) = header.stop_signal {
                    command.arg("--stop-signal").arg(signal.as_str());
                }
                if let Some(policy) = header.restart {
                    command.arg("--restart").arg(policy.to_string());
                }
                if let Some(health) = &header.health {
                    command.arg("--health").arg(health);
                }
                if let Some(interval) = header.health_interval {
                    command.arg("--health-interval").arg(millis(interval));
                }
                if let Some(failures) = header.health_failures {
                    command.arg("--health-failures").arg(failures.to_string());
                }
                if let Some(user) = &header.user {
                    command.arg("--user").arg(user);
                }
                command.arg("--stop-timeout").arg(millis(stop_timeout));
                command.arg("--").arg(&script.path);
                command
            }
            None => Command::new(&script.path),
        };
        // `up --env-file` first: the script's own `env-file=` is nearer.
        command.envs(self.spec.env.iter().chain(&script.env).map(|(k, v)| (k, v)));
        command.env("UNITSYNC_UNIT", &script.unit).env("UNITSYNC_SOCKET", &self.socket);
        // `up` holds each script's unit for the script's whole life and
        // ends it from the exit status: it owns that unit, whether the
        // script (or the `run` that runs it) starts it. Other units a
        // script starts are the script's own.
        if let Some(me) = owner::me() {
            command.env(owner::ENV, owner::to_env(me));
        }
        command
    }

    /// Waits until every script is settled (its unit completed, ready or
    /// failed, its output relayed), enforcing `--script-timeout`.
    fn startup(&mut self) -> Startup {
        loop {
            self.poll();
            if let Some(signal) = signals::received() {
                return Startup::Interrupted(signal);
            }
            self.forward_pending();
            self.enforce_script_timeout();
            self.escalate();
            if self.settled() {
                return Startup::Settled;
            }
            self.wait_event(self.next_due());
        }
    }

    /// After a settled startup: the summary, then the main command (or the
    /// services alone) until it ends or a stop signal, then the shutdown.
    /// Returns the exit code and whether the last summary is current.
    fn after_startup(&mut self) -> (u8, bool) {
        let failed = self.summarise();
        let still_running = self.children.iter().any(Child::running);
        if failed > 0 {
            self.skip_stop_scripts("startup failed");
            let outcomes: Vec<Outcome> = self.children.iter().map(|c| self.result(c)).collect();
            let tally = summary::tally(&outcomes);
            self.say.line(&format!("up: {tally}; not running the main command"));
            self.shutdown(Signal::SIGTERM as i32);
            return (exit::ERROR, !still_running);
        }
        let code = match self.spec.command.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.envs(self.spec.env.iter().map(|(k, v)| (k, v)));
                command.args(args).env("UNITSYNC_SOCKET", &self.socket);
                match procs::spawn_main(&mut command) {
                    Ok(pid) => {
                        self.main = Some(Main { pid, ended: None });
                        self.steady(|up| up.main.as_ref().is_some_and(|m| m.ended.is_some()));
                        None
                    }
                    Err(e) => {
                        // As a shell would: missing, or not runnable.
                        let code = match e.kind() {
                            io::ErrorKind::NotFound => exit::NOT_FOUND,
                            _ => exit::NOT_EXECUTABLE,
                        };
                        Say::error(&format!("up: cannot run {}: {e}", program.to_string_lossy()));
                        Some(code)
                    }
                }
            }
            None => {
                if still_running {
                    self.say.line("up: services are running; stop them with SIGTERM or SIGINT");
                }
                self.steady(|up| !up.children.iter().any(Child::running));
                None
            }
        };
        let signal = signals::received();
        match (signal, self.main.as_ref().and_then(|m| m.ended)) {
            _ if self.died.is_some() => {
                let died = self.died.as_deref().unwrap_or_default();
                Say::error(&format!("up: {died}; stopping everything; {AGAIN}"));
            }
            (Some(signal), _) => {
                self.say.line(&format!("up: stopping on {}; {AGAIN}", signals::name(signal)))
            }
            (None, Some(ended)) if self.children.iter().any(Child::running) => self.say.line(
                &format!("up: the main command ended ({ended}); stopping the services; {AGAIN}"),
            ),
            _ => {}
        }
        self.shutdown(signal.unwrap_or(Signal::SIGTERM as i32));
        // A failure after startup fails the container, with or without
        // the main command: the orchestrator restarts it.
        let code = if self.died.is_some() { Some(exit::ERROR) } else { code };
        let code = code.unwrap_or_else(|| match &self.main {
            Some(main) => main.ended.map_or(exit::ERROR, Ended::code),
            None => match self.failures() {
                0 => exit::SUCCESS,
                _ => exit::ERROR,
            },
        });
        // A failed stop script fails an otherwise successful `up` (§11).
        let mut stop_failed = false;
        for child in self.children.iter().filter(|c| c.at_stop) {
            if let result @ (Outcome::Failed(_) | Outcome::NotRun(_)) = self.result(child) {
                stop_failed = true;
                Say::error(&format!("up: stop script {}: {result}", child.script.name));
            }
        }
        let code = if stop_failed && code == exit::SUCCESS { exit::ERROR } else { code };
        let stop_scripts_ran = self.children.iter().any(|c| c.at_stop);
        let current = !still_running && self.children.iter().all(|c| c.stop.is_none());
        (code, current && !stop_scripts_ran)
    }

    /// While CMD or the services run: reaps (and ends the units of scripts
    /// that exit) until `done` or a stop signal. The server is asked about
    /// the units only when a script ended, not at every tick.
    fn steady(&mut self, done: impl Fn(&Self) -> bool) {
        while !done(self) && signals::received().is_none() && self.died.is_none() {
            self.forward_pending();
            if self.reap() {
                self.died = self.failed_after_startup();
                // Maybe `done` now: look before sleeping.
                continue;
            }
            self.wait_event(self.next_due());
        }
    }

    /// Sleeps until something happens that the loops act on: a child
    /// ended, a signal came, a unit changed in the server, a script's
    /// output ended (the [`bell`]), or `due` came (a timer of the caller),
    /// and at most [`SAFETY_NET`]. A ring since the last wake-up, while
    /// the loop was busy, ends it at once.
    fn wait_event(&mut self, due: Option<Instant>) {
        let timeout = match due {
            Some(due) => due.saturating_duration_since(Instant::now()).min(SAFETY_NET),
            None => SAFETY_NET,
        };
        self.rung = bell::wait(self.rung, timeout);
    }

    /// The earliest timer of the scripts: a stop timeout's SIGKILL
    /// ([`Up::escalate`]) or a `--script-timeout`.
    fn next_due(&self) -> Option<Instant> {
        let script_timeout = self.spec.script_timeout;
        self.children
            .iter()
            .filter(|c| c.running())
            .filter_map(|c| match &c.stop {
                Some(stop) if stop.killed.is_none() && !c.stop_timeout.is_zero() => {
                    Some(stop.at + c.stop_timeout)
                }
                Some(_) => None,
                None if !script_timeout.is_zero() && !is_ready(self.status(&c.script.unit)) => {
                    Some(c.began + script_timeout)
                }
                None => None,
            })
            .min()
    }

    /// A script that failed after startup: its process ended badly (a
    /// status other than 0, or a signal `up` did not send) and its unit
    /// failed. A script that ends with status 0 just completes (one that
    /// daemonized its server and exited is no failure); units that
    /// scripts start for other work are theirs to watch.
    fn failed_after_startup(&self) -> Option<String> {
        self.children.iter().find_map(|child| {
            let (end, _) = child.ended?;
            if end.success() || child.stop.is_some() {
                return None;
            }
            let view = self.unit(&child.script.unit)?;
            (view.status == Status::Failed).then(|| {
                let why = view.reason.clone().unwrap_or_else(|| end.to_string());
                format!("{} failed after startup: {why}", child.script.unit)
            })
        })
    }

    /// Forwards the signals that are not stop signals (README.md, "As a
    /// container's init"): to the main command while it runs, otherwise to
    /// every running script's process group (a headered script's `run`
    /// forwards them to its command).
    fn forward_pending(&self) {
        for signal in signals::take_pending() {
            match self.main.as_ref().filter(|m| m.ended.is_none()) {
                Some(main) => {
                    let _ = nix::sys::signal::kill(main.pid, signal);
                }
                None => {
                    for pid in self.children.iter().filter(|c| c.running()).filter_map(|c| c.pid) {
                        procs::signal_group(pid, signal);
                    }
                }
            }
        }
    }

    /// Reaps what ended, ends the units of scripts that did not, and
    /// refreshes the view of every unit.
    fn poll(&mut self) {
        if !self.reap() {
            self.refresh();
        }
    }

    fn refresh(&mut self) {
        if let Ok(Body::List { units, now }) = self.client.call(&Request::List) {
            self.units = units;
            self.now = now;
        }
    }

    /// Reaps every process that ended and records the ends of ours, ending
    /// the units of scripts that did not. Returns whether one of ours
    /// ended; then the view of every unit is fresh too.
    fn reap(&mut self) -> bool {
        let (scripts, ours) = self.reap_ends();
        if ours {
            self.end_units(scripts);
        }
        ours
    }

    /// Reaps every process that ended and records the ends of ours,
    /// asking the server nothing: the scripts that ended, and whether any
    /// of ours (the main command too) did.
    fn reap_ends(&mut self) -> (Vec<(usize, Ended)>, bool) {
        let mut ours = false;
        let (ended, _) = procs::reap();
        let mut scripts = Vec::new();
        for (pid, end) in ended {
            if let Some(main) = self.main.as_mut().filter(|m| m.pid == pid) {
                main.ended = Some(end);
                ours = true;
            }
            if let Some(i) = self.children.iter().position(|c| c.pid == Some(pid)) {
                let child = &mut self.children[i];
                child.ended = Some((end, child.began.elapsed()));
                // `run` escalates by itself, at the same stop timeout: a
                // command it had to kill ends it with 128 + SIGKILL.
                let by_run = child.script.header.is_some()
                    && end == Ended::Exited(exit::signaled(Signal::SIGKILL as i32).into());
                if let Some(stop) = child.stop.as_mut().filter(|s| s.killed.is_none() && by_run) {
                    stop.killed = Some(child.stop_timeout);
                }
                scripts.push((i, end));
                ours = true;
            }
        }
        (scripts, ours)
    }

    /// Ends the units of `scripts`, which ended, where they did not end
    /// them: one look at every unit answers for all of them (what a `run`
    /// or a script said before it exited), then once more only if `up`
    /// had to end one.
    fn end_units(&mut self, scripts: Vec<(usize, Ended)>) {
        self.refresh();
        let ended = scripts.into_iter().filter(|&(i, end)| self.end_unit(i, end)).count();
        if ended > 0 {
            self.refresh();
        }
    }

    /// Once a script exited: completes its unit (exit 0, or stopped by
    /// `up`) or fails it, unless the script (or `run`) already ended it,
    /// as the view of the units fetched since it exited says. Returns
    /// whether it told the server.
    fn end_unit(&mut self, i: usize, end: Ended) -> bool {
        let child = &self.children[i];
        let unit = child.script.unit.clone();
        let Some(status) = self.status(&unit) else { return false };
        if matches!(status, Status::Completed | Status::Failed) {
            return false;
        }
        // A stop script `up` killed did not finish its job: it failed.
        if let Some(stop) = child.stop.as_ref().filter(|_| child.at_stop) {
            let why = match stop.timed_out {
                true => format!("killed at its stop timeout of {}", human(child.stop_timeout)),
                false => format!("killed when the grace of {} was over", human(self.spec.grace)),
            };
            let _ = self.client.call(&Request::Fail { unit, reason: Some(why), instance: None });
            return true;
        }
        // Stopped is not done (README.md, "As a container's init"): only a
        // unit that was ready did its job; anything else `up` stopped, by
        // the shutdown or by --script-timeout, fails, so that nothing
        // waiting for it runs.
        let request = if let Some(stop) = &child.stop {
            match (status, stop.timed_out) {
                (Status::Ready, false) => {
                    Request::Complete { unit, note: Some(STOPPED.to_owned()), instance: None }
                }
                (_, timed_out) => {
                    let why = match timed_out {
                        true => "stopped by --script-timeout before it completed",
                        false => "stopped before it completed",
                    };
                    Request::Fail { unit, reason: Some(why.to_owned()), instance: None }
                }
            }
        } else if end.success() {
            Request::Complete { unit, note: None, instance: None }
        } else {
            Request::Fail { unit, reason: Some(end.to_string()), instance: None }
        };
        let _ = self.client.call(&request);
        true
    }

    fn status(&self, unit: &str) -> Option<Status> {
        self.unit(unit).map(|u| u.status)
    }

    /// The server's view of `unit`, as of the last `list`.
    fn unit(&self, name: &str) -> Option<&UnitView> {
        let i = self.units.binary_search_by(|u| u.unit.as_str().cmp(name)).ok()?;
        Some(&self.units[i])
    }

    /// Whether every script is settled: its unit ready, or (without a
    /// header) ended by the script, or the script ended and its output is
    /// relayed as far as it will be without waiting on a background
    /// process that holds the pipe.
    fn settled(&self) -> bool {
        let mut drain = Vec::new();
        for child in &self.children {
            let status = self.status(&child.script.unit);
            let settled = match (child.pid, child.ended) {
                (None, _) => true,
                (Some(_), Some(_)) => match &child.relays {
                    Some(relays) if !relays.done() => {
                        drain.push(child);
                        true
                    }
                    _ => true,
                },
                (Some(_), None) => {
                    let own_end = child.script.header.is_none()
                        && matches!(status, Some(Status::Completed | Status::Failed));
                    own_end || is_ready(status)
                }
            };
            if !settled {
                return false;
            }
        }
        // Only now, when nothing else is left to wait for, look for who
        // holds the pipes of scripts that ended.
        drain.into_iter().all(|child| {
            let relays = child.relays.as_ref().expect("only children with relays are drained");
            relays.done()
                || match relays.held_by_others() {
                    Some(held) => held,
                    None => child
                        .ended
                        .is_some_and(|(_, ran)| child.began.elapsed() >= ran + BLIND_DRAIN),
                }
        })
    }

    fn enforce_script_timeout(&mut self) {
        let timeout = self.spec.script_timeout;
        if timeout.is_zero() {
            return;
        }
        let over: Vec<usize> = (0..self.children.len())
            .filter(|&i| {
                let child = &self.children[i];
                let status = self.status(&child.script.unit);
                child.running()
                    && child.stop.is_none()
                    && !is_ready(status)
                    && child.began.elapsed() >= timeout
            })
            .collect();
        for i in over {
            self.say.line(&format!(
                "up: {}: still running after --script-timeout {}; stopping it",
                self.children[i].script.name,
                human(timeout)
            ));
            self.stop(i, true);
        }
    }

    /// How many scripts failed: not run, ended badly, or their unit failed
    /// (a script that `up` stopped did not fail).
    fn failures(&self) -> usize {
        self.children.iter().filter(|c| self.result(c).failed()).count()
    }

    /// A script's result for the summary.
    fn result(&self, child: &Child) -> Outcome {
        let how = child.ended.map(|(end, _)| (end.success(), end.to_string()));
        let facts = Facts {
            at_stop: child.at_stop,
            unrunnable: child.script.unrunnable.as_deref(),
            stop: child.stop.as_ref(),
            ended: how.as_ref().map(|(ok, how)| (*ok, how.as_str())),
        };
        summary::outcome(&facts, View::of(self.unit(&child.script.unit)))
    }

    /// Prints the summary: one row per script, then the units' timeline.
    /// Returns how many scripts failed.
    fn summarise(&self) -> usize {
        let mut rows = vec![["SCRIPT", "UNIT", "RESULT", "WAITED", "RAN"].map(String::from)];
        let mut failed = 0;
        for child in &self.children {
            let view = self.unit(&child.script.unit);
            let result = self.result(child);
            failed += usize::from(result.failed());
            let waited = view.and_then(|v| v.waited).map_or("-".to_owned(), human_secs);
            let started_at = view.map(|v| v.started_at);
            let ran = match (view.and_then(|v| v.ran), child.ended, child.pid) {
                (Some(ran), _, _) => human_secs(ran),
                // Its unit never started: the script waited, then gave up
                // or was stopped, and never ran.
                _ if started_at == Some(None) => "-".to_owned(),
                // Still running: from its unit's start, not the script's,
                // which began by waiting.
                (None, None, Some(_)) if started_at.is_some() => {
                    human_secs((self.now - started_at.flatten().unwrap_or(self.now)).max(0.0))
                }
                (None, Some((_, ran)), _) => human(ran),
                (None, None, Some(_)) => human(child.began.elapsed()),
                (None, None, None) => "-".to_owned(),
            };
            rows.push([
                child.script.name.clone(),
                child.script.unit.clone(),
                result.to_string(),
                waited,
                ran,
            ]);
        }
        let mut text = String::from("\n");
        text += &render::columns(&rows);
        if !self.units.is_empty() {
            text.push('\n');
            text += &render::timeline(&self.units, self.now, self.spec.width);
        }
        let _ = io::stdout().lock().write_all(text.as_bytes());
        failed
    }
}

/// Whether a unit in this status lets its dependents start while its
/// script keeps running.
fn is_ready(status: Option<Status>) -> bool {
    status == Some(Status::Ready)
}

/// A duration as a flag's value that `run` parses back exactly enough.
fn millis(d: Duration) -> String {
    format!("{}ms", crate::duration::millis(d))
}

/// This binary, to run a headered script through `unitsync run`. Falls
/// back to argv[0] where /proc is missing (a bare chroot).
fn self_exe() -> PathBuf {
    if let Ok(exe) = std::env::current_exe() {
        return exe;
    }
    let argv0 = PathBuf::from(std::env::args_os().next().unwrap_or_default());
    if argv0.components().count() > 1 {
        return argv0;
    }
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path).map(|dir| dir.join(&argv0)).find(|p| p.is_file())
        })
        .unwrap_or(argv0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_say_their_causes_once() {
        use std::error::Error as _;
        let io = io::Error::from(io::ErrorKind::NotFound);
        let found = io.to_string();
        let journal = crate::journal::Error::Io { path: PathBuf::from("state"), err: io };
        let up = Error::Server(server::Error::Journal(journal));
        assert_eq!(up.to_string(), format!("up: state file state: {found}"));
        assert!(up.source().is_none());
    }
}
