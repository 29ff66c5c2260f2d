//! The client: connect, one request line out, one response line in, and the
//! deadline-driven loops that wait for a unit to be startable (`start`) or
//! for units to complete (`wait`).
//!
//! One connection is kept for a whole wait. If it drops after the client
//! has been served once (the server restarted), the loops keep retrying
//! until their deadline; if the server comes back with a different instance
//! id, the graph they waited on is gone and they stop with an error.

use std::fmt;
use std::fs;
use std::io::{self, BufReader, ErrorKind, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::duration::human;
use crate::peer;
use crate::protocol::{
    self, Body, DepView, ErrorBody, LineError, Owners, Request, Status, UnitView,
};
use crate::render;
use crate::signals;

/// How long to wait for one response before calling the server unreachable.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// How often to retry connecting while `--connect-timeout` allows.
const CONNECT_RETRY: Duration = Duration::from_millis(50);
/// Progress lines while waiting come at most this often.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);
/// How often a waiting loop with a `cancel` checks it while sleeping.
const CANCEL_CHECK: Duration = Duration::from_millis(50);
/// Sleeping longer than this risks the server's idle timeout: reconnect instead.
const KEEP_CONNECTION_FOR: Duration = Duration::from_secs(30);
/// The shortest sleep between two checks of a waiting loop (see [`nap`]).
const FIRST_NAP: Duration = Duration::from_millis(1);

#[derive(Debug)]
pub enum Error {
    /// No server to talk to: exit 3.
    Unreachable { path: PathBuf, reason: String },
    /// The server refused the request: exit 1.
    Refused(ErrorBody),
    /// The server answered something we do not understand: exit 1.
    Protocol { path: PathBuf, detail: String },
    /// The server restarted with a fresh state while we waited: exit 1.
    InstanceChanged { path: PathBuf, unit: String },
    /// The deadline passed (or `wait --once` found a unit not done yet): exit 4.
    TimedOut(String),
    /// A dependency failed: exit 5.
    DependencyFailed(String),
    /// A signal stopped the wait: exit 128 + the signal's number.
    Interrupted { subject: String, signal: i32 },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Unreachable { path, reason } => {
                write!(f, "cannot reach the server at {}: {reason}", path.display())
            }
            Error::Refused(e) => f.write_str(&e.message),
            Error::Protocol { path, detail } => {
                write!(f, "unexpected answer from {}: {detail}", path.display())
            }
            Error::InstanceChanged { path, unit } => write!(
                f,
                "{unit}: the server at {} restarted with a fresh state while we waited, \
                 so the dependencies declared for {unit} are gone; declare them again \
                 (or use 'unitsync run', which does) and start again",
                path.display()
            ),
            Error::TimedOut(message) | Error::DependencyFailed(message) => f.write_str(message),
            Error::Interrupted { subject, signal } => {
                write!(f, "{subject}: stopped waiting on {}", signals::name(*signal))
            }
        }
    }
}

impl std::error::Error for Error {}

pub struct Client {
    path: PathBuf,
    connect_timeout: Duration,
    conn: Option<BufReader<UnixStream>>,
    /// The instance id of the first answer; later answers must match.
    instance: Option<String>,
    /// A request sent on a connection that was lost before its answer:
    /// the server may or may not have applied it.
    unsure: Option<Request>,
    line: Vec<u8>,
    /// See [`Client::trusting_group`].
    trust_group: bool,
}

impl Client {
    pub fn new(path: PathBuf, connect_timeout: Duration) -> Client {
        Client {
            path,
            connect_timeout,
            conn: None,
            instance: None,
            unsure: None,
            line: Vec::new(),
            trust_group: false,
        }
    }

    /// Whether to talk to a socket another uid made for a group we are in
    /// (`serve --group`); by default only our own and root's are trusted.
    pub fn trusting_group(mut self, trust: bool) -> Client {
        self.trust_group = trust;
        self
    }

    /// Whether a server answered this client at least once.
    pub fn was_served(&self) -> bool {
        self.instance.is_some()
    }

