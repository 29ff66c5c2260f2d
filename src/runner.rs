//! `unitsync run`: one unit's whole life around a command, so that a
//! startup script needs no trap boilerplate.
//!
//! Declare the edges, wait like `start`, run the command with inherited
//! stdio, then complete the unit on exit 0 and fail it otherwise, with the
//! exit status or signal as the reason. SIGTERM, SIGINT and SIGHUP are
//! caught by a dedicated thread: while waiting they stop the wait and fail
//! the unit; while the command runs they are forwarded to it, and the unit
//! fails if the command dies of them. Either way dependents learn at once.

use std::ffi::OsString;
use std::io::ErrorKind;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus};
use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::client::{self, Client, Patience, Say};
use crate::exit;
use crate::protocol::Request;
use crate::signals;

pub struct Spec {
    pub unit: String,
    pub after: Vec<String>,
    pub soft_after: Vec<String>,
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
    signals::catch();
    let patience = Patience { cancel: Some(&signals::RECEIVED), ..patience };
    let unit = spec.unit.as_str();

    match declare(client, spec) {
        Ok(()) => {}
        Err(client::Error::Unreachable { path, reason }) if optional => {
            say.line(&format!(
                "warning: cannot reach the server at {}: {reason}; running {unit} without coordination (--optional)",
                path.display()
            ));
            return execute(spec, say).map(|(code, _)| code);
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
            report(client, unit, Some(reason), say);
        }
        return Err(e);
    }

    let (code, reason) = execute(spec, say)?;
    report(client, unit, reason, say);
    Ok(code)
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
        match client::start(client, &spec.unit, Patience { timeout, ..patience }, say) {
            Err(client::Error::InstanceChanged { .. }) => {
                // Keep the one deadline across restarts; never zero, which
                // would mean "forever".
                if !timeout.is_zero() {
                    let left = patience.timeout.saturating_sub(began.elapsed());
                    timeout = left.max(std::time::Duration::from_millis(1));
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

/// Runs the command; returns the exit code and, if it failed, why.
fn execute(spec: &Spec, say: Say) -> Result<(u8, Option<String>), client::Error> {
    let program = &spec.command[0];
    let mut command = Command::new(program);
    command.args(&spec.command[1..]).env("UNITSYNC_UNIT", &spec.unit);
    signals::reset_in_child(&mut command, false);
    let spawned = command.spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            // As a shell would: missing, or not runnable.
            let code = if e.kind() == ErrorKind::NotFound {
                exit::NOT_FOUND
            } else {
                exit::NOT_EXECUTABLE
            };
            let reason = format!("cannot run {}: {e}", program.to_string_lossy());
            say.line(&format!("{}: {reason}", spec.unit));
            return Ok((code, Some(reason)));
        }
    };
    signals::FORWARD_TO.store(child.id() as i32, Ordering::SeqCst);
    // A signal that came between the wait and the spawn is forwarded now.
    if let Some(early) = signals::received() {
        signals::forward(early);
    }
    let status = loop {
        match child.wait() {
            Ok(status) => break status,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Ok((exit::ERROR, Some(format!("lost track of the command: {e}")))),
        }
    };
    signals::FORWARD_TO.store(0, Ordering::SeqCst);
    Ok(outcome(status))
}

fn outcome(status: ExitStatus) -> (u8, Option<String>) {
    match (status.code(), status.signal()) {
        (Some(0), _) => (exit::SUCCESS, None),
        (Some(code), _) => (code as u8, Some(format!("exit status {code}"))),
        (None, Some(signal)) => {
            (exit::signaled(signal), Some(format!("killed by {}", signals::name(signal))))
        }
        (None, None) => (exit::ERROR, Some("ended abnormally".to_owned())),
    }
}

/// Completes (no reason) or fails the unit. The command has run, so a
/// server that restarted meanwhile is told too: its dependents may be
/// waiting there, declared afresh.
fn report(client: &mut Client, unit: &str, reason: Option<String>, say: Say) {
    let request = match &reason {
        None => Request::Complete { unit: unit.to_owned(), note: None },
        Some(_) => Request::Fail { unit: unit.to_owned(), reason: reason.clone() },
    };
    let mut result = client.call(&request);
    if let Err(client::Error::InstanceChanged { .. } | client::Error::Unreachable { .. }) = result {
        client.accept_new_instance();
        result = client.call(&request);
    }
    match (result, reason) {
        (Ok(_), None) => say.line(&format!("{unit}: completed")),
        (Ok(_), Some(reason)) => say.line(&format!("{unit}: marked failed: {reason}")),
        (Err(e), _) => eprintln!(
            "unitsync: {unit}: could not record how it ended, so its dependents may wait: {e}"
        ),
    }
}
