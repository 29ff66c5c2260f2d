//! Who owns a started unit: a process named by its pid and start time,
//! read from `/proc`. The client finds the script that called it; the
//! server checks whether an owner still exists. README.md, "Abandoned
//! units"; PROTOCOL.md, "Owners".

use std::fs;

use crate::state::Owner;

/// The variable through which `run` and `up` name themselves as the owner
/// of what their commands start (`PID:STARTTIME`).
pub const ENV: &str = "UNITSYNC_OWNER";

/// What `/proc/PID/stat` says of a process: its parent, its start time,
/// and whether it is a zombie (exited, not yet reaped).
struct Stat {
    ppid: u32,
    start: u64,
    zombie: bool,
}

fn stat(pid: u32) -> Option<Stat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold anything,
    // spaces and parentheses included: the fields after it follow the last
    // `)`. Field 3 is the state, 4 the parent, 22 the start time.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(Stat {
        zombie: *fields.first()? == "Z",
        ppid: fields.get(1)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
    })
}

/// The identity of a running process, if it runs.
pub fn of_pid(pid: u32) -> Option<Owner> {
    stat(pid).filter(|s| !s.zombie).map(|s| Owner { pid, start: s.start })
}

/// This process, as an owner of what it runs.
pub fn me() -> Option<Owner> {
    of_pid(std::process::id())
}

/// Whether `owner` still exists: its pid runs, with the same start time.
/// If `/proc` cannot be read at all, every owner is taken to exist: no
/// unit is ever failed for want of a way to look.
pub fn exists(owner: Owner) -> bool {
    if fs::metadata("/proc/self/stat").is_err() {
        return true;
    }
    of_pid(owner.pid) == Some(owner)
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

/// The owner of what this client starts: [`ENV`] if it names one, else
/// the script that ran us, found by walking up from our parent while a
/// process is a fork of its own parent running the same program (same
/// executable and command line): a subshell or a command substitution
/// resolves to the script itself.
pub fn of_caller(env: Option<&str>) -> Option<Owner> {
    if let Some(owner) = env.and_then(from_env) {
        return Some(owner);
    }
    let mut pid = nix::unistd::getppid().as_raw() as u32;
    let mut seen = 0;
    loop {
        let here = stat(pid)?;
        // Bounded, in case a pid is reused into a loop while we walk.
        seen += 1;
        if here.ppid <= 1 || seen > 64 || !same_program(pid, here.ppid) {
            return Some(Owner { pid, start: here.start });
        }
        pid = here.ppid;
    }
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
        assert_eq!(of_caller(Some(&to_env(me))), Some(me));
        // Our parent runs another program (cargo's test runner or a shell).
        let parent = of_caller(None).expect("our parent runs");
        assert!(exists(parent));
    }
}
