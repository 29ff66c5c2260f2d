//! The server: the one `Mutex<State>` that connections share, its journal,
//! and starting and stopping it. By concern:
//! - `daemon`   the `--log` file, `--detach`, the pidfile, the socket's
//!   directory, mode and stale leftovers;
//! - `conn`     the accept loop, the connection cap, one thread per connection;
//! - `dispatch` the pure step from a request to an answer, a log line and
//!   whether the state changed.
//!
//! Each request is lock → apply → journal → unlock → write; what the lock
//! covers, its one exception (the journal) and its cost are stated in
//! docs/ARCHITECTURE.md, "Invariants". Connections, line lengths and idle
//! time are all bounded.

use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{SigSet, Signal};
use nix::sys::socket::{Shutdown, shutdown};

use crate::bell;
use crate::duration;
use crate::journal::{self, Journal};
use crate::owner;
use crate::peer::{self, Policy};
use crate::protocol::{Body, ErrorBody, ErrorKind, Request, Response};
use crate::signals;
use crate::state::{ABANDONED, Owners, State};
use crate::threads;

mod conn;
mod daemon;
mod dispatch;

use dispatch::Outcome;

/// Connection threads only parse a line and touch the state: a small stack.
const THREAD_STACK: usize = 128 * 1024;
/// How often every running unit's owner is checked, besides the checks of
/// the requests that read units.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// A waiting `start` checks its dependencies' owners only if nobody has in
/// this long: a read of `/proc` costs more than the rest of a poll, and a
/// thousand dependents may poll one unit.
const START_CHECKS_EVERY: Duration = Duration::from_millis(5);

pub struct Config {
    pub socket: PathBuf,
    pub detach: bool,
    pub pidfile: Option<PathBuf>,
    pub group: Option<String>,
    /// Where log lines go instead of stderr (appended).
    pub log: Option<PathBuf>,
    /// The journal to replay and append to (`--state`).
    pub state: Option<PathBuf>,
    /// Sync the journal to disk after each change (`--fsync`).
    pub fsync: bool,
    pub quiet: bool,
}

#[derive(Debug)]
pub enum Error {
    Group(String),
    Dir { path: PathBuf, err: io::Error },
    NoParent { dir: PathBuf },
    DirOwner { path: PathBuf, owner: u32, me: u32 },
    NotASocket { path: PathBuf, what: &'static str },
    AlreadyRunning { path: PathBuf },
    Socket { path: PathBuf, err: io::Error },
    Pidfile { path: PathBuf, err: io::Error },
    LogFile { path: PathBuf, err: io::Error },
    Journal(journal::Error),
    // `Detach` and `Signals` hold nix's failures as io::Error, worded like
    // every other system error here (`... (os error 11)`): nix's own
    // wording would bring its tables of errno names and descriptions into
    // the binary.
    Detach(io::Error),
    Child(String),
    Signals(io::Error),
    Thread { what: &'static str, err: io::Error },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Group(msg) => write!(f, "--group: {msg}"),
            Error::Dir { path, err } => {
                write!(f, "cannot use socket directory {}: {err}", path.display())
            }
            Error::NoParent { dir } => write!(
                f,
                "cannot create socket directory {}: {} does not exist, and only the \
                 socket's own directory is created, never its parents; create it first \
                 or choose another path with --socket",
                dir.display(),
                dir.parent().unwrap_or(dir).display()
            ),
            Error::DirOwner { path, owner, me } => write!(
                f,
                "socket directory {} belongs to uid {owner}, not to you (uid {me}); \
                 choose another path with --socket or $UNITSYNC_SOCKET",
                path.display()
            ),
            Error::NotASocket { path, what } => write!(
                f,
                "{} exists and is {what}, not a socket; refusing to touch it: \
                 remove it or choose another path with --socket",
                path.display()
            ),
            Error::AlreadyRunning { path } => write!(
                f,
                "a server is already running on {}; stop it first or choose another --socket",
                path.display()
            ),
            Error::Socket { path, err } => write!(
                f,
                "cannot listen on {}: {err}; choose a directory this user may write to with --socket or $UNITSYNC_SOCKET",
                path.display()
            ),
            Error::Pidfile { path, err } => {
                write!(f, "cannot write pidfile {}: {err}", path.display())
            }
            Error::LogFile { path, err } => {
                write!(f, "cannot open log file {}: {err}", path.display())
            }
            Error::Journal(err) => err.fmt(f),
            Error::Detach(err) => write!(f, "cannot detach: {err}"),
            // The detached child's own error, which it could not print.
            Error::Child(message) => f.write_str(message),
            Error::Signals(err) => write!(f, "cannot block the stop signals: {err}"),
            Error::Thread { what, err } => write!(f, "cannot start the {what} thread: {err}"),
        }
    }
}

