//! Signals for the commands that supervise children (`run`, `up`), and
//! for `start`, which stops waiting cleanly.
//!
//! An init never dies of a signal (README.md, "As a container's init"):
//! `run` and `up` block every catchable asynchronous signal in every
//! thread ([`init`]) and take them in one waiting thread. The stop signals
//! (SIGTERM, SIGINT, and SIGHUP where it stops) are recorded for the
//! waiting loops and counted, so a second one can end a shutdown at once;
//! every other one is forwarded to the registered child or group, or left
//! pending for `up` to forward to its units. `start` takes only the stop
//! signals ([`catch`]). Children get a clean signal mask and default
//! dispositions before they exec: std restores the parent's mask in the
//! child, and a child that cannot be stopped is no use.

use std::io::{self, IsTerminal};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use nix::errno::Errno;
pub use nix::sys::signal::Signal;
use nix::sys::signal::{SigHandler, SigSet, kill};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::{Pid, setpgid};

use crate::bell;
use crate::threads;

/// The last stop signal received, or 0. Waiting loops poll it.
pub static RECEIVED: AtomicI32 = AtomicI32::new(0);
/// Where to forward signals: a child's pid, a process group as its
/// negated id (as kill(2) takes it), or 0 for nowhere.
pub static FORWARD_TO: AtomicI32 = AtomicI32::new(0);
/// How many stop signals came, so a shutdown can tell a second one.
static STOPS: AtomicU32 = AtomicU32::new(0);
/// With [`init`], the signals other than stop signals that came while
/// nothing was registered in [`FORWARD_TO`], one bit per number.
static PENDING: AtomicU64 = AtomicU64::new(0);
/// The signal a forwarded stop signal becomes (`--stop-signal`), or 0 to
/// forward it as it came.
pub static STOP_AS: AtomicI32 = AtomicI32::new(0);

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
    listen(stop_signals(), stop_signals());
}

/// Every signal a process may catch and that is not about this process's
/// own faults (SIGSEGV and the like must kill it, or it would spin), nor
/// SIGCHLD (only [`init`] takes it, to wake `up` and `run`). SIGTSTP, SIGTTIN and SIGTTOU are
/// included only when no terminal owns them: at a terminal, ^Z stops the
/// whole foreground group as usual.
pub fn catchable() -> SigSet {
    let mut set = SigSet::all();
    for never in [
        Signal::SIGKILL,
        Signal::SIGSTOP,
        Signal::SIGSEGV,
        Signal::SIGBUS,
        Signal::SIGFPE,
        Signal::SIGILL,
        Signal::SIGTRAP,
        Signal::SIGSYS,
        Signal::SIGABRT,
        Signal::SIGCHLD,
        // std ignores it at startup: a closed pipe is an EPIPE error.
        Signal::SIGPIPE,
    ] {
        set.remove(never);
    }
    if std::io::stdin().is_terminal() {
        for job_control in [Signal::SIGTSTP, Signal::SIGTTIN, Signal::SIGTTOU] {
            set.remove(job_control);
        }
    }
    set
}

/// For an init (`run`, `up`): blocks every [`catchable`] signal and
/// SIGCHLD, and starts the thread that takes them. `stops` start the
/// shutdown (see [`received`] and [`stops`]); the others are forwarded.
/// Call it before starting any other thread.
///
/// SIGCHLD is taken too, only to ring the [`bell`]: `up` and `run` wake
/// on a child's end instead of looking on a tick. Blocking it changes nothing
/// for `waitpid`, and children get a clean mask ([`reset_in_child`]).
pub fn init(stops: &[Signal]) {
    let mut all = catchable();
    all.add(Signal::SIGCHLD);
    listen(all, SigSet::from_iter(stops.iter().copied()));
}

