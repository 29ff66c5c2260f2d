//! Who is who: our own uid, a connected peer's credentials, and group
//! membership. Never calls NSS (getpwnam, getgrnam): a group name is looked
//! up in `/etc/group` directly, and a peer's groups are the kernel's own
//! list in `/proc/PID/status`, so a static binary in a bare root behaves
//! the same as a dynamic one.

use std::fs;
use std::os::unix::net::UnixStream;

use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use nix::unistd::{Gid, Uid, getgroups};

pub fn current_uid() -> u32 {
    Uid::current().as_raw()
}

/// Whether this process is in group `gid`: its effective group, or one of
/// its supplementary groups (the kernel's list, from `getgroups`).
pub fn in_group(gid: u32) -> bool {
    Gid::effective().as_raw() == gid
        || getgroups().is_ok_and(|groups| groups.iter().any(|g| g.as_raw() == gid))
}

/// The process at the other end of a connection.
#[derive(Clone, Copy, Debug)]
pub struct Peer {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
}

pub fn credentials(stream: &UnixStream) -> std::io::Result<Peer> {
    let cred = getsockopt(stream, PeerCredentials)?;
    Ok(Peer { pid: cred.pid(), uid: cred.uid(), gid: cred.gid() })
}

/// Who besides root and the server's own user may use the socket.
#[derive(Clone, Debug)]
pub struct Policy {
    pub owner: u32,
    /// The `--group` gid.
    pub group: Option<u32>,
}

impl Policy {
    pub fn allows(&self, peer: Peer) -> bool {
        if peer.uid == 0 || peer.uid == self.owner {
            return true;
        }
        match self.group {
            Some(group) => peer.gid == group || supplementary_groups(peer.pid).contains(&group),
            None => false,
        }
    }
}

/// Resolves `--group`: a numeric gid, or a name looked up in `/etc/group`.
pub fn group(spec: &str) -> Result<u32, String> {
    if let Ok(gid) = spec.parse::<u32>() {
        return Ok(gid);
    }
    let text = fs::read_to_string("/etc/group").unwrap_or_default();
    text.lines()
        .find_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            (name == spec).then(|| fields.nth(1)?.parse::<u32>().ok())?
        })
        .ok_or_else(|| {
            format!(
                "no group named {spec:?} in /etc/group; give a name from there or a numeric gid"
            )
        })
}

/// The supplementary groups of a live process, as the kernel has them.
fn supplementary_groups(pid: i32) -> Vec<u32> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("Groups:"))
        .map(|groups| groups.split_whitespace().filter_map(|g| g.parse().ok()).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_admits_owner_root_and_group_members() {
        let me = std::process::id() as i32;
        let policy = Policy { owner: 1000, group: None };
        assert!(policy.allows(Peer { pid: me, uid: 1000, gid: 5 }));
        assert!(policy.allows(Peer { pid: me, uid: 0, gid: 5 }));
        assert!(!policy.allows(Peer { pid: me, uid: 1001, gid: 5 }));
        let grouped = Policy { owner: 1000, group: Some(77) };
        assert!(grouped.allows(Peer { pid: me, uid: 1001, gid: 77 }));
        assert!(!grouped.allows(Peer { pid: -1, uid: 1001, gid: 78 }));
        assert_eq!(group("4242"), Ok(4242));
        assert_eq!(group("root"), Ok(0));
        assert!(group("no-such-group-here").unwrap_err().contains("\"no-such-group-here\""));
    }
}