// Messages name their causes (they are written for a log), so no
// `source()`: an error reporter walking the chain would say each twice.
impl std::error::Error for Error {}

/// Runs `unitsync serve` until SIGTERM or SIGINT. With `--detach` the caller
/// returns as soon as the child serves, or fails as the child did.
///
/// Once the socket is bound, an error removes it again: a server that
/// could not start leaves nothing behind (a detached child says why to its
/// parent, then exits).
pub fn serve(config: &Config) -> Result<(), Error> {
    let log_file = config.log.as_deref().map(daemon::open_log).transpose()?;
    let prepared = prepare(config)?;

    let mut report = None;
    if config.detach {
        match daemon::detach(log_file.as_ref()) {
            Ok(daemon::Detached::Parent { child, ready }) => {
                // The socket is the child's now, whatever it says.
                drop(prepared);
                ready.wait()?;
                // The socket was listening before the fork, so clients can
                // connect as soon as we return.
                let _ = writeln!(io::stdout().lock(), "{child}");
                return Ok(());
            }
            Ok(daemon::Detached::Child(child)) => report = Some(child),
            Err(e) => return Err(prepared.abandon(e)),
        }
    } else if let Some(file) = &log_file {
        let _ = nix::unistd::dup2_stderr(file);
    }

    // Block every catchable signal before any thread exists, so that every
    // thread inherits the mask and only this one receives them: only
    // SIGTERM and SIGINT stop the server, no other signal kills it.
    let stop = SigSet::from_iter([Signal::SIGTERM, Signal::SIGINT]);
    let all = signals::catchable();
    let started = match all.thread_block() {
        Err(e) => Err(prepared.abandon(Error::Signals(e.into()))),
        Ok(()) => match daemon::write_pidfile(config.pidfile.as_deref(), std::process::id()) {
            Err(e) => Err(prepared.abandon(e)),
            Ok(()) => prepared.launch(),
        },
    };
    if let Some(report) = report {
        report.send(started.as_ref().err());
    }
    let running = started?;
    let signal = loop {
        match signals::wait(&all) {
            Ok(signal) if !stop.contains(signal) => continue,
            Ok(signal) => break signal,
            Err(_) => break Signal::SIGTERM,
        }
    };
    running.stop(&format!("stopping on {}", signal.as_str()));
    if let Some(pidfile) = &config.pidfile {
        let _ = fs::remove_file(pidfile);
    }
    Ok(())
}

/// A server with its state loaded and its socket listening, not yet
/// accepting connections (so `--detach` can fork before any thread runs).
pub struct Prepared {
    listener: UnixListener,
    server: Arc<Server>,
    socket: PathBuf,
    note: Option<String>,
}

/// Loads the state (replaying `--state`) and binds the socket.
pub fn prepare(config: &Config) -> Result<Prepared, Error> {
    let group = config.group.as_deref().map(peer::group).transpose().map_err(Error::Group)?;
    let policy = Policy { owner: peer::current_uid(), group };
    // Read the state file first: a bad one stops us before we touch the socket.
    let fresh = new_instance_id();
    let (core, instance, clock, note) = match &config.state {
        Some(path) => {
            let (journal, recovered) =
                Journal::open(path, &fresh, config.fsync, group).map_err(Error::Journal)?;
            let count = recovered.entries.len();
            let state = replay(&recovered, path).map_err(Error::Journal)?;
            let snapshot_at = recovered.snapshot.as_ref().map_or(Duration::ZERO, |(at, _)| *at);
            let last = recovered.entries.last().map_or(snapshot_at, |(at, _)| *at);
            // Continue the recorded timeline: wall time since its origin, and
            // never before the last recorded change.
            let since_origin = recovered.origin.elapsed().unwrap_or_default().max(last);
            let clock = Clock { base: Instant::now(), offset: since_origin };
            let note = format!("recovered {count} changes from {}", path.display());
            (Core { state, journal: Some(journal) }, recovered.instance, clock, Some(note))
        }
        None => {
            let clock = Clock { base: Instant::now(), offset: Duration::ZERO };
            (Core { state: State::new(), journal: None }, fresh, clock, None)
        }
    };
    let listener = daemon::bind(&config.socket, &policy)?;
    let server = Arc::new(Server {
        core: Mutex::new(core),
        instance,
        policy,
        log: Log { quiet: config.quiet, clock },
        connections: AtomicUsize::new(0),
        max_connections: conn::connection_cap(),
    });
    Ok(Prepared { listener, server, socket: config.socket.clone(), note })
}