    /// Sends one request and returns the body of a successful answer.
    ///
    /// A connection lost mid-request is retried for as long as
    /// `--connect-timeout` allows (a server restarting on its `--state`
    /// file); the waiting loops retry it too. The lost attempt may have
    /// been applied before the server died, so when the retry of that same
    /// request hears "already started" (for `start`) or "already completed"
    /// (for `complete`), the change asked for is in place: that is success.
    pub fn call(&mut self, request: &Request) -> Result<Body, Error> {
        let deadline = Instant::now() + self.connect_timeout;
        loop {
            let result = self.call_once(request, deadline);
            let lost = self.unsure.as_ref() == Some(request);
            match result {
                Err(Error::Unreachable { .. })
                    if lost && Instant::now() + CONNECT_RETRY <= deadline =>
                {
                    sleep(CONNECT_RETRY);
                }
                result => return result,
            }
        }
    }

    fn call_once(&mut self, request: &Request, deadline: Instant) -> Result<Body, Error> {
        let was_unsure = self.unsure.as_ref() == Some(request);
        if self.conn.is_none() {
            self.conn = Some(BufReader::new(self.connect(deadline)?));
            if self.instance.is_some() && !matches!(request, Request::Ping) {
                // A new connection may reach a restarted server: make sure it
                // is the same state before asking it to change anything.
                self.exchange(&Request::Ping, request)?;
            }
        }
        let result = self.exchange(request, request);
        self.unsure = match result {
            Err(Error::Unreachable { .. }) => Some(request.clone()),
            _ => None,
        };
        match result {
            Err(Error::Refused(e))
                if was_unsure
                    && matches!(
                        (request, e.kind),
                        (Request::Start { .. }, protocol::ErrorKind::AlreadyStarted)
                            | (Request::Complete { .. }, protocol::ErrorKind::AlreadyCompleted)
                    ) =>
            {
                Ok(Body::Retried)
            }
            result => result,
        }
    }

    /// One line out, one line in. `about` names the unit in errors.
    fn exchange(&mut self, request: &Request, about: &Request) -> Result<Body, Error> {
        let conn = self.conn.as_mut().expect("callers connect first");
        // A server that refuses a connection (busy, forbidden) sends its
        // reason and closes, maybe before our request is written: read the
        // reason even when the write failed.
        let written = conn.get_mut().write_all(&request.to_line());
        let exchanged = match protocol::read_line_capped(conn, &mut self.line, protocol::MAX_ANSWER)
        {
            Ok(true) => Ok(()),
            _ if written.is_err() => Err(describe_io(&written.expect_err("checked just above"))),
            Ok(false) => Err("the server closed the connection".to_owned()),
            Err(LineError::TooLong) => Err("answer longer than 1 GiB".to_owned()),
            Err(LineError::Io(e)) => Err(describe_io(&e)),
        };
        if let Err(reason) = exchanged {
            self.conn = None;
            return Err(Error::Unreachable { path: self.path.clone(), reason });
        }
        let response = protocol::parse_response(&self.line).map_err(|e| {
            self.conn = None;
            Error::Protocol { path: self.path.clone(), detail: e.to_string() }
        })?;
        if let Body::Error { error } = &response.body
            && matches!(error.kind, protocol::ErrorKind::Busy | protocol::ErrorKind::Forbidden)
        {
            // The server closes such a connection: it never served us, so
            // its instance id is not one to hold it to.
            self.conn = None;
            return Err(Error::Unreachable {
                path: self.path.clone(),
                reason: error.message.clone(),
            });
        }
        match &self.instance {
            Some(known) if *known != response.instance => {
                self.conn = None;
                let unit = request_unit(about);
                return Err(Error::InstanceChanged { path: self.path.clone(), unit });
            }
            Some(_) => {}
            None => self.instance = Some(response.instance.clone()),
        }
        match response.body {
            Body::Error { error } => Err(Error::Refused(error)),
            body => Ok(body),
        }
    }

    /// The instance id of the server that answered so far, once one has.
    pub fn instance(&self) -> Option<&str> {
        self.instance.as_deref()
    }

    /// Forgets the instance id, accepting a restarted server from now on.
    pub fn accept_new_instance(&mut self) {
        self.instance = None;
    }

    /// Closes the connection; the next call opens a new one.
    fn disconnect(&mut self) {
        self.conn = None;
    }

    fn connect(&self, deadline: Instant) -> Result<UnixStream, Error> {
        loop {
            let (retryable, reason) = match self.try_connect() {
                Ok(stream) => return Ok(stream),
                Err(failure) => failure,
            };
            if !retryable || Instant::now() + CONNECT_RETRY > deadline {
                return Err(Error::Unreachable { path: self.path.clone(), reason });
            }
            sleep(CONNECT_RETRY);
        }
    }

