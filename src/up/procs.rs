//! The processes `up` owns: starting them with their output prefixed,
//! reaping them, and finding every one of them through `/proc`, including
//! what scripts daemonized with `setsid` or a double fork (`up` is a child
//! subreaper, so those are reparented to it, not to init).
//!
//! Where `/proc` is missing (a bare chroot), the functions that need it say
//! so with `None` and the callers fall back to process groups.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::bell;
use crate::exit::Ended;
use crate::procfs;
use crate::signals;
use crate::threads;

/// The output relays of one child: how many are still open, and the pipes
/// they read (by inode), to tell whether anyone else still holds them.
pub struct Relays {
    live: Arc<AtomicUsize>,
    pipes: Vec<u64>,
}

impl Relays {
    /// Whether every relay has read to the end.
    pub fn done(&self) -> bool {
        self.live.load(Ordering::SeqCst) == 0
    }

    /// Whether a live process other than `up` itself still holds a pipe
    /// whose relay is open; None without `/proc`. Once the child is gone
    /// and nobody holds its pipes, its relays reach the end promptly.
    pub fn held_by_others(&self) -> Option<bool> {
        let me = std::process::id();
        let links: Vec<String> = self.pipes.iter().map(|ino| format!("pipe:[{ino}]")).collect();
        Some(procfs::descendants(me)?.into_iter().any(|pid| {
            fs::read_dir(format!("/proc/{pid}/fd")).into_iter().flatten().flatten().any(|fd| {
                fs::read_link(fd.path())
                    .is_ok_and(|l| links.iter().any(|p| l.as_os_str() == p.as_str()))
            })
        }))
    }
}

/// Starts a script in a process group of its own, with a clean signal
/// state, its stdin /dev/null and its output lines prefixed with `label`.
/// Returns its pid; the caller reaps it with [`reap`] (the `Child` handle
/// is dropped: its status would be stolen by the reaping loop anyway).
pub fn spawn_script(command: &mut Command, label: &str) -> io::Result<(Pid, Relays)> {
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    signals::reset_in_child(command, true);
    let mut child = command.spawn()?;
    let pid = Pid::from_raw(child.id() as i32);
    let mut relays = Relays { live: Arc::new(AtomicUsize::new(0)), pipes: Vec::new() };
    let streams: [(Option<OwnedFd>, bool); 2] = [
        (child.stdout.take().map(OwnedFd::from), false),
        (child.stderr.take().map(OwnedFd::from), true),
    ];
    for (stream, to_stderr) in streams {
        let Some(fd) = stream else { continue };
        let file = File::from(fd);
        if let Ok(meta) = file.metadata() {
            relays.pipes.push(meta.ino());
        }
        relay(file, label.to_owned(), to_stderr, &relays.live);
    }
    Ok((pid, relays))
}

/// Starts the main command with a clean signal state, in `up`'s process
/// group and with `up`'s stdin (a shell as the container's command needs
/// its terminal). Reaped like a script.
pub fn spawn_main(command: &mut Command) -> io::Result<Pid> {
    signals::reset_in_child(command, false);
    let child = command.spawn()?;
    Ok(Pid::from_raw(child.id() as i32))
}

/// Copies a child's output line by line, each line prefixed and written in
/// one call, so lines of different scripts never interleave.
fn relay(
    stream: impl Read + Send + 'static,
    label: String,
    to_stderr: bool,
    live: &Arc<AtomicUsize>,
) {
    live.fetch_add(1, Ordering::SeqCst);
    let counter = live.clone();
    let spawned = threads::spawn("relay", 64 * 1024, move || {
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
            if !line.ends_with(b"\n") {
                line.push(b'\n');
            }
            let mut out = label.clone().into_bytes();
            out.extend_from_slice(&line);
            let _ = match to_stderr {
                true => io::stderr().lock().write_all(&out),
                false => io::stdout().lock().write_all(&out),
            };
            line.clear();
        }
        // `up` waits for a script's output to end before it is settled.
        if counter.fetch_sub(1, Ordering::SeqCst) == 1 {
            bell::ring();
        }
    });
    if spawned.is_err() {
        live.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Reaps every process that has ended, without waiting. Returns their pids
/// with how each ended, and whether any child process
/// is left at all.
pub fn reap() -> (Vec<(Pid, Ended)>, bool) {
    let mut ended = Vec::new();
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => ended.push((pid, Ended::Exited(code))),
            Ok(WaitStatus::Signaled(pid, signal, _)) => {
                ended.push((pid, Ended::Killed(signal as i32)))
            }
            Ok(WaitStatus::StillAlive) => return (ended, true),
            Err(_) => return (ended, false),
            Ok(_) => continue,
        }
    }
}

/// Signals a process group, or the process alone if it leads none.
pub fn signal_group(pid: Pid, signal: Signal) {
    if killpg(pid, signal).is_err() {
        let _ = kill(pid, signal);
    }
}

/// Signals `pid`'s process group and every descendant of `pid`, wherever
/// they moved to (a command `run` put in a group of its own, say).
///
/// The descendants are taken before anything is signalled: a `run`
/// wrapper killed first would have its command re-parented to `up` before
/// the tree was read, and the SIGKILL would miss the very service it was
/// for (README.md, "As a container's init").
pub fn signal_tree(pid: Pid, signal: Signal) {
    let descendants = procfs::descendants(pid.as_raw() as u32);
    signal_group(pid, signal);
    for child in descendants.into_iter().flatten() {
        let _ = kill(Pid::from_raw(child as i32), signal);
    }
}

/// Every live descendant of `up` (zombies excluded); None without `/proc`.
pub fn left_behind() -> Option<Vec<Pid>> {
    let pids = procfs::descendants(std::process::id())?;
    Some(pids.into_iter().map(|p| Pid::from_raw(p as i32)).collect())
}