/// The state that the journal at `path` recorded: its snapshot (if it was
/// compacted), then its `entries` replayed.
fn replay(recovered: &journal::Recovered, path: &Path) -> Result<State, journal::Error> {
    let corrupt = |line, detail| journal::Error::Corrupt { path: path.to_owned(), line, detail };
    let mut state = match &recovered.snapshot {
        Some((_, snapshot)) => State::restore(snapshot).map_err(|e| corrupt(2, e))?,
        None => State::new(),
    };
    for (i, (at, request)) in recovered.entries.iter().enumerate() {
        if let Outcome { body: Body::Error { error }, .. } =
            dispatch::apply(&mut state, request, *at)
        {
            let detail = format!("change {} no longer applies: {}", i + 1, error.message);
            return Err(corrupt(recovered.first_line + i, detail));
        }
    }
    Ok(state)
}

/// A server accepting connections on its own thread.
pub struct Running {
    server: Arc<Server>,
    stop: Arc<AtomicBool>,
    listener_fd: RawFd,
    accept: thread::JoinHandle<()>,
    socket: PathBuf,
}

impl Prepared {
    /// Gives up before serving: closes the socket and removes it, and
    /// returns `e`, the reason.
    fn abandon(self, e: Error) -> Error {
        let Prepared { listener, socket, .. } = self;
        drop(listener);
        daemon::remove_socket(&socket);
        e
    }

    /// Starts accepting. Threads inherit the caller's signal mask. If it
    /// cannot, the socket is removed.
    pub fn launch(self) -> Result<Running, Error> {
        let Prepared { listener, server, socket, note } = self;
        server.log.line(&format!("serving on {} (pid {})", socket.display(), std::process::id()));
        if let Some(note) = &note {
            server.log.line(note);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let listener_fd = listener.as_raw_fd();
        let accept = {
            let (server, stop) = (server.clone(), stop.clone());
            threads::spawn("accept", THREAD_STACK, move || {
                conn::accept_loop(&server, &listener, &stop)
            })
            .map_err(|err| {
                // The listener went with the closure: nothing listens.
                daemon::remove_socket(&socket);
                Error::Thread { what: "accept", err }
            })?
        };
        // Abandoned units fail within a second even if nobody asks
        // (README.md, "Abandoned units"). The thread ends with the process.
        let sweeper = server.clone();
        let sweeping = stop.clone();
        threads::spawn("sweep", THREAD_STACK, move || {
            loop {
                thread::sleep(SWEEP_EVERY);
                if sweeping.load(Ordering::SeqCst) {
                    break;
                }
                sweeper.sweep();
            }
        })
        .map_err(|err| {
            stop.store(true, Ordering::SeqCst);
            let _ = shutdown(listener_fd, Shutdown::Both);
            daemon::remove_socket(&socket);
            Error::Thread { what: "sweep", err }
        })?;
        Ok(Running { server, stop, listener_fd, accept, socket })
    }
}

impl Running {
    /// Stops accepting and removes the socket. Connections already open are
    /// left to the process's exit.
    pub fn stop(self, why: &str) {
        self.server.log.line(why);
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the blocking accept() with an error.
        let _ = shutdown(self.listener_fd, Shutdown::Both);
        let _ = self.accept.join();
        daemon::remove_if_ours(&self.socket);
    }
}

/// The server's timeline: time since its state began, which with
/// `--state` is earlier than this process.
#[derive(Clone, Copy)]
struct Clock {
    base: Instant,
    offset: Duration,
}

impl Clock {
    /// Whole milliseconds, as the journal records times: a restarted
    /// server then rebuilds exactly the state (every time in every view)
    /// that the one before it held.
    fn now(&self) -> Duration {
        Duration::from_millis(duration::millis(self.offset + self.base.elapsed()))
    }
}

/// Server log lines, on stderr, stamped with the server's time.
struct Log {
    quiet: bool,
    clock: Clock,
}

impl Log {
    fn line(&self, text: &str) {
        self.line_at(self.clock.now(), text);
    }