    /// One attempt; an error says whether retrying could help, and why.
    fn try_connect(&self) -> Result<UnixStream, (bool, String)> {
        let meta = fs::metadata(&self.path).map_err(|e| match e.kind() {
            ErrorKind::NotFound => (
                true,
                "no such socket; is the server running? start it with 'unitsync serve'".to_owned(),
            ),
            _ => (false, describe_io(&e)),
        })?;
        if !meta.file_type().is_socket() {
            return Err((false, "not a socket".to_owned()));
        }
        // Ours, root's, or one that a `serve --group G` of another user made
        // for its group: members of G trust each other's server as that
        // server trusts them.
        let me = peer::current_uid();
        let group_rw = meta.mode() & 0o060 == 0o060;
        let member = peer::in_group(meta.gid());
        if meta.uid() != me && meta.uid() != 0 && !(self.trust_group && group_rw && member) {
            let (owner, gid) = (meta.uid(), meta.gid());
            let why = match (group_rw, member) {
                _ if !self.trust_group => " (another uid's --group socket is never trusted \
                                          at the default path: put it elsewhere with --socket \
                                          or $UNITSYNC_SOCKET)"
                    .to_owned(),
                (true, _) => format!(", and you are not in its group {gid}"),
                (false, true) => format!(
                    ", and its mode {:o} does not let its group {gid} (yours) read and write it",
                    meta.mode() & 0o777
                ),
                (false, false) => String::new(),
            };
            return Err((
                false,
                format!(
                    "the socket belongs to uid {owner}, not to you (uid {me}) or root{why}; \
                     refusing to talk to a server someone else runs"
                ),
            ));
        }
        let stream = UnixStream::connect(&self.path).map_err(|e| {
            let retryable = matches!(e.kind(), ErrorKind::ConnectionRefused | ErrorKind::NotFound);
            (retryable, describe_io(&e))
        })?;
        stream.set_read_timeout(Some(ANSWER_TIMEOUT)).map_err(|e| (false, describe_io(&e)))?;
        stream.set_write_timeout(Some(ANSWER_TIMEOUT)).map_err(|e| (false, describe_io(&e)))?;
        Ok(stream)
    }

    /// The error for an answer of the wrong kind.
    pub fn unexpected(&self) -> Error {
        Error::Protocol {
            path: self.path.clone(),
            detail: "an answer of the wrong kind".to_owned(),
        }
    }
}

fn request_unit(request: &Request) -> String {
    match request {
        Request::Want { unit, .. }
        | Request::Start { unit, .. }
        | Request::Ready { unit, .. }
        | Request::Complete { unit, .. }
        | Request::Fail { unit, .. }
        | Request::Restart { unit, .. }
        | Request::Status { unit }
        | Request::StopWaiting { unit }
        | Request::Near { unit } => unit.clone(),
        Request::Ping | Request::List => "request".to_owned(),
    }
}

fn describe_io(e: &io::Error) -> String {
    match e.kind() {
        ErrorKind::ConnectionRefused => {
            "connection refused; the socket is stale (its server is gone): start 'unitsync serve'"
                .to_owned()
        }
        ErrorKind::PermissionDenied => {
            "permission denied; run as the server's user or ask for --group access".to_owned()
        }
        ErrorKind::WouldBlock | ErrorKind::TimedOut => {
            format!("no answer within {}", human(ANSWER_TIMEOUT))
        }
        _ => e.to_string(),
    }
}

/// Human messages on stderr, prefixed `unitsync: `: progress unless `-q`,
/// errors and warnings always.
#[derive(Clone, Copy)]
pub struct Say {
    pub quiet: bool,
}

impl Say {
    /// Progress: what happens, silenced by `-q`.
    pub fn line(&self, text: &str) {
        if !self.quiet {
            Say::error(text);
        }
    }

    /// Something went wrong, or is degraded: `-q` never hides it. One
    /// `write` per line, so lines of several writers never interleave; a
    /// failed write (a reader that went away) is dropped, never a panic.
    pub fn error(text: &str) {
        let line = format!("unitsync: {text}\n");
        let _ = io::stderr().lock().write_all(line.as_bytes());
    }
}

