//! The server: socket hygiene, the accept loop, one thread per connection,
//! and the one `Mutex<State>` they share.
//!
//! Each request is lock → apply → unlock → write: no I/O happens under the
//! lock except reading the clock, so a slow or stuck client never holds up
//! the others. Connections, line lengths and idle time are all bounded.

use std::fmt;
use std::fs;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::io::{self, BufReader, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{SigSet, Signal};
use nix::sys::socket::{Shutdown, shutdown};
use nix::sys::stat::{Mode, umask};
use nix::unistd::{ForkResult, Gid, chown, fork, setsid};

use crate::duration::human;
use crate::journal::{self, Journal};
use crate::peer::{self, Policy};
use crate::protocol::{
    self, Body, ErrorBody, ErrorKind, LineError, PROTOCOL_VERSION, Request, Response, UnitView,
    secs,
};
use crate::state::{self, Start, State};

/// Most connections served at once; past it a client is told "busy".
pub const MAX_CONNECTIONS: usize = 2048;
/// A connection that sends nothing for this long is closed. Waiting clients
/// send a request every poll interval, and reconnect if it was longer.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// A client that does not read its responses for this long is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connection threads only parse a line and touch the state: a small stack.
const THREAD_STACK: usize = 128 * 1024;

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
    DirOwner { path: PathBuf, owner: u32, me: u32 },
    NotASocket { path: PathBuf, what: &'static str },
    AlreadyRunning { path: PathBuf },
    Socket { path: PathBuf, err: io::Error },
    Pidfile { path: PathBuf, err: io::Error },
    LogFile { path: PathBuf, err: io::Error },
    Journal(journal::Error),
    Detach(nix::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Group(msg) => write!(f, "--group: {msg}"),
            Error::Dir { path, err } => {
                write!(f, "cannot use socket directory {}: {err}", path.display())
            }
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
            Error::Socket { path, err } => write!(f, "cannot listen on {}: {err}", path.display()),
            Error::Pidfile { path, err } => {
                write!(f, "cannot write pidfile {}: {err}", path.display())
            }
            Error::LogFile { path, err } => {
                write!(f, "cannot open log file {}: {err}", path.display())
            }
            Error::Journal(err) => err.fmt(f),
            Error::Detach(err) => write!(f, "cannot detach: {err}"),
        }
    }
}

/// Runs `unitsync serve` until SIGTERM or SIGINT. With `--detach` the caller
/// returns as soon as the socket is listening and the child serves.
pub fn serve(config: &Config) -> Result<(), Error> {
    let log_file = match &config.log {
        Some(path) => Some(
            fs::File::options()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|err| Error::LogFile { path: path.clone(), err })?,
        ),
        None => None,
    };
    let prepared = prepare(config)?;

    if config.detach {
        // SAFETY: no thread has been started yet, so the child is a full copy.
        match unsafe { fork() }.map_err(Error::Detach)? {
            ForkResult::Parent { child } => {
                write_pidfile(config, child.as_raw())?;
                // The socket was listening before the fork, so clients can
                // connect as soon as we return.
                println!("{child}");
                return Ok(());
            }
            ForkResult::Child => {
                setsid().map_err(Error::Detach)?;
                // Keep none of the caller's streams open, or a caller that
                // reads them (`pid=$(unitsync serve --detach)`) never returns.
                // Logs go to --log, if given.
                let null = fs::File::options().read(true).write(true).open("/dev/null");
                if let Ok(null) = null {
                    let _ = nix::unistd::dup2_stdin(&null);
                    let _ = nix::unistd::dup2_stdout(&null);
                    let _ = nix::unistd::dup2_stderr(log_file.as_ref().unwrap_or(&null));
                }
            }
        }
    } else {
        write_pidfile(config, std::process::id() as i32)?;
        if let Some(file) = &log_file {
            let _ = nix::unistd::dup2_stderr(file);
        }
    }

    // Block the stop signals before any thread exists, so that every thread
    // inherits the mask and only this one receives them.
    let signals = SigSet::from_iter([Signal::SIGTERM, Signal::SIGINT]);
    signals.thread_block().map_err(Error::Detach)?;
    let running = prepared.launch()?;
    let signal = signals.wait().unwrap_or(Signal::SIGTERM);
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
                Journal::open(path, &fresh, config.fsync).map_err(Error::Journal)?;
            let count = recovered.entries.len();
            let mut state = State::new();
            let mut last = Duration::ZERO;
            for (i, (at, request)) in recovered.entries.iter().enumerate() {
                if let Outcome { body: Body::Error { error }, .. } = apply(&mut state, request, *at)
                {
                    let detail = format!("change {} no longer applies: {}", i + 1, error.message);
                    return Err(Error::Journal(journal::Error::Corrupt {
                        path: path.clone(),
                        line: i + 2,
                        detail,
                    }));
                }
                last = *at;
            }
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
    let listener = bind(&config.socket, &policy)?;
    let server = Arc::new(Server {
        core: Mutex::new(core),
        instance,
        policy,
        log: Log { quiet: config.quiet, clock },
        connections: AtomicUsize::new(0),
        max_connections: connection_cap(),
    });
    Ok(Prepared { listener, server, socket: config.socket.clone(), note })
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
    /// Starts accepting. Threads inherit the caller's signal mask.
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
            thread::Builder::new()
                .name("accept".into())
                .stack_size(THREAD_STACK)
                .spawn(move || accept_loop(&server, &listener, &stop))
                .map_err(|err| Error::Socket { path: socket.clone(), err })?
        };
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
        remove_if_ours(&self.socket);
    }
}

