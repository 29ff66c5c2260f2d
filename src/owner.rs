//! Who owns a started unit: a process named by its pid and start time,
//! read from `/proc`. The client finds the script that called it; the
//! server checks whether an owner still exists. README.md, "Abandoned
//! units"; PROTOCOL.md, "Owners".

use std::fs;
use std::io;

use crate::state::Owner;

/// The variable through which `run` and `up` name themselves as the owner
/// of what their commands start (`PID:STARTTIME`).
pub const ENV: &str = "UNITSYNC_OWNER";

/// How far up a chain of processes is walked, in case pids are reused
/// into a loop while we walk.
const MAX_DEPTH: usize = 64;

/// What `/proc/PID/stat` says of a process: its parent, its start time,
/// and whether it is a zombie (exited, not yet reaped).
struct Stat {
    ppid: u32,
    start: u64,
    zombie: bool,
}

/// `/proc/PID/stat`: None if there is no such process; an error if it
/// could not be read for another reason (out of descriptors, say) or makes
/// no sense, which says nothing of whether the process exists.
fn stat(pid: u32) -> io::Result<Option<Stat>> {
    let text = match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(text) => text,
        // ESRCH: it exited between the open and the read.
        Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(3) => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    // The command name (field 2) is in parentheses and may hold anything,
    // spaces and parentheses included: the fields after it follow the last
    // `)`. Field 3 is the state, 4 the parent, 22 the start time.
    let rest = text.rfind(')').map(|at| &text[at + 1..]).unwrap_or_default();
    let mut fields = rest.split_whitespace();
    let parsed = (|| {
        let zombie = fields.next()? == "Z";
        let ppid = fields.next()?.parse().ok()?;
        let start = fields.nth(17)?.parse().ok()?;
        Some(Stat { ppid, start, zombie })
    })();
    parsed.map(Some).ok_or_else(|| io::Error::other(format!("/proc/{pid}/stat: no sense")))
}

/// The identity of a running process, if it runs (and `/proc` says so).
pub fn of_pid(pid: u32) -> Option<Owner> {
    match stat(pid) {
        Ok(Some(s)) if !s.zombie => Some(Owner { pid, start: s.start }),
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
        Ok(Some(s)) => !s.zombie && s.start == owner.start,
        Ok(None) => false,
        Err(_) => true,
    }
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

/// The script that ran us, found by walking up from our parent while a
/// process is a fork of its own parent running the same program (same
/// executable and command line): a subshell or a command substitution
/// resolves to the script itself.
pub fn of_caller() -> Option<Owner> {
    let mut pid = std::os::unix::process::parent_id();
    for _ in 0..MAX_DEPTH {
        let here = stat(pid).ok()??;
        if here.ppid <= 1 || !same_program(pid, here.ppid) {
            return Some(Owner { pid, start: here.start });
        }
        pid = here.ppid;
    }
    None
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
        let parent = of_caller().expect("our parent runs");
        assert!(exists(parent));
        // $UNITSYNC_OWNER counts only if it names an ancestor: our parent,
        // not ourselves, and not our parent with another start time.
        assert_eq!(inherited(Some(&to_env(parent))), Some(parent));
        assert_eq!(inherited(Some(&to_env(me))), None);
        let stale = Owner { start: parent.start + 1, ..parent };
        assert_eq!(inherited(Some(&to_env(stale))), None);
        assert_eq!(inherited(None), None);
    }
}
