//! Readiness conditions of a service (`run --ready COND`, `ready=` in an
//! `up` header): how `run` learns that the command it started is ready
//! while the command keeps running. README.md, "Services", documents them.
//!
//! - `fd:N`   the command gets the write end of a pipe as descriptor N; a
//!   newline written to it means ready, EOF before one means never
//!   (s6's `notification-fd`, dinit's `pipefd`, OpenRC's `notify=fd:N`);
//! - `tcp:[HOST:]PORT`, `unix:PATH`: a connection is accepted;
//! - `file:PATH`: the path exists;
//! - `exec:COMMAND`: `sh -c COMMAND` exits 0. Each probe runs in a
//!   process group of its own and gets at most the probe timeout; then it
//!   is killed with its group, and so is one still running when the watch
//!   ends (ready deadline, stop), so that no probe outlives its purpose;
//! - `http://HOST[:PORT][/PATH]`: an HTTP/1.1 GET is answered with a 2xx
//!   or 3xx status line within the probe timeout (Kubernetes' `httpGet`).
//!   Each request runs on a thread of its own, so that a server that
//!   accepts and never answers holds up nothing; connecting, writing and
//!   reading are all bounded by the probe timeout, so the thread ends by
//!   itself even after the watch is gone. No TLS: `https://` is refused.
//!
//! A [`Watch`] is polled: [`Watch::check`] never blocks for long, so that
//! the caller's one loop also sees the command exit, the deadline pass and
//! stop signals arrive.

use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};
use nix::sys::signal::Signal;
use nix::unistd::{dup2_raw, pipe2};

use crate::bell;
use crate::signals;
use crate::threads;

/// How long one `exec:` probe may run by default (`--probe-timeout`,
/// `probe-timeout=`): a probe that hangs (a `pg_isready` against a host
/// that drops packets) must not hold up the next one for ever.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one TCP connection attempt may take. A port that drops SYNs
/// would otherwise stall the check for the kernel's whole connect timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// A readiness condition, as written after `--ready` or `ready=`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cond {
    Fd(RawFd),
    Tcp(SocketAddr),
    Unix(PathBuf),
    File(PathBuf),
    Exec(String),
    Http(Http),
}

/// An `http://` condition: where to connect, and what to ask for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Http {
    pub addr: SocketAddr,
    /// The `Host:` header: HOST as written, with the port unless it is 80.
    pub host: String,
    /// The request target: `/` when the URL has no path.
    pub path: String,
}

const FORMS: &str =
    "fd:N, tcp:[HOST:]PORT, unix:PATH, file:PATH, exec:COMMAND or http://HOST:PORT/PATH";

impl Cond {
    /// Parses `fd:3`, `tcp:8080`, `tcp:10.0.0.2:5432`, `tcp:[::1]:80`,
    /// `unix:/run/db.sock`, `file:/tmp/ready`, `exec:pg_isready`.
    ///
    /// HOST is an IP address or `localhost`: resolving other names would
    /// need NSS, which a static binary in a minimal image does not have.
    pub fn parse(text: &str) -> Result<Cond, String> {
        let bad = |why: &str| format!("invalid readiness condition {text:?}: {why}");
        let Some((kind, arg)) = text.split_once(':') else {
            return Err(bad(&format!("write it as {FORMS}")));
        };
        if arg.is_empty() {
            return Err(bad(&format!("nothing after '{kind}:'; write it as {FORMS}")));
        }
        match kind {
            "fd" => match arg.parse::<RawFd>() {
                Ok(n) if n >= 3 => Ok(Cond::Fd(n)),
                _ => Err(bad("the descriptor is a number of 3 or more (0, 1 and 2 are stdio)")),
            },
            "tcp" => tcp_address(arg).map(Cond::Tcp).map_err(|why| bad(&why)),
            "unix" => Ok(Cond::Unix(PathBuf::from(arg))),
            "file" => Ok(Cond::File(PathBuf::from(arg))),
            "exec" => Ok(Cond::Exec(arg.to_owned())),
            "http" => http_url(arg).map(Cond::Http).map_err(|why| bad(&why)),
            "https" => Err(bad(
                "https is not supported (no TLS in unitsync): probe a plain-HTTP port with \
                 http://, or use exec:COMMAND with a client that speaks TLS",
            )),
            _ => Err(bad(&format!("unknown kind '{kind}'; write it as {FORMS}"))),
        }
    }
}