fn write_pidfile(config: &Config, pid: i32) -> Result<(), Error> {
    match &config.pidfile {
        Some(path) => fs::write(path, format!("{pid}\n"))
            .map_err(|err| Error::Pidfile { path: path.clone(), err }),
        None => Ok(()),
    }
}

/// Prepares the socket's directory, clears a stale socket, and listens.
fn bind(path: &Path, policy: &Policy) -> Result<UnixListener, Error> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dir_err = |err| Error::Dir { path: dir.to_owned(), err };
    if !dir.exists() {
        // With --group, members must be able to reach the socket inside.
        let mode = if policy.group.is_some() { 0o710 } else { 0o700 };
        fs::DirBuilder::new().recursive(true).mode(mode).create(dir).map_err(dir_err)?;
        if let Some(gid) = policy.group {
            chown(dir, None, Some(Gid::from_raw(gid))).map_err(|e| dir_err(e.into()))?;
            fs::set_permissions(dir, fs::Permissions::from_mode(mode)).map_err(dir_err)?;
        }
    }
    let meta = fs::symlink_metadata(dir).map_err(dir_err)?;
    if !meta.is_dir() {
        return Err(dir_err(io::Error::other("not a directory")));
    }
    if meta.uid() != policy.owner && meta.uid() != 0 {
        return Err(Error::DirOwner { path: dir.to_owned(), owner: meta.uid(), me: policy.owner });
    }

    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if UnixStream::connect(path).is_ok() {
                return Err(Error::AlreadyRunning { path: path.to_owned() });
            }
            // Nothing listens: a server died without cleaning up.
            fs::remove_file(path).map_err(|err| Error::Socket { path: path.to_owned(), err })?;
        }
        Ok(meta) => {
            let what = if meta.is_symlink() {
                "a symbolic link"
            } else if meta.is_dir() {
                "a directory"
            } else {
                "a regular file or device"
            };
            return Err(Error::NotASocket { path: path.to_owned(), what });
        }
        Err(_) => {}
    }

    let mode = if policy.group.is_some() { 0o660 } else { 0o600 };
    // Create the socket with its final mode, so it is never open to others.
    let old = umask(Mode::from_bits_truncate(0o777 & !mode));
    let bound = UnixListener::bind(path);
    umask(old);
    let socket_err = |err| Error::Socket { path: path.to_owned(), err };
    let listener = bound.map_err(socket_err)?;
    if let Some(gid) = policy.group {
        chown(path, None, Some(Gid::from_raw(gid))).map_err(|e| socket_err(e.into()))?;
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(socket_err)?;
    Ok(listener)
}

/// Removes the socket file at shutdown, unless another server replaced it.
fn remove_if_ours(path: &Path) {
    if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
        if UnixStream::connect(path).is_ok() {
            return;
        }
        let _ = fs::remove_file(path);
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
    fn now(&self) -> Duration {
        self.offset + self.base.elapsed()
    }
}

/// Server log lines, on stderr, stamped with the server's time.
struct Log {
    quiet: bool,
    clock: Clock,
}

impl Log {
    fn line(&self, text: &str) {
        if !self.quiet {
            eprintln!("+{:.3}s {text}", self.clock.now().as_secs_f64());
        }
    }
}

/// What the one lock guards: the state, and the journal that must record
/// its changes in the order they happen.
struct Core {
    state: State,
    journal: Option<Journal>,
}

struct Server {
    core: Mutex<Core>,
    instance: String,
    policy: Policy,
    log: Log,
    connections: AtomicUsize,
    /// [`MAX_CONNECTIONS`], or fewer if the descriptor limit is lower.
    max_connections: usize,
}