/// How long to wait and how often to check.
#[derive(Clone, Copy, Debug)]
pub struct Patience {
    /// `Duration::ZERO` means no deadline.
    pub timeout: Duration,
    pub poll: Duration,
    /// Set to a signal number to stop waiting (`run` on SIGTERM).
    pub cancel: Option<&'static AtomicI32>,
}

/// What one check of a waiting loop found.
enum Check<T> {
    Done(T),
    /// Not yet. The text says why, for progress lines and the timeout report.
    Waiting(String),
}

/// One check of a waiting loop, told whether it is the last. A `dyn`, so
/// that the loop has one copy for every caller (BENCHMARKS.md, "Footprint").
type CheckFn<'a, T> = dyn FnMut(&mut Client, bool) -> Result<Check<T>, Error> + 'a;

/// How long a waiting loop sleeps before its next check, having waited
/// `waited` so far (README.md, "Waiting"): 1/80 of the time waited, plus
/// 1/40 of what it waited beyond its first second, between 1 ms and `poll`.
///
/// Why this shape: readiness usually comes early in a wait, and a wait
/// that began a moment ago should look again within a millisecond, so a
/// chain of scripts hands off in milliseconds; readiness that comes 100 to
/// 600 ms into a wait is seen within 2 to 8 ms (4 ms at 350 ms). A long
/// wait must cost what a fixed `poll` costs: by 2 s the sleep is 50 ms
/// (at most 20 requests a second at the default `--poll`), and it never
/// passes `poll`, which keeps meaning the longest sleep and is what the
/// client announces to the server for its abandoned-wait rule.
pub fn nap(waited: Duration, poll: Duration) -> Duration {
    let beyond = waited.saturating_sub(Duration::from_secs(1));
    (waited / 80 + beyond / 40).max(FIRST_NAP).min(poll)
}

/// The one waiting loop: checks at once, then after a sleep that grows with
/// the time waited ([`nap`]), never sleeping past the deadline. A dropped connection after the first answer is a
/// reason to retry, not to give up. `check` learns when it is the last
/// attempt, so it can spend more on explaining why it is still waiting.
fn wait_until<T>(
    client: &mut Client,
    patience: Patience,
    say: Say,
    subject: &str,
    check: &mut CheckFn<'_, T>,
) -> Result<(T, Duration), Error> {
    let began = Instant::now();
    let deadline = (!patience.timeout.is_zero()).then(|| began + patience.timeout);
    let mut last_said: Option<Instant> = None;
    loop {
        let last = deadline.is_some_and(|d| Instant::now() >= d);
        let why = match check(client, last) {
            Ok(Check::Done(value)) => return Ok((value, began.elapsed())),
            Ok(Check::Waiting(why)) => why,
            Err(Error::Unreachable { reason, .. }) if client.was_served() => {
                format!("the server, which went away ({reason})")
            }
            Err(e) => return Err(e),
        };
        let now = Instant::now();
        match last_said {
            None => say.line(&format!("{subject}: waiting for {why}")),
            Some(at) if now - at >= PROGRESS_EVERY => {
                say.line(&format!("{subject}: waiting {} for {why}", human(now - began)))
            }
            Some(_) => {}
        }
        if last_said.is_none_or(|at| now - at >= PROGRESS_EVERY) {
            last_said = Some(now);
        }
        let nap = match deadline {
            Some(_) if last => {
                return Err(Error::TimedOut(format!(
                    "{subject}: timed out after {} waiting for {why}",
                    human(patience.timeout)
                )));
            }
            Some(deadline) => {
                nap(now - began, patience.poll).min(deadline.saturating_duration_since(now))
            }
            None => nap(now - began, patience.poll),
        };
        if nap >= KEEP_CONNECTION_FOR {
            client.disconnect();
        }
        // In slices, so that a stop signal is heard at once even with a
        // long `--poll`.
        let woke = Instant::now() + nap;
        loop {
            if let Some(signal) =
                patience.cancel.map(|c| c.load(Ordering::SeqCst)).filter(|&s| s != 0)
            {
                return Err(Error::Interrupted { subject: subject.to_owned(), signal });
            }
            let left = woke.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            sleep(left.min(CANCEL_CHECK));
        }
    }
}