impl fmt::Display for Cond {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cond::Fd(n) => write!(f, "fd:{n}"),
            Cond::Tcp(addr) => write!(f, "tcp:{addr}"),
            Cond::Unix(path) => write!(f, "unix:{}", path.display()),
            Cond::File(path) => write!(f, "file:{}", path.display()),
            Cond::Exec(command) => write!(f, "exec:{command}"),
            Cond::Http(http) => write!(f, "http://{}{}", http.host, http.path),
        }
    }
}

/// `PORT`, `HOST:PORT` or `[V6]:PORT`; HOST defaults to 127.0.0.1.
fn tcp_address(arg: &str) -> Result<SocketAddr, String> {
    let port = |p: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| format!("the port {p:?} is not a number from 1 to 65535"))
    };
    let Some((host, p)) = arg.rsplit_once(':') else {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port(arg)?));
    };
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    let ip = match host {
        "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        _ => host.parse::<IpAddr>().map_err(|_| {
            format!(
                "the host {host:?} is not an IP address (names are not looked up: no NSS); \
                 write an IP address, [IPv6] or localhost"
            )
        })?,
    };
    Ok(SocketAddr::new(ip, port(p)?))
}

/// `//HOST[:PORT][/PATH]`, the rest of an `http:` condition. HOST is an
/// IP address (IPv6 in brackets) or `localhost`, as for `tcp:`; PORT
/// defaults to 80, PATH to `/`.
fn http_url(arg: &str) -> Result<Http, String> {
    let Some(rest) = arg.strip_prefix("//") else {
        return Err("write it as http://HOST:PORT/PATH".to_owned());
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    let path = match path {
        "" => "/".to_owned(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_owned(),
    };
    // The path goes into the request line as it is: a space or a control
    // character would break it, and a fragment is never sent.
    if let Some(c) = path.chars().find(|c| c.is_ascii_control() || *c == ' ' || *c == '#') {
        return Err(format!(
            "the path {path:?} holds {c:?}; write spaces as %20 and leave out any #fragment"
        ));
    }
    if authority.is_empty() {
        return Err("no host after http://; write it as http://HOST:PORT/PATH".to_owned());
    }
    if authority.contains('@') {
        return Err("a user or password in the URL is not supported".to_owned());
    }
    if !authority.starts_with('[') && authority.matches(':').count() > 1 {
        return Err(format!(
            "write an IPv6 address in brackets, as in http://[::1]:8080/ (not {authority:?})"
        ));
    }
    // `[::1]:8080`, `[::1]`, `10.0.0.2:80`, `localhost`: a colon after
    // the closing bracket (or any, without brackets) starts the port.
    let after_host = authority.rfind(']').map_or(0, |at| at + 1);
    let (host, port) = match authority[after_host..].rfind(':') {
        Some(at) => authority.split_at(after_host + at),
        None => (authority, ""),
    };
    let address = match port {
        "" => format!("{host}:80"),
        _ => authority.to_owned(),
    };
    let addr = tcp_address(&address)?;
    let host = match addr.port() {
        80 => host.to_owned(),
        _ => format!("{host}:{}", addr.port()),
    };
    Ok(Http { addr, host, path })
}

/// One `http://` probe: GET PATH, and whether the status line says 2xx or
/// 3xx. Everything is bounded by `limit` (zero: no limit): the connect,
/// the write, and the wait for the status line.
fn http_get(http: &Http, limit: Duration) -> bool {
    let deadline = (!limit.is_zero()).then(|| Instant::now() + limit);
    // Some(None): no limit; None: the deadline has passed.
    let left = || match deadline {
        None => Some(None),
        Some(at) => {
            let left = at.saturating_duration_since(Instant::now());
            (!left.is_zero()).then_some(Some(left))
        }
    };
    let Some(first) = left() else { return false };
    let stream = match first {
        Some(left) => TcpStream::connect_timeout(&http.addr, left),
        None => TcpStream::connect(http.addr),
    };
    let Ok(mut stream) = stream else { return false };
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: unitsync\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        http.path, http.host
    );
    let Some(left_now) = left() else { return false };
    if stream.set_write_timeout(left_now).is_err() || stream.write_all(request.as_bytes()).is_err()
    {
        return false;
    }
    // Only the status line matters; a line longer than this is no HTTP.
    let mut line = Vec::with_capacity(128);
    let mut buf = [0u8; 256];
    loop {
        let Some(left_now) = left() else { return false };
        if stream.set_read_timeout(left_now).is_err() {
            return false;
        }
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => line.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
        if line.contains(&b'\n') || line.len() > 1024 {
            break;
        }
    }
    status_ok(&line)
}

/// Whether a response starts with an HTTP/1.x status line of 2xx or 3xx.
fn status_ok(response: &[u8]) -> bool {
    let line = response.split(|&b| b == b'\n').next().unwrap_or_default();
    // A status line without a reason phrase ends right after the code.
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut words = line.split(|&b| b == b' ');
    let version = words.next().unwrap_or_default();
    let code = words.next().unwrap_or_default();
    version.starts_with(b"HTTP/")
        && code.len() == 3
        && code.iter().all(u8::is_ascii_digit)
        && matches!(code[0], b'2' | b'3')
}

/// What one check found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Check {
    Ready,
    NotYet,
    /// It can never become ready, and why (`fd:N` closed without a newline).
    Never(String),
}

