//! Who owns a started unit: a process named by its pid and start time,
//! read from `/proc`. The client finds the script that called it; the
//! server checks whether an owner still exists. README.md, "Abandoned
//! units"; PROTOCOL.md, "Owners".

use std::fs;

use crate::procfs::{self, stat};
use crate::state::{Owner, Owners};

/// The variable through which `run` and `up` name themselves as the owner
/// of what their commands start (`PID:STARTTIME`).
pub const ENV: &str = "UNITSYNC_OWNER";

/// How far up a chain of processes is walked, in case pids are reused
/// into a loop while we walk.
const MAX_DEPTH: usize = 64;

/// The identity of a running process, if it runs (and `/proc` says so).
pub fn of_pid(pid: u32) -> Option<Owner> {
    match stat(pid) {
        Ok(Some(s)) if !s.zombie() => Some(Owner { pid, start: s.start }),
        _ => None,
    }
}

/// This process, as an owner of what it runs.
pub fn me() -> Option<Owner> {
    of_pid(std::process::id())
}

/// Whether `owner` still exists: its pid runs, with the same start time.
/// Only a sure "no" counts: if `/proc` cannot be read at all, or not for
/// this pid right now, the owner is taken to exist, so that no unit is
/// ever failed for want of a way to look.
pub fn exists(owner: Owner) -> bool {
    if fs::metadata("/proc/self/stat").is_err() {
        return true;
    }
    match stat(owner.pid) {
        Ok(Some(s)) => !s.zombie() && s.start == owner.start,
        Ok(None) => false,
        Err(_) => true,
    }
}

/// Whether any process of a unit's owners still exists (see [`exists`]).
pub fn any_exists(owners: &Owners) -> bool {
    owners.all().any(exists)
}

/// `PID:STARTTIME`, as [`ENV`] holds it.
pub fn to_env(owner: Owner) -> String {
    format!("{}:{}", owner.pid, owner.start)
}

/// Parses [`ENV`]'s value; None if it is not `PID:STARTTIME`.
pub fn from_env(text: &str) -> Option<Owner> {
    let (pid, start) = text.split_once(':')?;
    Some(Owner { pid: pid.parse().ok()?, start: start.parse().ok()? })
}

/// The owner [`ENV`] names, if it is one of our ancestors: a process that
/// outlived the `run` or `up` that set it (a daemon) inherited a stale one.
pub fn inherited(env: Option<&str>) -> Option<Owner> {
    let owner = env.and_then(from_env)?;
    let mut pid = std::os::unix::process::parent_id();
    for _ in 0..MAX_DEPTH {
        let here = stat(pid).ok()??;
        if pid == owner.pid {
            return (here.start == owner.start).then_some(owner);
        }
        if here.ppid <= 1 {
            break;
        }
        pid = here.ppid;
    }
    None
}

/// The script that ran us, and the processes between it and us. The walk
/// starts at our parent and goes up while a process is a fork of its own
/// parent running the same program (same executable and command line: a
/// subshell or a command substitution), or a wrapper that waits for what
/// it runs (`timeout`, `sudo`, `sh -c`...: see [`is_wrapper`]). Every
/// process it went through is kept: the unit is abandoned only when none
/// of them lives, so a background subshell that outlives its script still
/// holds the unit (README.md, "Abandoned units").
pub fn of_caller() -> Option<Owners> {
    let mut pid = std::os::unix::process::parent_id();
    let mut chain = Vec::new();
    for _ in 0..MAX_DEPTH {
        let here = stat(pid).ok()??;
        chain.push(Owner { pid, start: here.start });
        let up = here.ppid > 1 && (same_program(pid, here.ppid) || is_wrapper(pid, &here.comm));
        if !up {
            let owner = chain.pop()?;
            return Some(Owners { owner, name: name(pid, &here.comm), via: chain });
        }
        pid = here.ppid;
    }
    None
}

/// Programs that run a command as their child and wait for it, so that
/// their caller is the script. (Those that exec what they run, as `nice`
/// and `env` do, are never seen: the command takes their pid.)
const WRAPPERS: [&str; 13] = [
    "timeout", "flock", "time", "nice", "ionice", "stdbuf", "chrt", "taskset", "setpriv", "su",
    "sudo", "runuser", "xargs",
];

/// Shells whose `-c` runs a command line handed to them by a caller.
const SHELLS: [&str; 8] = ["sh", "bash", "dash", "ash", "busybox", "zsh", "ksh", "mksh"];