impl Server {
    /// Applies one request: lock, apply, journal, unlock, then log.
    ///
    /// The journal write is the one I/O under the lock, on purpose: the
    /// file must hold the changes in the order they were applied, and the
    /// change must be recorded before it is acknowledged. It is a single
    /// `write` to the page cache unless `--fsync` was asked for.
    fn apply(&self, request: Request) -> Response {
        let (body, event) = {
            let mut core = self.core.lock().expect("no thread panics holding the state lock");
            let Core { state, journal } = &mut *core;
            let now = self.log.clock.now();
            let Outcome { body, log, changed } = apply(state, &request, now);
            let recorded = match journal {
                Some(journal) if changed => journal.append(&request, now).err(),
                _ => None,
            };
            match recorded {
                None => (body, log),
                Some(err) => {
                    // The change is applied in memory but not on disk: say so
                    // instead of acknowledging it as durable.
                    let message =
                        format!("{err}; the change is applied but would be lost on restart");
                    let error = ErrorBody::new(ErrorKind::Journal, message.clone());
                    (Body::Error { error }, Some(message))
                }
            }
        };
        if let Some(event) = event {
            self.log.line(&event);
        }
        Response::new(&self.instance, body)
    }

    fn error(&self, kind: ErrorKind, message: impl Into<String>) -> Vec<u8> {
        Response::error(&self.instance, ErrorBody::new(kind, message)).to_line()
    }
}

/// How many connections to serve at once. Raises the soft descriptor
/// limit towards the hard one first (a common soft default of 1,024 would
/// otherwise run out before the cap), and keeps a margin for the socket,
/// the journal and the standard streams, so that accept never fails for
/// want of a descriptor and every refused client is told "busy".
fn connection_cap() -> usize {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    const MARGIN: u64 = 32;
    let wanted = MAX_CONNECTIONS as u64 + MARGIN;
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else { return MAX_CONNECTIONS };
    let soft =
        if soft < wanted && setrlimit(Resource::RLIMIT_NOFILE, wanted.min(hard), hard).is_ok() {
            wanted.min(hard)
        } else {
            soft
        };
    (soft.saturating_sub(MARGIN) as usize).clamp(1, MAX_CONNECTIONS)
}

/// A random id for this server's state, so clients notice a restart.
fn new_instance_id() -> String {
    // RandomState is seeded from the OS for each process.
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    hasher.write_u128(since_epoch.map_or(0, |d| d.as_nanos()));
    format!("{:016x}", hasher.finish())
}

/// What applying one request did: the answer, the log line, and whether
/// the state changed (so the request must be journaled), as the state
/// machine's transition said.
#[derive(Debug, PartialEq)]
struct Outcome {
    body: Body,
    log: Option<String>,
    changed: bool,
}

impl Outcome {
    fn change(body: Body, log: impl Into<Option<String>>) -> Outcome {
        Outcome { body, log: log.into(), changed: true }
    }

    fn same(body: Body, log: Option<String>) -> Outcome {
        Outcome { body, log, changed: false }
    }
}

/// The pure part of a request: what to answer and what to log. Runs under
/// the lock; builds only what the answer needs. Replaying a journal runs
/// the same function, so a recovered state is the state that was lost.
fn apply(state: &mut State, request: &Request, now: Duration) -> Outcome {
    let refused = |op: &str, unit: &str, e: state::Error| {
        // The name may be hostile: quoted, so it cannot forge log lines.
        let log = format!("refused {op} {}: {e}", state::quote(unit));
        Outcome::same(Body::Error { error: e.into() }, Some(log))
    };
    match request {
        Request::Ping => Outcome::same(
            Body::Pong { version: env!("CARGO_PKG_VERSION").into(), protocol: PROTOCOL_VERSION },
            None,
        ),
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
        Request::Start { unit } => match state.start(unit, now) {
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
            Ok(Start::Blocked { unmet, began_waiting }) => {
                let unmet = unmet.into_iter().map(Into::into).collect();
                let body = Body::Blocked { now: secs(now), unmet };
                Outcome { body, log: None, changed: began_waiting }
            }
            Ok(Start::DependencyFailed { dep, reason }) => {
                let log = format!("{unit} failed: dependency {dep} failed");
                Outcome::change(Body::DependencyFailed { dependency: dep, reason }, log)
            }
            Err(e) => refused("start", unit, e),
        },
        Request::Complete { unit } => match state.complete(unit, now) {
            Ok(f) => {
                let ran = f.ran.map(|d| format!(" (ran {})", human(d))).unwrap_or_default();
                let body = Body::Completed { ran: f.ran.map(secs) };
                Outcome::change(body, format!("{unit} completed{ran}"))
            }
            Err(e) => refused("complete", unit, e),
        },
        Request::Fail { unit, reason } => match state.fail(unit, reason.as_deref(), now) {
            Ok(f) => {
                let ran = f.ran.map(|d| format!(" (ran {})", human(d))).unwrap_or_default();
                let why = reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default();
                let body = Body::Failed { ran: f.ran.map(secs) };
                Outcome::change(body, format!("{unit} failed{ran}{why}"))
            }
            Err(e) => refused("fail", unit, e),
        },
        Request::Status { unit } => match state.status(unit) {
            Ok(info) => {
                Outcome::same(Body::Status { now: secs(now), unit: UnitView::from(info) }, None)
            }
            Err(e) => Outcome::same(Body::Error { error: e.into() }, None),
        },
        Request::List => {
            let units = state.list().into_iter().map(UnitView::from).collect();
            Outcome::same(Body::List { now: secs(now), units }, None)
        }
    }
}

