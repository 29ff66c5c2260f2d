//! Stop signals for the commands that supervise children (`run`, `up`),
//! and for `start`, which stops waiting cleanly.
//!
//! SIGTERM, SIGINT and SIGHUP are blocked in every thread and taken by one
//! waiting thread, which records the last one and forwards it to the child
//! (or the process group) registered, if any. Children get the signals
//! unblocked again before they exec: std restores the parent's mask in the
//! child, and a child that cannot be stopped is no use.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::{Pid, setpgid};

use crate::threads;

/// The last stop signal received, or 0. Waiting loops poll it.
pub static RECEIVED: AtomicI32 = AtomicI32::new(0);
/// Where to forward stop signals: a child's pid, a process group as its
/// negated id (as kill(2) takes it), or 0 for nowhere.
pub static FORWARD_TO: AtomicI32 = AtomicI32::new(0);

/// How long a command told to stop gets before SIGKILL, unless a
/// `--stop-timeout` says otherwise.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(5);

fn stop_signals() -> SigSet {
    SigSet::from_iter([Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP])
}

/// Blocks the stop signals in this thread (and so in every thread started
/// after) and starts the thread that receives them. Call it before
/// starting any other thread.
pub fn catch() {
    let signals = stop_signals();
    if signals.thread_block().is_err() {
        return;
    }
    let _ = threads::spawn("signals", 64 * 1024, move || {
        while let Ok(signal) = wait(&signals) {
            RECEIVED.store(signal as i32, Ordering::SeqCst);
            forward(signal as i32);
        }
    });
}

/// Waits for one of `set`, which this thread blocks, and takes it: what
/// `SigSet::wait` does, through a signalfd, since its `unwrap` of the
/// signal number would bring nix's table of errno names into the binary.
pub fn wait(set: &SigSet) -> nix::Result<Signal> {
    let fd = SignalFd::with_flags(set, SfdFlags::SFD_CLOEXEC)?;
    loop {
        match fd.read_signal() {
            Ok(Some(info)) => {
                if let Ok(signal) = Signal::try_from(info.ssi_signo as i32) {
                    return Ok(signal);
                }
            }
            // Blocking, so never None; EINTR: a handled signal came first.
            Ok(None) | Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
}

/// The last stop signal received, if any.
pub fn received() -> Option<i32> {
    Some(RECEIVED.load(Ordering::SeqCst)).filter(|&s| s != 0)
}

/// Sends `signal` to the registered child or group, if there is one.
pub fn forward(signal: i32) {
    if let Ok(signal) = Signal::try_from(signal) {
        send(FORWARD_TO.load(Ordering::SeqCst), signal);
    }
}

/// Sends `signal` to `target`: a pid, or a process group as its negated
/// id. 0 and -1 (which kill(2) reads as our own group and as every
/// process) are nobody.
pub fn send(target: i32, signal: Signal) {
    if target != 0 && target != -1 {
        let _ = kill(Pid::from_raw(target), signal);
    }
}

/// Whether `target` (a pid, or a process group as its negated id) still
/// names a process; a zombie counts.
pub fn exists(target: i32) -> bool {
    target != 0 && target != -1 && kill(Pid::from_raw(target), None).is_ok()
}

/// Makes `command`'s child start with the stop signals unblocked, and in a
/// process group of its own if `own_group`.
pub fn reset_in_child(command: &mut Command, own_group: bool) {
    // SAFETY: only async-signal-safe calls (pthread_sigmask, setpgid) run
    // between fork and exec.
    unsafe {
        command.pre_exec(move || {
            SigSet::empty().thread_set_mask().map_err(io::Error::from)?;
            if own_group {
                setpgid(Pid::from_raw(0), Pid::from_raw(0))?;
            }
            Ok(())
        });
    }
}

/// `SIGTERM`, or `signal 42` for a number without a name.
pub fn name(signal: i32) -> String {
    Signal::try_from(signal).map_or_else(|_| format!("signal {signal}"), |s| s.as_str().to_owned())
}