    /// A line stamped `at`: for a request, the time it was applied at
    /// under the lock, so that the stamps order as the state changed even
    /// when two threads write their lines in the other order.
    fn line_at(&self, at: Duration, text: &str) {
        if !self.quiet {
            // One `write` per line, so that lines of the log and of scripts
            // sharing the file never interleave; a failed write (a reader
            // that went away) is dropped, never a panic.
            let line = format!("{} {text}\n", duration::stamp('+', at));
            let _ = io::stderr().lock().write_all(line.as_bytes());
        }
    }
}

/// What the one lock guards: the state, and the journal that must record
/// its changes in the order they happen.
struct Core {
    state: State,
    journal: Option<Journal>,
}

pub(super) struct Server {
    core: Mutex<Core>,
    instance: String,
    policy: Policy,
    log: Log,
    connections: AtomicUsize,
    /// [`conn::MAX_CONNECTIONS`], or fewer if the descriptor limit is lower.
    max_connections: usize,
}

impl Server {
    /// Applies one request: lock, apply, journal, unlock, then log.
    ///
    /// The journal write is the one I/O under the lock, on purpose: the
    /// file must hold the changes in the order they were applied, and the
    /// change must be recorded before it is acknowledged. It is a single
    /// `write` to the page cache unless `--fsync` was asked for.
    ///
    /// Only what the journal holds may stay applied. The state machine
    /// decides whether a request changes anything (most polls do not), so
    /// the request is applied first; if its line cannot be written (a full
    /// disk), the journal cuts off whatever part of the line got in and
    /// the state is rebuilt from it, as a restart would: the request is
    /// refused with nothing changed. That costs a replay, but only then.
    fn apply(&self, request: Request) -> Response {
        // A result from a command whose start another server accepted
        // (this one restarted without --state meanwhile): the unit of that
        // name here is not the one that ran. Refused, nothing changed.
        if let Some((op, unit, theirs)) = request.instance()
            && theirs != self.instance
        {
            let message = format!(
                "{op} {unit} belongs to the server instance {theirs}, which accepted its start; \
                 this server is {} (restarted without --state since): not recorded",
                self.instance
            );
            self.log.line(&format!("{unit}: refused {op} from instance {theirs} (not this one)"));
            return Response::error(
                &self.instance,
                ErrorBody::new(ErrorKind::OtherInstance, message),
            );
        }
        let guard = match &request {
            // Its own unit too: a script that died with it started may be
            // run again at once.
            Request::Start { unit, .. } => {
                Guard::Owners { unit: Some(unit), fresh: START_CHECKS_EVERY }
            }
            Request::Status { unit } => Guard::Owners { unit: Some(unit), fresh: Duration::ZERO },
            Request::List => Guard::Owners { unit: None, fresh: Duration::ZERO },
            _ => Guard::None,
        };
        // A request takes the lock once if it finds no owner due for a
        // check (no running owned unit among those it reads, or, for a
        // `start`, none not looked at in the last 5 ms); else the owners
        // are checked in `/proc` outside the lock, the abandoned units
        // failed, and the request applied then.
        match self.commit(&request, guard) {
            Ok(response) => response,
            Err(owners) => {
                self.fail_abandoned(owners);
                self.commit(&request, Guard::None).expect("an unguarded request is applied")
            }
        }
    }

    /// Checks every running unit's owner: abandoned units fail within a
    /// second even if nobody asks.
    fn sweep(&self) {
        let owners = {
            let mut core = self.core.lock().expect("no thread panics holding the state lock");
            let now = self.log.clock.now();
            core.state.owners(None, now, Duration::ZERO)
        };
        self.fail_abandoned(owners);
    }

