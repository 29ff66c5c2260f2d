//! Connection handling: the accept loop, the connection cap, and one
//! named thread per connection running its request loop (read a line,
//! apply it, write the answer), with its timeouts and its peer check.

use std::io::{BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use super::{Server, THREAD_STACK};
use crate::owner;
use crate::peer;
use crate::protocol::{self, ErrorKind, LineError, Request, Response};
use crate::threads;

/// Most connections served at once; past it a client is told "busy".
pub const MAX_CONNECTIONS: usize = 2048;
/// A connection that sends nothing for this long is closed. Waiting clients
/// send a request every poll interval, and reconnect if it was longer.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// A client that does not read its responses for this long is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// How many connections to serve at once. Raises the soft descriptor
/// limit towards the hard one first (a common soft default of 1,024 would
/// otherwise run out before the cap), and keeps a margin for the socket,
/// the journal and the standard streams, so that accept never fails for
/// want of a descriptor and every refused client is told "busy".
pub(super) fn connection_cap() -> usize {
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

/// Accepts connections until `stop` is set (and the listener shut down).
pub(super) fn accept_loop(server: &Arc<Server>, listener: &UnixListener, stop: &AtomicBool) {
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
        let spawned = threads::spawn(format!("conn-{serial}"), THREAD_STACK, move || {
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
    let peer_pid = match peer::credentials(&stream) {
        Ok(peer) if server.policy.allows(&peer) => peer.pid,
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
    };
    if stream.set_read_timeout(Some(IDLE_TIMEOUT)).is_err()
        || stream.set_write_timeout(Some(WRITE_TIMEOUT)).is_err()
    {
        return;
    }
    let mut reader = BufReader::new(&stream);
    let (mut line, mut out) = (Vec::new(), Vec::new());
    let mut trust = Trust { peer_pid, looked: false };
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
            Ok(request) => server.apply(trust.vet(request)),
            Err(error) => Response::error(&server.instance, error),
        };
        response.write_line(&mut out);
        if (&stream).write_all(&out).is_err() {
            return;
        }
        // A large answer (a `list` of many units) would leave its size
        // behind for the connection's whole life: give it back.
        if out.capacity() > KEEP_BUFFER {
            out = Vec::new();
        }
        line.shrink_to(KEEP_BUFFER);
    }
}

/// The most a connection keeps of its buffers between requests: a
/// waiting client's answers are far smaller.
const KEEP_BUFFER: usize = 16 * 1024;

/// Whether a connection's owners can be kept (PROTOCOL.md, "Owners").
struct Trust {
    /// The client's pid as we see it: 0 if it is in a PID namespace we do
    /// not contain, or if we cannot see its process.
    peer_pid: i32,
    /// Whether we have looked for its process in `/proc` yet.
    looked: bool,
}

impl Trust {
    /// A `start`'s owner is kept only if the client's pid, as it sent it,
    /// is the connection's: then the client sees the same pids as we do,
    /// and the owner's pid means the same process here. And only if we can
    /// see the client in `/proc` (a `/proc` mounted with `hidepid` hides
    /// other users' processes): else its script would look gone at once.
    fn vet(&mut self, mut request: Request) -> Request {
        if let Request::Start { owner, client_pid, .. } = &mut request {
            if owner.is_some() && !self.looked && self.peer_pid > 0 {
                self.looked = true;
                if owner::of_pid(self.peer_pid as u32).is_none() {
                    self.peer_pid = 0;
                }
            }
            let same = client_pid.is_some_and(|pid| i64::from(pid) == i64::from(self.peer_pid));
            if !same || self.peer_pid <= 0 {
                *owner = None;
            }
        }
        request
    }
}