fn listen(all: SigSet, stops: SigSet) {
    if all.thread_block().is_err() {
        return;
    }
    // An ignored signal is discarded even while blocked: one inherited
    // ignored (nohup, a background job) would never reach us.
    for signal in all.iter() {
        // SAFETY: the default action, no handler.
        let _ = unsafe { nix::sys::signal::signal(signal, SigHandler::SigDfl) };
    }
    let _ = threads::spawn("signals", 64 * 1024, move || {
        while let Ok(signal) = wait(&all) {
            if signal == Signal::SIGCHLD {
                // Nothing to record: `up` and `run` reap when they wake.
            } else if stops.contains(signal) {
                let earlier = STOPS.fetch_add(1, Ordering::SeqCst);
                RECEIVED.store(signal as i32, Ordering::SeqCst);
                match earlier {
                    0 => forward_stop(signal as i32),
                    // A second one: whatever is left gets no more time.
                    _ => send(FORWARD_TO.load(Ordering::SeqCst), Signal::SIGKILL),
                }
            } else {
                match FORWARD_TO.load(Ordering::SeqCst) {
                    0 => {
                        PENDING.fetch_or(1 << signal as u32, Ordering::SeqCst);
                    }
                    target => send(target, signal),
                }
            }
            // Once recorded: the supervising loop may have to act on it.
            bell::ring();
        }
    });
}

/// How many stop signals came so far.
pub fn stops() -> u32 {
    STOPS.load(Ordering::SeqCst)
}

/// Takes the signals left pending for want of a registered child.
pub fn take_pending() -> Vec<Signal> {
    let bits = PENDING.swap(0, Ordering::SeqCst);
    (1..64).filter(|n| bits & (1 << n) != 0).filter_map(|n| Signal::try_from(n).ok()).collect()
}

/// Sends a stop signal to the registered child or group, as
/// [`STOP_AS`] says.
pub fn forward_stop(signal: i32) {
    match STOP_AS.load(Ordering::SeqCst) {
        0 => forward(signal),
        instead => forward(instead),
    }
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

/// Makes `command`'s child start with no signal blocked and every signal
/// at its default disposition (an ignored one would stay ignored across
/// exec), and in a process group of its own if `own_group`.
pub fn reset_in_child(command: &mut Command, own_group: bool) {
    // SAFETY: only async-signal-safe calls (sigaction, pthread_sigmask,
    // setpgid) run between fork and exec.
    unsafe {
        command.pre_exec(move || {
            for signal in Signal::iterator() {
                if !matches!(signal, Signal::SIGKILL | Signal::SIGSTOP) {
                    let _ = nix::sys::signal::signal(signal, SigHandler::SigDfl);
                }
            }
            SigSet::empty().thread_set_mask().map_err(io::Error::from)?;
            if own_group {
                setpgid(Pid::from_raw(0), Pid::from_raw(0))?;
            }
            Ok(())
        });
    }
}

/// Parses a stop signal as `--stop-signal` and `stop-signal=` take it:
/// a name with or without `SIG`, in any case (`INT`, `sigquit`), or a
/// number (`2`). SIGKILL and SIGSTOP are refused: a stop that cannot be
/// handled gives the service no chance to stop cleanly, which is what
/// the stop timeout's SIGKILL is for.
pub fn parse(text: &str) -> Result<Signal, String> {
    let upper = text.trim().to_ascii_uppercase();
    let signal = match upper.parse::<i32>() {
        Ok(number) => Signal::try_from(number).ok(),
        Err(_) => {
            let name = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
            name.parse::<Signal>().ok()
        }
    };
    match signal {
        Some(Signal::SIGKILL | Signal::SIGSTOP) => Err(format!(
            "{text:?} cannot be handled; name a signal the service can catch (TERM, INT, QUIT, ...)"
        )),
        Some(signal) => Ok(signal),
        None => Err(format!(
            "unknown signal {text:?}; write a name like TERM, INT or QUIT, or a number"
        )),
    }
}

/// `SIGTERM`, or `signal 42` for a number without a name.
pub fn name(signal: i32) -> String {
    Signal::try_from(signal).map_or_else(|_| format!("signal {signal}"), |s| s.as_str().to_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn stop_signals_are_read_as_names_in_any_case_or_numbers() {
        use nix::sys::signal::Signal;
        for (text, want) in [
            ("INT", Signal::SIGINT),
            ("sigquit", Signal::SIGQUIT),
            ("Term", Signal::SIGTERM),
            ("2", Signal::SIGINT),
            ("SIGHUP", Signal::SIGHUP),
        ] {
            assert_eq!(super::parse(text), Ok(want), "{text}");
        }
        assert!(super::parse("KILL").unwrap_err().contains("cannot be handled"));
        assert!(super::parse("TREM").unwrap_err().contains("unknown signal \"TREM\""));
        assert!(super::parse("99").is_err());
    }
}