/// Watches one condition for one command.
pub struct Watch {
    cond: Cond,
    /// `fd:N`: the write end, until the command has its copy.
    pipe: Option<OwnedFd>,
    /// `fd:N`: what the reader thread found (true: a newline came; false:
    /// EOF or an error first).
    notified: Option<Arc<Notified>>,
    /// `exec:`: the probe still running, if one is, and when it started.
    probe: Option<(Child, Instant)>,
    /// `http://`: the request running on its thread, if one is: None
    /// until it answers, then whether the status was 2xx or 3xx.
    asked: Option<Arc<Notified>>,
    /// `exec:`, `http://`: how long one probe may run; zero: no limit.
    probe_timeout: Duration,
}

impl Watch {
    /// Prepares `command` for `cond`: for `fd:N`, a pipe whose write end
    /// the command will hold as descriptor N. An `exec:` probe is killed
    /// after `probe_timeout` (zero: never).
    pub fn new(cond: &Cond, probe_timeout: Duration, command: &mut Command) -> io::Result<Watch> {
        let mut watch = Watch::polled(cond, probe_timeout);
        if let Cond::Fd(n) = *cond {
            // Both ends close on exec, so no other child inherits them; the
            // command gets its copy as N just before its exec.
            let (read, write) = pipe2(OFlag::O_CLOEXEC)?;
            let raw = write.as_raw_fd();
            // SAFETY: dup2 and fcntl are async-signal-safe; nothing else
            // runs between fork and exec.
            unsafe {
                command.pre_exec(move || {
                    if raw == n {
                        // dup2 onto itself would keep close-on-exec set.
                        fcntl(raw_fd(raw), FcntlArg::F_SETFD(FdFlag::empty()))?;
                    } else {
                        // The new descriptor must survive this closure.
                        std::mem::forget(dup2_raw(raw_fd(raw), n)?);
                    }
                    Ok(())
                });
            }
            watch.pipe = Some(write);
            watch.notified = Some(read_notification(read));
        }
        Ok(watch)
    }

    /// Watches `cond` with no command to prepare: a health check, which is
    /// never `fd:N` (that speaks once).
    pub fn polled(cond: &Cond, probe_timeout: Duration) -> Watch {
        Watch {
            cond: cond.clone(),
            pipe: None,
            notified: None,
            probe: None,
            asked: None,
            probe_timeout,
        }
    }

    /// Call once the command is spawned: the parent's copy of the write end
    /// is closed, so that EOF is seen when the command's copies close.
    pub fn spawned(&mut self) {
        self.pipe = None;
    }

    /// After the command exited before a check saw it ready: whether it
    /// wrote its newline first (`fd:N` is the only condition that tells of
    /// the past). The reading thread may lag behind an exit that follows
    /// the newline at once, so it gets up to `limit`; EOF answers at once.
    pub fn was_notified(&self, limit: Duration) -> bool {
        self.notified.as_ref().is_some_and(|told| told.wait(limit) == Some(true))
    }