    /// Fails as abandoned each of these units whose owner is gone.
    /// README.md, "Abandoned units".
    fn fail_abandoned(&self, owners: Vec<(String, Owners)>) {
        for (unit, owners) in owners {
            if owner::any_exists(&owners) {
                continue;
            }
            let pid = owners.owner.pid;
            let who = match &owners.name {
                Some(name) => format!("pid {pid} ({name})"),
                None => format!("pid {pid}"),
            };
            let reason = format!(
                "{ABANDONED}the script that started it ({who}) exited without completing it"
            );
            let request =
                Request::Fail { unit: unit.clone(), reason: Some(reason), instance: None };
            // Only if it still runs for the same owner: it may have
            // finished, or started again, since we looked.
            let _ = self.commit(&request, Guard::Owned(&unit, &owners));
        }
    }

    /// [`Server::apply`]'s locked part, if `guard` lets it: else nothing
    /// is applied, and the owners found due for a check are returned (none
    /// if the unit to fail no longer runs for its owner).
    fn commit(&self, request: &Request, guard: Guard) -> Result<Response, Vec<(String, Owners)>> {
        let (body, event, now, changed) = {
            let mut core = self.core.lock().expect("no thread panics holding the state lock");
            let Core { state, journal } = &mut *core;
            let now = self.log.clock.now();
            match guard {
                Guard::None => {}
                Guard::Owners { unit, fresh } => {
                    let owners = state.owners(unit, now, fresh);
                    if !owners.is_empty() {
                        return Err(owners);
                    }
                }
                Guard::Owned(unit, owner) if !state.is_owned_by(unit, owner) => {
                    return Err(Vec::new());
                }
                Guard::Owned(..) => {}
            }
            let Outcome { body, log, changed } = dispatch::apply(state, request, now);
            match journal {
                Some(journal) if changed => match journal.append(request, now) {
                    Ok(()) => {
                        // The change is in the file; a compaction replaces
                        // the file by one that holds it too, or fails and
                        // leaves it be (README.md, "Durability").
                        if journal.compaction_due() {
                            let event = match journal.compact(&state.snapshot(), now) {
                                Ok((before, after)) => {
                                    format!("state file compacted: {before} bytes -> {after} bytes")
                                }
                                Err(err) => format!(
                                    "state file not compacted ({err}); it is kept as it was"
                                ),
                            };
                            self.log.line(&event);
                        }
                        (body, log, now, true)
                    }
                    Err(err) => {
                        let reread = journal.reread().and_then(|r| match r {
                            Some(r) => replay(&r, journal.path()),
                            None => Ok(State::new()),
                        });
                        let message = match reread {
                            Ok(recorded) => {
                                *state = recorded;
                                format!("{err}; the change was refused and nothing changed")
                            }
                            Err(again) => format!(
                                "{err}; the change is applied but would be lost on restart \
                                 (the state file cannot be read back: {again})"
                            ),
                        };
                        let error = ErrorBody::new(ErrorKind::Journal, message.clone());
                        (Body::Error { error }, Some(message), now, false)
                    }
                },
                _ => (body, log, now, changed),
            }
        };
        if changed {
            // `up`, which hosts this server, reacts to its units' changes.
            bell::ring();
        }
        if let Some(event) = event {
            self.log.line_at(now, &event);
        }
        Ok(Response::new(&self.instance, body))
    }

    fn error(&self, kind: ErrorKind, message: impl Into<String>) -> Vec<u8> {
        Response::error(&self.instance, ErrorBody::new(kind, message)).to_line()
    }
}

/// What [`Server::commit`] makes sure of under the lock before it applies
/// a request.
enum Guard<'a> {
    None,
    /// That no running unit's owner among `unit` and its
    /// dependencies, or among all units, is due for a check (not looked at
    /// in `fresh`).
    Owners {
        unit: Option<&'a str>,
        fresh: Duration,
    },
    /// That this unit still runs for this owner: failing it as abandoned.
    Owned(&'a str, &'a Owners),
}

/// A random id for this server's state, so clients notice a restart:
/// 64 bits from the kernel's generator, mixed with the time and our pid,
/// which still tell restarts apart should `/dev/urandom` be unreadable.
/// Not std's `RandomState`, whose SipHash and seeding code only this used
/// (BENCHMARKS.md, "Footprint").
fn new_instance_id() -> String {
    let mut random = [0; 8];
    let _ = fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut random));
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let id =
        u64::from_le_bytes(random) ^ (since_epoch as u64) ^ (u64::from(std::process::id()) << 32);
    format!("{id:016x}")
}