/// Accepts connections until `stop` is set (and the listener shut down).
fn accept_loop(server: &Arc<Server>, listener: &UnixListener, stop: &AtomicBool) {
    let mut serial: u64 = 0;
    loop {
        let accepted = listener.accept();
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok((stream, _)) = accepted else {
            // Out of descriptors or memory: back off instead of spinning;
            // the connection waits in the backlog.
            thread::sleep(Duration::from_millis(10));
            continue;
        };
        serial += 1;
        if server.connections.fetch_add(1, Ordering::SeqCst) >= server.max_connections {
            server.connections.fetch_sub(1, Ordering::SeqCst);
            refuse_busy(server, stream);
            continue;
        }
        let conn_server = server.clone();
        let spawned = thread::Builder::new()
            .name(format!("conn-{serial}"))
            .stack_size(THREAD_STACK)
            .spawn(move || {
                serve_connection(&conn_server, stream);
                conn_server.connections.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            // The stream was moved into the closure and dropped with it.
            server.connections.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

fn refuse_busy(server: &Server, stream: UnixStream) {
    let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
    let message = format!(
        "server busy: {} connections are open; retry later or close idle clients",
        server.max_connections
    );
    let _ = (&stream).write_all(&server.error(ErrorKind::Busy, message));
}

fn serve_connection(server: &Server, stream: UnixStream) {
    match peer::credentials(&stream) {
        Ok(peer) if server.policy.allows(peer) => {}
        Ok(peer) => {
            let uid = peer.uid;
            let owner = match server.policy.owner {
                0 => "root".to_owned(),
                owner => format!("uid {owner} and root"),
            };
            let group = server.policy.group.map(|g| format!(" and group {g}")).unwrap_or_default();
            let message = format!(
                "permission denied: uid {uid} may not use this server (it serves {owner}{group})"
            );
            let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
            let _ = (&stream).write_all(&server.error(ErrorKind::Forbidden, message));
            return;
        }
        Err(_) => return,
    }
    if stream.set_read_timeout(Some(IDLE_TIMEOUT)).is_err()
        || stream.set_write_timeout(Some(WRITE_TIMEOUT)).is_err()
    {
        return;
    }
    let mut reader = BufReader::new(&stream);
    let (mut line, mut out) = (Vec::new(), Vec::new());
    loop {
        match protocol::read_line(&mut reader, &mut line) {
            Ok(true) => {}
            Ok(false) | Err(LineError::Io(_)) => return,
            Err(LineError::TooLong) => {
                let message = format!(
                    "request line longer than {} bytes; closing the connection",
                    protocol::MAX_LINE
                );
                let _ = (&stream).write_all(&server.error(ErrorKind::LineTooLong, message));
                return;
            }
        }
        let response = match protocol::parse_request(&line) {
            Ok(request) => server.apply(request),
            Err(error) => Response::error(&server.instance, error),
        };
        response.write_line(&mut out);
        if (&stream).write_all(&out).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            ["start", unit] => Request::Start { unit: unit.to_string() },
            ["complete", unit] => Request::Complete { unit: unit.to_string() },
            ["fail", unit] => Request::Fail { unit: unit.to_string(), reason: None },
            ["fail", unit, reason @ ..] => {
                Request::Fail { unit: unit.to_string(), reason: Some(reason.join(" ")) }
            }
            ["status", unit] => Request::Status { unit: unit.to_string() },
            ["list"] => Request::List,
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
        let mut failures = Vec::new();
        let mut transcript = String::new();
        for (n, line) in script.lines().map(str::trim).filter(|l| !l.is_empty()).enumerate() {
            let (command, expected) =
                line.rsplit_once(" => ").expect("each line is `request => outcome`");
            let (command, expected) = (command.trim(), expected.trim());
            let now = Duration::from_secs(n as u64 + 1);
            let got = render(&apply(&mut state, &request(command), now));
            transcript += &format!("{command} => {got}\n");
            if got != expected {
                failures
                    .push(format!("  {command}\n    expected: {expected}\n    got:      {got}"));
            }
        }
        assert!(failures.is_empty(), "\n{}\nfull transcript:\n{transcript}", failures.join("\n"));
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