    /// Whether the condition is watched by event (`fd:N`, whose reader
    /// wakes the supervising loop through [`bell::ring`]) rather than
    /// polled.
    pub fn by_event(&self) -> bool {
        matches!(self.cond, Cond::Fd(_))
    }

    /// Whether an `exec:` probe runs or an `http://` request is out: its
    /// answer is still to come (and wakes the loop: SIGCHLD, or the
    /// request's thread through [`bell::ring`]).
    pub fn probing(&self) -> bool {
        self.probe.is_some() || self.asked.is_some()
    }

    /// Checks once; blocks at most about a second (a TCP connect).
    pub fn check(&mut self) -> Check {
        match &self.cond {
            Cond::Fd(n) => match self.notified.as_ref().map(|told| told.seen()) {
                Some(Some(true)) => Check::Ready,
                Some(None) => Check::NotYet,
                _ => Check::Never(format!("it closed fd {n} without writing a newline")),
            },
            Cond::Tcp(addr) => ready_if(TcpStream::connect_timeout(addr, CONNECT_TIMEOUT).is_ok()),
            Cond::Unix(path) => ready_if(UnixStream::connect(path).is_ok()),
            Cond::File(path) => ready_if(fs::symlink_metadata(path).is_ok()),
            Cond::Exec(script) => {
                if let Some((probe, began)) = &mut self.probe {
                    match probe.try_wait() {
                        Ok(None) => {
                            let late = !self.probe_timeout.is_zero()
                                && began.elapsed() >= self.probe_timeout;
                            if !late {
                                return Check::NotYet;
                            }
                            // Hung: a failed probe (a health check counts
                            // it); the next check runs another.
                            kill(self.probe.take());
                            return Check::NotYet;
                        }
                        Ok(Some(status)) => {
                            self.probe = None;
                            return ready_if(status.success());
                        }
                        Err(_) => self.probe = None,
                    }
                }
                let mut command = Command::new("sh");
                command.args(["-c", script]).stdin(Stdio::null()).stdout(Stdio::null());
                command.stderr(Stdio::null());
                // A group of its own, so that killing it reaches what the
                // probe started too (`sh -c 'a | b'`, a probe's own forks).
                signals::reset_in_child(&mut command, true);
                self.probe = command.spawn().ok().map(|probe| (probe, Instant::now()));
                Check::NotYet
            }
            Cond::Http(http) => {
                if let Some(asked) = &self.asked {
                    return match asked.seen() {
                        None => Check::NotYet,
                        Some(ok) => {
                            self.asked = None;
                            ready_if(ok)
                        }
                    };
                }
                self.asked = Some(ask(http.clone(), self.probe_timeout));
                Check::NotYet
            }
        }
    }

    /// The running probe's pid, which is the watch's to reap.
    pub fn probe_pid(&self) -> Option<u32> {
        self.probe.as_ref().map(|(probe, _)| probe.id())
    }

    /// Kills the running probe, if any, with its process group, and reaps
    /// it: called when no answer of it can matter any more. An `http://`
    /// request is only forgotten: its thread ends by the probe timeout.
    pub fn cancel(&mut self) {
        kill(self.probe.take());
        self.asked = None;
    }
}

/// Kills a probe with its process group and reaps it.
fn kill(probe: Option<(Child, Instant)>) {
    if let Some((mut probe, _)) = probe {
        // Its group is its pid (see `Watch::check`); the pid is ours until
        // it is reaped below, so the group cannot be someone else's.
        signals::send(-(probe.id() as i32), Signal::SIGKILL);
        let _ = probe.kill();
        let _ = probe.wait();
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        // A probe still running is of no use any more.
        self.cancel();
    }
}

fn ready_if(ok: bool) -> Check {
    if ok { Check::Ready } else { Check::NotYet }
}

/// Borrows a raw descriptor for `dup2_raw`.
fn raw_fd(raw: RawFd) -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: the descriptor is the pipe's write end, open until the
    // parent drops it after the spawn; in the child it is open until exec.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(raw) }
}

/// What a thread found: None while it works, then its answer (`fd:N`:
/// whether a newline came before EOF; `http://`: whether the status was
/// 2xx or 3xx). A mutex and a condition variable rather than a
/// channel: the binary then holds no copy of `std::sync::mpsc`.
#[derive(Default)]
struct Notified {
    seen: Mutex<Option<bool>>,
    changed: Condvar,
}

