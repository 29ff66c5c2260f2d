//! Who is who: our own uid, a connected peer's credentials, and group
//! membership. Reads `/etc/passwd` and `/etc/group` directly instead of
//! calling NSS, so a static binary in a bare root behaves the same.

use std::fs;
use std::os::unix::net::UnixStream;

use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use nix::unistd::Uid;

pub fn current_uid() -> u32 {
    Uid::current().as_raw()
}

/// The uid and gid of the process at the other end of `stream`.
pub fn credentials(stream: &UnixStream) -> std::io::Result<(u32, u32)> {
    let cred = getsockopt(stream, PeerCredentials)?;
    Ok((cred.uid(), cred.gid()))
}

/// Who besides root and the server's own user may use the socket.
#[derive(Clone, Debug)]
pub struct Policy {
    pub owner: u32,
    /// The `--group`, with the names of its listed members.
    pub group: Option<(u32, Vec<String>)>,
}

impl Policy {
    pub fn allows(&self, uid: u32, gid: u32) -> bool {
        if uid == 0 || uid == self.owner {
            return true;
        }
        match &self.group {
            Some((group, members)) => {
                gid == *group || user_name(uid).is_some_and(|name| members.contains(&name))
            }
            None => false,
        }
    }
}

/// Resolves `--group`: a number, or a name looked up in `/etc/group`.
/// Returns the gid and the group's member list.
pub fn group(spec: &str) -> Result<(u32, Vec<String>), String> {
    let text = fs::read_to_string("/etc/group").unwrap_or_default();
    let entries = text.lines().filter_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        let gid = fields.get(2)?.parse::<u32>().ok()?;
        let members = fields.get(3).map_or(Vec::new(), |m| {
            m.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect()
        });
        Some((fields[0].to_owned(), gid, members))
    });
    let wanted = spec.parse::<u32>().ok();
    for (name, gid, members) in entries {
        if name == spec || wanted == Some(gid) {
            return Ok((gid, members));
        }
    }
    match wanted {
        Some(gid) => Ok((gid, Vec::new())),
        None => Err(format!(
            "no group named {spec:?} in /etc/group; give a group name from there or a numeric gid"
        )),
    }
}

fn user_name(uid: u32) -> Option<String> {
    let text = fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id = fields.nth(1)?.parse::<u32>().ok()?;
        (id == uid).then(|| name.to_owned())
    })
}
