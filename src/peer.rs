//! Who is who: our own uid, a connected peer's credentials, and group
//! membership. Never calls NSS (getpwnam, getgrnam): a group name is looked
//! up in `/etc/group` directly, and a peer's groups are the kernel's own
//! list (`SO_PEERGROUPS`), so a static binary in a bare root behaves the
//! same as a dynamic one. Nothing here relies on the peer's pid, which is
//! 0 for a peer in another PID namespace (another container of a pod).

use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

use nix::errno::Errno;
use nix::libc;

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

/// The process at the other end of a connection, as it was when it
/// connected.
#[derive(Clone, Debug)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    /// Its supplementary groups.
    pub groups: Vec<u32>,
    /// Its pid as our PID namespace sees it: 0 if it is in another one
    /// that ours does not contain.
    pub pid: i32,
}

pub fn credentials(stream: &UnixStream) -> std::io::Result<Peer> {
    let cred = getsockopt(stream, PeerCredentials)?;
    let groups = peer_groups(stream)?;
    Ok(Peer { uid: cred.uid(), gid: cred.gid(), groups, pid: cred.pid() })
}

/// `SO_PEERGROUPS` (Linux 4.13), which the libc crate does not export
/// for every target: 59 everywhere but on SPARC.
#[cfg(not(any(target_arch = "sparc", target_arch = "sparc64")))]
const SO_PEERGROUPS: libc::c_int = 59;
#[cfg(any(target_arch = "sparc", target_arch = "sparc64"))]
const SO_PEERGROUPS: libc::c_int = 0x3d;

/// The supplementary groups the peer had when it connected, from the
/// kernel: unlike `/proc/PID/status`, this holds whatever PID namespace
/// the peer runs in, and cannot be fooled by a pid reused meanwhile.
fn peer_groups(stream: &UnixStream) -> std::io::Result<Vec<u32>> {
    let mut groups: Vec<libc::gid_t> = vec![0; 32];
    loop {
        let size = std::mem::size_of::<libc::gid_t>();
        let mut len = (groups.len() * size) as libc::socklen_t;
        // SAFETY: the kernel writes at most `len` bytes into `groups`,
        // which holds that many, and sets `len` to what it wrote (or, with
        // ERANGE, to what it needs).
        let rc = unsafe {
            libc::getsockopt(
                stream.as_raw_fd(),
                libc::SOL_SOCKET,
                SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let needed = len as usize / size;
        match (rc, Errno::last()) {
            (0, _) => {
                groups.truncate(needed);
                return Ok(groups);
            }
            (_, Errno::ERANGE) if needed > groups.len() => groups.resize(needed, 0),
            (_, errno) => return Err(errno.into()),
        }
    }
}

/// Who besides root and the server's own user may use the socket.
#[derive(Clone, Debug)]
pub struct Policy {
    pub owner: u32,
    /// The `--group` gid.
    pub group: Option<u32>,
}

impl Policy {
    pub fn allows(&self, peer: &Peer) -> bool {
        if peer.uid == 0 || peer.uid == self.owner {
            return true;
        }
        match self.group {
            Some(group) => peer.gid == group || peer.groups.contains(&group),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_admits_owner_root_and_group_members() {
        let peer = |uid, gid, groups: &[u32]| Peer { uid, gid, groups: groups.to_vec(), pid: 1 };
        let policy = Policy { owner: 1000, group: None };
        assert!(policy.allows(&peer(1000, 5, &[])));
        assert!(policy.allows(&peer(0, 5, &[])));
        assert!(!policy.allows(&peer(1001, 5, &[77])));
        let grouped = Policy { owner: 1000, group: Some(77) };
        assert!(grouped.allows(&peer(1001, 77, &[])));
        assert!(grouped.allows(&peer(1001, 78, &[76, 77])));
        assert!(!grouped.allows(&peer(1001, 78, &[76])));
        assert_eq!(group("4242"), Ok(4242));
        assert_eq!(group("root"), Ok(0));
        assert!(group("no-such-group-here").unwrap_err().contains("\"no-such-group-here\""));
    }

    #[test]
    fn a_peer_has_the_groups_it_connected_with() {
        let (a, _b) = UnixStream::pair().unwrap();
        let peer = credentials(&a).unwrap();
        assert_eq!((peer.uid, peer.gid), (current_uid(), Gid::effective().as_raw()));
        assert_eq!(peer.pid as u32, std::process::id());
        let mut mine: Vec<u32> = getgroups().unwrap().iter().map(|g| g.as_raw()).collect();
        let mut theirs = peer.groups.clone();
        mine.sort_unstable();
        theirs.sort_unstable();
        assert_eq!(theirs, mine);
    }
}