/// `start`: waits until `unit` may start and marks it started, by `owner`
/// (None: detached, nobody owns it).
pub fn start(
    client: &mut Client,
    unit: &str,
    owner: Option<Owners>,
    patience: Patience,
    say: Say,
) -> Result<(), Error> {
    // The poll interval tells the server how long our silence may last.
    let poll = Some(protocol::secs(patience.poll));
    let request = Request::start(unit, poll, owner);
    let mut blocked = false;
    // The server suggests a near name for an unregistered dependency when
    // the wait begins; kept for the last attempt's words.
    let mut near: Vec<(String, String)> = Vec::new();
    let mut check = |client: &mut Client, last: bool| match client.call(&request)? {
        Body::Started { .. } | Body::Retried => Ok(Check::Done(())),
        Body::Blocked { now, unmet, near: heard } => {
            // The first attempt and the last say why in full.
            let explain = last || !std::mem::replace(&mut blocked, true);
            for n in heard {
                if !near.iter().any(|(u, _)| *u == n.unit) {
                    near.push((n.unit, n.near));
                }
            }
            let why = unmet
                .iter()
                .map(|d| {
                    let note = match d.status == Status::NotRegistered && explain {
                        true => {
                            let n =
                                near.iter().find(|(u, _)| *u == d.unit).map(|(_, n)| n.as_str());
                            typo_note(n, last)
                        }
                        false => None,
                    };
                    render::waited_for(d, now, note.as_deref())
                })
                .collect::<Vec<_>>()
                .join(", ");
            Ok(Check::Waiting(why))
        }
        Body::DependencyFailed { dependency, reason } => {
            let why = reason.map(|r| format!(": {r}")).unwrap_or_default();
            Err(Error::DependencyFailed(format!(
                "{unit}: dependency {dependency} failed{why}; not starting {unit}"
            )))
        }
        _ => Err(client.unexpected()),
    };
    let result = wait_until(client, patience, say, unit, &mut check);
    if blocked && matches!(result, Err(Error::TimedOut(_) | Error::Interrupted { .. })) {
        // Say so, or the views would show us waiting still. Best effort:
        // the error that ended the wait is the one to report.
        let _ = client.call(&Request::StopWaiting { unit: unit.to_owned() });
    }
    let ((), waited) = result?;
    if blocked {
        say.line(&format!("{unit}: started after waiting {}", human(waited)));
    } else {
        say.line(&format!("{unit}: started"));
    }
    Ok(())
}

/// `wait`: waits until every unit is completed or ready, registering nothing.
pub fn wait(
    client: &mut Client,
    units: &[String],
    patience: Patience,
    say: Say,
) -> Result<(), Error> {
    let mut pending: Vec<&String> = units.iter().collect();
    let subject = format!("wait {}", units.join(" "));
    let mut first = true;
    let mut check = |client: &mut Client, last: bool| {
        let explain = last || std::mem::take(&mut first);
        let (still, why) = unsettled(client, &pending, explain, last)?;
        pending = still;
        Ok(match pending.is_empty() {
            true => Check::Done(()),
            false => Check::Waiting(why),
        })
    };
    let ((), waited) = wait_until(client, patience, say, &subject, &mut check)?;
    say.line(&format!("{} completed after {}", units.join(", "), human(waited)));
    Ok(())
}

/// `wait --once`: whether every unit is completed or ready now, in one
/// look and without waiting; one that is not yet is a wait that timed out.
pub fn check(client: &mut Client, units: &[String]) -> Result<(), Error> {
    let all: Vec<&String> = units.iter().collect();
    let (still, why) = unsettled(client, &all, true, false)?;
    match still.is_empty() {
        true => Ok(()),
        false => Err(Error::TimedOut(format!(
            "wait {}: not yet completed or ready: {why}",
            units.join(" ")
        ))),
    }
}