impl Notified {
    fn seen(&self) -> Option<bool> {
        *self.seen.lock().expect("nothing panics holding the lock")
    }

    /// What the reader said, waiting up to `limit` for it to say anything.
    fn wait(&self, limit: Duration) -> Option<bool> {
        let seen = self.seen.lock().expect("nothing panics holding the lock");
        let (seen, _) = self
            .changed
            .wait_timeout_while(seen, limit, |seen| seen.is_none())
            .expect("nothing panics holding the lock");
        *seen
    }

    fn tell(&self, newline: bool) {
        *self.seen.lock().expect("nothing panics holding the lock") = Some(newline);
        self.changed.notify_all();
        // The supervising loop sleeps until something happens.
        bell::ring();
    }
}

/// Sends one `http://` request on a thread of its own; the answer comes
/// in the returned [`Notified`].
fn ask(http: Http, limit: Duration) -> Arc<Notified> {
    let told = Arc::new(Notified::default());
    let tell = Arc::clone(&told);
    let spawned =
        threads::spawn("ready-http", 64 * 1024, move || tell.tell(http_get(&http, limit)));
    // Without the thread there is no answer: not ready this time.
    if spawned.is_err() {
        told.tell(false);
    }
    told
}

/// Reads the pipe on a thread of its own until a newline (true) or EOF
/// (false): a blocking read is the simplest way to see both at once.
fn read_notification(read: OwnedFd) -> Arc<Notified> {
    let told = Arc::new(Notified::default());
    let tell = Arc::clone(&told);
    let reader = move || {
        let mut file = fs::File::from(read);
        let mut byte = [0u8; 1];
        let newline = loop {
            match file.read(&mut byte) {
                Ok(0) => break false,
                Ok(_) if byte[0] == b'\n' => break true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break false,
            }
        };
        tell.tell(newline);
    };
    // Without the thread there is no reader: read as "never".
    let spawned = threads::spawn("ready-fd", 64 * 1024, reader);
    if spawned.is_err() {
        told.tell(false);
    }
    told
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;
    use std::time::Instant;

    #[test]
    fn parses_every_form_and_names_the_mistake() {
        let ok = |s: &str| Cond::parse(s).unwrap().to_string();
        assert_eq!(ok("fd:3"), "fd:3");
        assert_eq!(ok("tcp:8080"), "tcp:127.0.0.1:8080");
        assert_eq!(ok("tcp:localhost:80"), "tcp:127.0.0.1:80");
        assert_eq!(ok("tcp:10.1.2.3:5432"), "tcp:10.1.2.3:5432");
        assert_eq!(ok("tcp:[::1]:80"), "tcp:[::1]:80");
        assert_eq!(ok("unix:/run/db.sock"), "unix:/run/db.sock");
        assert_eq!(ok("file:/tmp/x"), "file:/tmp/x");
        assert_eq!(ok("exec:pg_isready -q"), "exec:pg_isready -q");
        let err = |s: &str| Cond::parse(s).unwrap_err();
        assert_eq!(
            err("fd:2"),
            "invalid readiness condition \"fd:2\": the descriptor is a number of 3 or more (0, 1 and 2 are stdio)"
        );
        assert!(err("tcp:db:5432").contains("the host \"db\" is not an IP address"));
        assert!(err("tcp:0").contains("the port \"0\" is not a number from 1 to 65535"));
        assert!(err("ftp:80").contains("unknown kind 'ftp'"));
        assert!(err("8080").contains("write it as fd:N, tcp:[HOST:]PORT"));
        assert!(err("file:").contains("nothing after 'file:'"));
    }

    #[test]
    fn parses_http_urls_and_refuses_what_it_cannot_ask() {
        let http = |s: &str| match Cond::parse(s) {
            Ok(Cond::Http(http)) => (http.addr.to_string(), http.host, http.path),
            other => panic!("{s}: {other:?}"),
        };
        let own = |a: &str, h: &str, p: &str| (a.to_owned(), h.to_owned(), p.to_owned());
        assert_eq!(
            http("http://127.0.0.1:8080/healthz"),
            own("127.0.0.1:8080", "127.0.0.1:8080", "/healthz")
        );
        assert_eq!(http("http://localhost:8080"), own("127.0.0.1:8080", "localhost:8080", "/"));
        assert_eq!(http("http://10.0.0.2/"), own("10.0.0.2:80", "10.0.0.2", "/"));
        assert_eq!(http("http://[::1]:81/a/b?c=d"), own("[::1]:81", "[::1]:81", "/a/b?c=d"));
        assert_eq!(http("http://[::1]"), own("[::1]:80", "[::1]", "/"));
        assert_eq!(http("http://127.0.0.1:9?x"), own("127.0.0.1:9", "127.0.0.1:9", "/?x"));
        let ok = |s: &str| Cond::parse(s).unwrap().to_string();
        assert_eq!(ok("http://127.0.0.1:8080/healthz"), "http://127.0.0.1:8080/healthz");
        assert_eq!(ok("http://localhost"), "http://localhost/");
        let err = |s: &str| Cond::parse(s).unwrap_err();
        assert!(err("https://127.0.0.1/").contains("https is not supported (no TLS"));
        assert!(err("http://web:8080/").contains("the host \"web\" is not an IP address"));
        assert!(err("http://127.0.0.1:0/").contains("the port \"0\" is not a number"));
        assert!(err("http://127.0.0.1:x/").contains("the port \"x\""));
        assert!(err("http:127.0.0.1").contains("write it as http://HOST:PORT/PATH"));
        assert!(err("http://").contains("no host after http://"));
        assert!(err("http:///x").contains("no host after http://"));
        assert!(err("http://u:p@127.0.0.1/").contains("a user or password"));
        assert!(err("http://127.0.0.1/a b").contains("holds ' '"));
        assert!(err("http://127.0.0.1/a#top").contains("#fragment"));
        assert!(err("http://[::1/").contains("is not an IP address"));
        assert!(err("http://::1:80/").contains("write an IPv6 address in brackets"));
        assert!(err("http://web/").ends_with("write an IP address, [IPv6] or localhost"));
    }

    #[test]
    fn a_status_line_of_2xx_or_3xx_is_ready() {
        assert!(status_ok(b"HTTP/1.1 200 OK\r\n"));
        assert!(status_ok(b"HTTP/1.0 302 Found\r\nLocation: /\r\n"));
        assert!(status_ok(b"HTTP/1.1 204"));
        assert!(status_ok(b"HTTP/1.1 200\r\nContent-Length: 0\r\n"));
        assert!(!status_ok(b"HTTP/1.1 500 Internal Server Error\r\n"));
        assert!(!status_ok(b"HTTP/1.1 404 Not Found\r\n"));
        assert!(!status_ok(b"HTTP/1.1 1999\r\n"));
        assert!(!status_ok(b"SSH-2.0-OpenSSH\r\n"));
        assert!(!status_ok(b""));
    }

    /// Polls `watch` until it answers something other than NotYet.
    fn settle(watch: &mut Watch) -> Check {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match watch.check() {
                Check::NotYet if Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(5))
                }
                other => return other,
            }
        }
    }

    fn fd_watch(script: &str) -> (Watch, Child) {
        let mut command = Command::new("sh");
        command.args(["-c", script]);
        let mut watch = Watch::new(&Cond::Fd(5), PROBE_TIMEOUT, &mut command).unwrap();
        let child = command.spawn().unwrap();
        watch.spawned();
        (watch, child)
    }

    #[test]
    fn a_newline_on_the_fd_means_ready_while_the_command_runs() {
        let (mut watch, mut child) = fd_watch("echo >&5; exec sleep 600");
        assert_eq!(settle(&mut watch), Check::Ready);
        assert!(child.try_wait().unwrap().is_none(), "the command still runs");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn closing_the_fd_without_a_newline_means_never() {
        let (mut watch, mut child) = fd_watch("printf x >&5; exec 5>&-; exec sleep 600");
        assert_eq!(
            settle(&mut watch),
            Check::Never("it closed fd 5 without writing a newline".into())
        );
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn a_newline_right_before_the_exit_is_not_lost() {
        let (watch, mut child) = fd_watch("echo >&5; exit 0");
        child.wait().unwrap();
        assert!(watch.was_notified(Duration::from_secs(30)));
        // EOF without a newline answers at once, not after the limit.
        let (watch, mut child) = fd_watch("exit 0");
        child.wait().unwrap();
        let began = Instant::now();
        assert!(!watch.was_notified(Duration::from_secs(30)));
        assert!(began.elapsed() < Duration::from_secs(20));
    }

    #[test]
    fn exec_probes_until_the_command_succeeds() {
        let dir = std::env::temp_dir().join(format!("unitsync-readiness-{}", std::process::id()));
        let _ = fs::remove_file(&dir);
        let mut command = Command::new("true");
        let cond = Cond::Exec(format!("test -e {}", dir.display()));
        let mut watch = Watch::new(&cond, PROBE_TIMEOUT, &mut command).unwrap();
        assert_eq!(watch.check(), Check::NotYet);
        fs::write(&dir, "").unwrap();
        assert_eq!(settle(&mut watch), Check::Ready);
        fs::remove_file(&dir).unwrap();
    }

    #[test]
    fn tcp_is_ready_once_something_listens() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut command = Command::new("true");
        let mut watch = Watch::new(&Cond::Tcp(addr), PROBE_TIMEOUT, &mut command).unwrap();
        assert_eq!(watch.check(), Check::Ready);
        drop(listener);
        assert_eq!(watch.check(), Check::NotYet);
    }

    #[test]
    fn http_asks_on_a_thread_and_the_answer_wakes_the_loop() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cond = Cond::parse(&format!("http://127.0.0.1:{port}/up")).unwrap();
        let mut watch = Watch::new(&cond, PROBE_TIMEOUT, &mut Command::new("true")).unwrap();
        assert_eq!(watch.check(), Check::NotYet, "the request is on its way");
        let (mut conn, _) = listener.accept().unwrap();
        let mut request = [0u8; 64];
        let n = conn.read(&mut request).unwrap();
        assert!(request[..n].starts_with(b"GET /up HTTP/1.1\r\n"));
        std::io::Write::write_all(&mut conn, b"HTTP/1.1 200\r\n\r\n").unwrap();
        // The answer wakes a loop sleeping on the bell, long before its
        // two minutes are up.
        bell::arm();
        let began = Instant::now();
        loop {
            let seen = bell::count();
            if watch.asked.as_ref().is_none_or(|asked| asked.seen().is_some()) {
                break;
            }
            bell::wait(seen, Duration::from_secs(120));
        }
        assert!(began.elapsed() < Duration::from_secs(60));
        assert_eq!(watch.check(), Check::Ready);
    }

    /// The process groups of the probes started so far: each probe names
    /// a file after its `$$` (its group, being its leader).
    fn probe_groups(dir: &std::path::Path) -> Vec<i32> {
        let names = fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name());
        names.filter_map(|n| n.to_str()?.strip_prefix("probe-")?.parse().ok()).collect()
    }

    #[test]
    fn a_hung_probe_is_killed_with_its_group_and_the_next_one_runs() {
        let dir = std::env::temp_dir().join(format!("unitsync-probes-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir(&dir).unwrap();
        // A pipeline: the shell forks both sides, so killing the shell
        // alone would leave them running.
        let cond = Cond::Exec(format!("touch {}/probe-$$; sleep 300 | cat", dir.display()));
        let mut watch =
            Watch::new(&cond, Duration::from_millis(200), &mut Command::new("true")).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while probe_groups(&dir).len() < 2 {
            assert_eq!(watch.check(), Check::NotYet);
            assert!(Instant::now() < deadline, "no second probe after the first hung");
            thread::sleep(Duration::from_millis(5));
        }
        // The first was killed before the second started: at most one
        // group is left (its members die of SIGKILL at once, and are
        // reaped by whoever reaps orphans here, so give them a moment).
        let gone_but = |left: usize| {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let alive: Vec<i32> =
                    probe_groups(&dir).into_iter().filter(|g| signals::exists(-g)).collect();
                if alive.len() <= left {
                    return;
                }
                assert!(Instant::now() < deadline, "probe groups {alive:?} live on");
                thread::sleep(Duration::from_millis(5));
            }
        };
        gone_but(1);
        // Dropping the watch (a deadline passed, a stop) ends the running one.
        drop(watch);
        gone_but(0);
        fs::remove_dir_all(&dir).unwrap();
    }
}