/// Whether process `pid`, named `comm`, is a wrapper to walk past: one of
/// [`WRAPPERS`], or a shell run as `sh -c` (its command line is its
/// caller's, the caller is the script).
fn is_wrapper(pid: u32, comm: &str) -> bool {
    if WRAPPERS.contains(&comm) {
        return true;
    }
    if !SHELLS.contains(&comm) {
        return false;
    }
    let Some(args) = procfs::cmdline(pid) else { return false };
    shell_dash_c(&args)
}

/// A shell's arguments after its name (and after the applet's name, for
/// `busybox sh`).
fn shell_args(args: &[String]) -> &[String] {
    match args {
        [busybox, _applet, rest @ ..] if base(busybox) == "busybox" => rest,
        [_, rest @ ..] => rest,
        [] => &[],
    }
}

/// Whether a shell's arguments say `-c` before its first operand
/// (`sh -c`, `bash -ec`, `busybox sh -c`).
fn shell_dash_c(args: &[String]) -> bool {
    for arg in shell_args(args) {
        match arg.strip_prefix('-') {
            // `--login`, `--norc` and the like.
            Some(long) if long.starts_with('-') && long.len() > 1 => {}
            Some(flags) if !flags.is_empty() => {
                if flags.contains('c') {
                    return true;
                }
            }
            _ => return false,
        }
    }
    false
}

/// The last part of a path.
fn base(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// What the abandoned reason calls the owner: the script a shell runs
/// (`warm.sh` for `sh ./warm.sh`), else the command name. At most 64
/// bytes, so a reason stays one short line.
fn name(pid: u32, comm: &str) -> Option<String> {
    let args = procfs::cmdline(pid).unwrap_or_default();
    let script = if SHELLS.contains(&comm) && !shell_dash_c(&args) {
        shell_args(&args).iter().find(|a| !a.starts_with('-')).map(|a| base(a))
    } else {
        None
    };
    let name = script.unwrap_or(comm);
    let name: String = name.chars().filter(|c| !c.is_control()).take(64).collect();
    (!name.is_empty()).then_some(name)
}

/// Whether two processes run the same executable with the same command line.
fn same_program(a: u32, b: u32) -> bool {
    let exe = |pid: u32| fs::read_link(format!("/proc/{pid}/exe")).ok();
    let cmdline = |pid: u32| fs::read(format!("/proc/{pid}/cmdline")).ok();
    match (exe(a), exe(b)) {
        (Some(x), Some(y)) if x == y => {}
        _ => return false,
    }
    matches!((cmdline(a), cmdline(b)), (Some(x), Some(y)) if x == y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_owner_is_its_pid_and_start_time() {
        let me = me().expect("this process runs");
        assert_eq!(me.pid, std::process::id());
        assert!(exists(me));
        assert!(!exists(Owner { start: me.start + 1, ..me }));
        assert_eq!(from_env(&to_env(me)), Some(me));
        assert_eq!(from_env("12"), None);
        assert_eq!(from_env("x:1"), None);
        // Our parent runs another program (cargo's test runner or a shell).
        let parent = of_caller().expect("our parent runs").owner;
        assert!(exists(parent));
        // $UNITSYNC_OWNER counts only if it names an ancestor: our parent,
        // not ourselves, and not our parent with another start time.
        assert_eq!(inherited(Some(&to_env(parent))), Some(parent));
        assert_eq!(inherited(Some(&to_env(me))), None);
        let stale = Owner { start: parent.start + 1, ..parent };
        assert_eq!(inherited(Some(&to_env(stale))), None);
        assert_eq!(inherited(None), None);
    }

    #[test]
    fn sh_dash_c_is_a_wrapper_and_a_script_file_is_not() {
        let args = |line: &str| line.split(' ').map(str::to_owned).collect::<Vec<_>>();
        assert!(shell_dash_c(&args("sh -c x")));
        assert!(shell_dash_c(&args("/bin/bash -ec x")));
        assert!(shell_dash_c(&args("bash --norc -c x")));
        assert!(shell_dash_c(&args("busybox sh -c x")));
        assert!(!shell_dash_c(&args("sh ./warm.sh -c")));
        assert!(!shell_dash_c(&args("sh")));
        assert!(!shell_dash_c(&args("dash -e script")));
        assert!(!shell_dash_c(&args("busybox sh warm.sh")));
        assert_eq!(shell_args(&args("busybox sh -e warm.sh")), &args("-e warm.sh")[..]);
    }
}
