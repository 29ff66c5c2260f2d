//! The one reader of `/proc/PID/stat` (and of a process's command line):
//! what owners, `up`'s process tree and the tests need to know of a
//! process. proc(5).

use std::fs;
use std::io::{self, Read};

/// What `/proc/PID/stat` says of a process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stat {
    /// Its command name (field 2): the executable's base name, at most 15
    /// bytes, as the kernel keeps it.
    pub comm: String,
    /// Its state letter (field 3): `R`, `S`, `Z` (a zombie: exited, not yet
    /// reaped)...
    pub state: char,
    /// Its parent (field 4); 0 for a process whose parent is outside our
    /// PID namespace.
    pub ppid: u32,
    /// When it started, in clock ticks since boot (field 22): with the pid,
    /// it names one process even if the pid is reused.
    pub start: u64,
}

impl Stat {
    pub fn zombie(&self) -> bool {
        self.state == 'Z'
    }
}

/// `ESRCH`: the process exited between the open and the read.
const ESRCH: i32 = nix::libc::ESRCH;

/// `/proc/PID/stat`: None if there is no such process; an error if it
/// could not be read for another reason (out of descriptors, say) or makes
/// no sense, which says nothing of whether the process exists.
pub fn stat(pid: u32) -> io::Result<Option<Stat>> {
    let gone =
        |e: &io::Error| e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(ESRCH);
    // One `read` into a buffer larger than any stat line (52 numbers and a
    // 16-byte name): the kernel hands the whole line to the first read.
    // Scans read every process's, so this is the stop path's cost:
    // `read_to_string` took a stat and five growing reads per file.
    let mut line = [0u8; STAT_MAX];
    let read = fs::File::open(format!("/proc/{pid}/stat")).and_then(|mut f| f.read(&mut line));
    let len = match read {
        Ok(len) => len,
        Err(e) if gone(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    let text = std::str::from_utf8(&line[..len]).ok().filter(|_| len < STAT_MAX);
    text.and_then(parse)
        .map(Some)
        .ok_or_else(|| io::Error::other(format!("/proc/{pid}/stat: no sense")))
}

/// More than a `/proc/PID/stat` line can hold.
const STAT_MAX: usize = 2048;

/// Parses a `/proc/PID/stat` line. The command name (field 2) is in
/// parentheses and may hold anything, spaces and parentheses included: the
/// fields after it follow the last `)`.
fn parse(text: &str) -> Option<Stat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_owned();
    let mut fields = text[close + 1..].split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    // Fields 5 to 21 lie between the parent and the start time.
    let start = fields.nth(17)?.parse().ok()?;
    Some(Stat { comm, state, ppid, start })
}

/// Every live process below `root` (zombies left out), at any depth,
/// from one read of `/proc`; None without `/proc`.
pub fn descendants(root: u32) -> Option<Vec<u32>> {
    let mut edges: Vec<(u32, u32)> = Vec::new();
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        if let Ok(Some(stat)) = stat(pid)
            && !stat.zombie()
        {
            edges.push((stat.ppid, pid));
        }
    }
    Some(below(edges, root))
}

/// The processes below `root` in a tree given as `(parent, child)` edges.
fn below(mut edges: Vec<(u32, u32)>, root: u32) -> Vec<u32> {
    edges.sort_unstable();
    let mut found = Vec::new();
    let mut next = vec![root];
    while let Some(parent) = next.pop() {
        let first = edges.partition_point(|&(p, _)| p < parent);
        for &(_, child) in edges[first..].iter().take_while(|&&(p, _)| p == parent) {
            found.push(child);
            next.push(child);
        }
    }
    found
}

/// The zombies whose parent is `parent`; empty without `/proc`.
pub fn zombie_children(parent: u32) -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else { return Vec::new() };
    dir.flatten()
        .filter_map(|entry| entry.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|&pid| stat(pid).ok().flatten().is_some_and(|s| s.zombie() && s.ppid == parent))
        .collect()
}

/// A process's arguments (`/proc/PID/cmdline`), argv[0] first; None if it
/// cannot be read (it exited, or it is a kernel thread with none).
pub fn cmdline(pid: u32) -> Option<Vec<String>> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    if raw.is_empty() {
        return None;
    }
    let raw = raw.strip_suffix(b"\0").unwrap_or(&raw);
    Some(raw.split(|&b| b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descendants_are_found_at_any_depth() {
        let mut found = below(vec![(3, 4), (1, 2), (9, 10), (1, 3), (0, 1), (256, 5)], 1);
        found.sort_unstable();
        assert_eq!(found, [2, 3, 4]);
    }

    #[test]
    fn a_stat_line_is_read_past_a_command_name_of_any_shape() {
        let line = "26775 (a) (b c) S 12 26775 12 0 -1 4194560 120 0 0 0 0 0 0 0 20 0 1 0 \
                    98765 2416640 233 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0";
        let stat = parse(line).expect("a valid line");
        assert_eq!(stat, Stat { comm: "a) (b c".into(), state: 'S', ppid: 12, start: 98765 });
        assert!(!stat.zombie());
        assert_eq!(parse("12 (x) Z"), None);
        assert_eq!(parse(""), None);
    }

    #[test]
    fn this_process_reads_as_itself() {
        let me = stat(std::process::id()).unwrap().expect("we run");
        assert_eq!(me.ppid, std::os::unix::process::parent_id());
        assert!(!me.zombie());
        assert!(cmdline(std::process::id()).is_some_and(|args| !args.is_empty()));
        assert_eq!(stat(u32::MAX).unwrap(), None);
    }
}