/// One look at `units` for `wait`: those neither completed nor ready yet,
/// and why, in words; a failed one ends the wait.
fn unsettled<'a>(
    client: &mut Client,
    units: &[&'a String],
    explain: bool,
    last: bool,
) -> Result<(Vec<&'a String>, String), Error> {
    let (mut still, mut why) = (Vec::new(), Vec::new());
    for unit in units {
        let Body::Status { now, unit: view } =
            client.call(&Request::Status { unit: (*unit).clone() })?
        else {
            return Err(client.unexpected());
        };
        match view.status {
            // A ready service satisfies its dependents, so its waiters.
            Status::Completed | Status::Ready => {}
            Status::Failed => {
                let reason = view.reason.map(|r| format!(": {r}")).unwrap_or_default();
                return Err(Error::DependencyFailed(format!("{} failed{reason}", view.unit)));
            }
            // A typo is worth a did-you-mean at once, not only at the end.
            Status::NotRegistered if explain => {
                let near = match client.call(&Request::Near { unit: view.unit.clone() }) {
                    Ok(Body::Near { near }) => near,
                    // A server from before `near`: no suggestion.
                    _ => None,
                };
                let note = typo_note(near.as_deref(), last);
                why.push(describe_unit(&view, now, note.as_deref()));
                still.push(*unit);
            }
            _ => {
                why.push(describe_unit(&view, now, None));
                still.push(*unit);
            }
        }
    }
    Ok((still, why.join(", ")))
}

/// `a (started 18s ago)`: a unit that `wait` still waits for.
fn describe_unit(view: &UnitView, now: f64, note: Option<&str>) -> String {
    let dep = DepView {
        unit: view.unit.clone(),
        status: view.status,
        soft: false,
        satisfied: false,
        since: view.since,
    };
    render::waited_for(&dep, now, note)
}

/// Someone may have mistyped a name: what to say of an unregistered one,
/// given the registered name the server found `near` it. That at once;
/// that nobody declared it only on the `last` attempt, since its script
/// may be slow to.
fn typo_note(near: Option<&str>, last: bool) -> Option<String> {
    match near {
        Some(near) => Some(format!("did you mean {near}?")),
        None => last.then(|| "no script declared or started it".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::nap;
    use std::time::Duration;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_sleep_grows_from_a_millisecond_to_the_poll_interval() {
        let poll = ms(50);
        // A wait that just began looks again within a millisecond.
        assert_eq!(nap(ms(0), poll), ms(1));
        assert_eq!(nap(ms(80), poll), ms(1));
        // Readiness 100 to 600 ms into a wait: sleeps of 1.25 to 7.5 ms.
        assert_eq!(nap(ms(100), poll), Duration::from_micros(1250));
        assert_eq!(nap(ms(350), poll), Duration::from_micros(4375));
        assert_eq!(nap(ms(600), poll), ms(7) + Duration::from_micros(500));
        assert_eq!(nap(ms(1000), poll), ms(12) + Duration::from_micros(500));
        // By 2 s the default poll: at most 20 requests a second from then on.
        assert_eq!(nap(ms(2000), poll), ms(50));
        assert_eq!(nap(Duration::from_secs(3600), poll), ms(50));
        // Never shorter as the wait goes on.
        let mut last = Duration::ZERO;
        for waited in (0..5000).step_by(7) {
            let now = nap(ms(waited), poll);
            assert!(now >= last && now <= poll, "{waited} ms: {now:?}");
            last = now;
        }
    }

    #[test]
    fn the_poll_interval_stays_the_longest_sleep() {
        // A short --poll caps the sleep from the start, below 1 ms too.
        assert_eq!(nap(ms(0), Duration::from_micros(200)), Duration::from_micros(200));
        assert_eq!(nap(ms(500), ms(1)), ms(1));
        // A long one is reached later, by the same growth.
        assert_eq!(nap(ms(2000), Duration::from_secs(1)), ms(50));
        assert_eq!(
            nap(Duration::from_secs(27), Duration::from_secs(1)),
            Duration::from_millis(987) + Duration::from_micros(500)
        );
        assert_eq!(nap(Duration::from_secs(60), Duration::from_secs(1)), Duration::from_secs(1));
    }

    #[test]
    fn a_long_wait_costs_no_more_requests_than_a_fixed_poll() {
        // Count the checks of a simulated wait (requests taking no time).
        let count = |from: Duration, to: Duration| {
            let (mut t, mut n) = (Duration::ZERO, 0);
            while t < to {
                if t >= from {
                    n += 1;
                }
                t += nap(t, ms(50));
            }
            n
        };
        // After the first 2 s: 20 a second, as a fixed 50 ms poll makes.
        assert_eq!(count(Duration::from_secs(2), Duration::from_secs(12)), 200);
        // The first 2 s cost a few hundred more, once per wait.
        let first = count(Duration::ZERO, Duration::from_secs(2));
        assert!((200..400).contains(&first), "{first}");
    }
}
