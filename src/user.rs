//! Who a command runs as: `run --user NAME[:GROUP]` or `UID[:GID]`, and
//! `user=` in an `up` header (README.md, "Running as another user").
//!
//! Names are read from `/etc/passwd` and `/etc/group` directly, never
//! through NSS (`getpwnam`, `initgroups`), so that the static binary in a
//! busybox-only root finds the same users as a dynamic one (the "No NSS"
//! invariant of docs/ARCHITECTURE.md). The primary group is the user's in
//! `/etc/passwd` unless GROUP says otherwise; the supplementary groups are
//! every group of `/etc/group` that lists the user by name, as
//! `initgroups(user, primary)` would find them in those files (so with
//! GROUP, the passwd group is not kept unless a group lists the user). A numeric UID that is not
//! in `/etc/passwd` is allowed, as Docker allows it: its home is `/` and,
//! without GID, its group is 0, Docker's and OpenShift's choice.
//!
//! The switch itself happens in the child between fork and exec: the
//! groups, then the group, then the user (the other way round, the user
//! would no longer be allowed to change its groups).

use std::fmt;
use std::fs;
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::libc;

pub const PASSWD: &str = "/etc/passwd";
pub const GROUP: &str = "/etc/group";

/// `NAME[:GROUP]` or `UID[:GID]` as written, checked for its form only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    pub user: String,
    pub group: Option<String>,
}

impl Spec {
    pub fn parse(text: &str) -> Result<Spec, String> {
        let bad = |why: &str| {
            format!("invalid user {text:?}: {why}; write it as NAME[:GROUP] or UID[:GID]")
        };
        let (user, group) = match text.split_once(':') {
            Some((user, group)) => (user, Some(group)),
            None => (text, None),
        };
        let name_ok =
            |s: &str| !s.is_empty() && !s.contains([':', ',']) && !s.contains(char::is_whitespace);
        if !name_ok(user) {
            return Err(bad("the user is empty, or holds a space, ',' or ':'"));
        }
        if group.is_some_and(|g| !name_ok(g)) {
            return Err(bad("the group is empty, or holds a space, ',' or ':'"));
        }
        Ok(Spec { user: user.to_owned(), group: group.map(str::to_owned) })
    }
}

impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.group {
            Some(group) => write!(f, "{}:{group}", self.user),
            None => f.write_str(&self.user),
        }
    }
}

/// A user resolved: what the child switches to, and its environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    /// Every group the child holds, the primary one first.
    pub groups: Vec<u32>,
    /// `$USER` and `$LOGNAME`: the name, or the number without one.
    pub name: String,
    /// `$HOME`: from `/etc/passwd`, `/` without an entry or a home there.
    pub home: String,
    /// Whether the child switches ids: not when unitsync, not root, is
    /// already that user (a container with a non-root `USER`).
    pub switch: bool,
}

/// One line of `/etc/passwd`: name, uid, gid, home.
struct Account<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

fn accounts(passwd: &str) -> impl Iterator<Item = Account<'_>> {
    passwd.lines().filter_map(|line| {
        // name:password:uid:gid:gecos:home:shell; malformed lines (and
        // comments, which some images have) are skipped, as libc does.
        let fields: Vec<&str> = line.split(':').collect();
        let [name, _, uid, gid, _, home, ..] = fields[..] else { return None };
        let (uid, gid) = (uid.parse().ok()?, gid.parse().ok()?);
        (!name.is_empty() && !name.starts_with('#')).then_some(Account { name, uid, gid, home })
    })
}

/// One line of `/etc/group`: name, gid, members.
fn groups(group: &str) -> impl Iterator<Item = (&str, u32, Vec<&str>)> {
    group.lines().filter_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        let [name, _, gid, members, ..] = fields[..] else { return None };
        let members = members.split(',').map(str::trim).filter(|m| !m.is_empty()).collect();
        (!name.is_empty() && !name.starts_with('#')).then_some((name, gid.parse().ok()?, members))
    })
}

/// Resolves `spec` against the text of `/etc/passwd` and `/etc/group`.
/// The error names the user or group and the file it is missing from.
pub fn resolve(spec: &Spec, passwd: &str, group: &str) -> Result<User, String> {
    let number = spec.user.parse::<u32>().ok();
    let account = match number {
        Some(uid) => accounts(passwd).find(|a| a.uid == uid),
        None => accounts(passwd).find(|a| a.name == spec.user),
    };
    let (uid, gid, name, home) = match (&account, number) {
        (Some(a), _) => (a.uid, a.gid, a.name.to_owned(), a.home),
        (None, Some(uid)) => (uid, 0, uid.to_string(), "/"),
        (None, None) => return Err(format!("no user {:?} in {PASSWD}", spec.user)),
    };
    let gid = match spec.group.as_deref() {
        None => gid,
        Some(wanted) => match wanted.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => match groups(group).find(|(name, ..)| *name == wanted) {
                Some((_, gid, _)) => gid,
                None => return Err(format!("no group {wanted:?} in {GROUP}")),
            },
        },
    };
    let mut all = vec![gid];
    if account.is_some() {
        for (_, id, members) in groups(group) {
            if members.contains(&name.as_str()) && !all.contains(&id) {
                all.push(id);
            }
        }
    }
    let home = if home.is_empty() { "/" } else { home };
    Ok(User { uid, gid, groups: all, name, home: home.to_owned(), switch: true })
}

/// Resolves `spec` on this system, before anything runs: refused when
/// the user or the group does not exist, and unless we are root (only
/// root may switch users) or already that user and group (README.md,
/// "Running as another user": a
/// container with a non-root `USER`; then nothing is switched, and only
/// the environment is set). A missing `/etc/group` is no group at all;
/// a missing `/etc/passwd` allows numeric ids only.
pub fn lookup(spec: &Spec) -> Result<User, String> {
    let read = |path: &str| match fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(format!("cannot read {path} to find user {spec}: {e}")),
    };
    let mut user = resolve(spec, &read(PASSWD)?, &read(GROUP)?)?;
    let (euid, egid) = (nix::unistd::geteuid().as_raw(), nix::unistd::getegid().as_raw());
    if euid != 0 {
        let already = user.uid == euid && (spec.group.is_none() || user.gid == egid);
        if !already {
            return Err(format!(
                "running as user {spec} needs root (or to be that user already), and unitsync \
                 runs as uid {euid}"
            ));
        }
        user.switch = false;
    }
    Ok(user)
}

/// Makes `command` run as `user`: its groups, group and user are switched
/// between fork and exec (in that order), and `HOME`, `USER` and `LOGNAME`
/// are set (only those, for a user we already are). Call it last of the `pre_exec` hooks, so that the others
/// (process group, descriptors) still run as root.
pub fn switch_in_child(command: &mut Command, user: &User) {
    command.env("HOME", &user.home).env("USER", &user.name).env("LOGNAME", &user.name);
    if !user.switch {
        return;
    }
    let groups: Vec<libc::gid_t> = user.groups.clone();
    let (uid, gid) = (user.uid, user.gid);
    // SAFETY: setgroups, setgid and setuid are async-signal-safe, and the
    // closure allocates nothing: the list was made before the fork.
    unsafe {
        command.pre_exec(move || {
            if libc::setgroups(groups.len(), groups.as_ptr()) != 0
                || libc::setgid(gid) != 0
                || libc::setuid(uid) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD_TEXT: &str = "\
root:x:0:0:root:/root:/bin/sh
# a comment some images have
daemon:x:1:1::/usr/sbin:/usr/sbin/nologin
postgres:x:70:70:PostgreSQL:/var/lib/postgresql:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
broken line
nohome:x:1000:1000:::/bin/sh
";
    const GROUP_TEXT: &str = "\
root:x:0:
daemon:x:1:
postgres:x:70:
ssl-cert:x:101:postgres
video:x:44:nohome, postgres
nogroup:x:65534:
";

    fn user(text: &str) -> Result<User, String> {
        resolve(&Spec::parse(text)?, PASSWD_TEXT, GROUP_TEXT)
    }

    #[test]
    fn parses_name_or_number_with_an_optional_group() {
        let spec = |s: &str| Spec::parse(s).map(|s| (s.user, s.group));
        assert_eq!(spec("postgres"), Ok(("postgres".into(), None)));
        assert_eq!(spec("1000:100"), Ok(("1000".into(), Some("100".into()))));
        assert_eq!(spec("web:www-data"), Ok(("web".into(), Some("www-data".into()))));
        assert_eq!(Spec::parse("web:www-data").unwrap().to_string(), "web:www-data");
        for bad in ["", ":g", "u:", "a b", "u:g:h", "a,b"] {
            let err = Spec::parse(bad).unwrap_err();
            assert!(err.starts_with(&format!("invalid user {bad:?}: ")), "{err}");
            assert!(err.ends_with("write it as NAME[:GROUP] or UID[:GID]"), "{err}");
        }
    }

    #[test]
    fn a_name_takes_its_ids_home_and_every_group_listing_it() {
        let postgres = user("postgres").unwrap();
        assert_eq!((postgres.uid, postgres.gid), (70, 70));
        assert_eq!(postgres.groups, [70, 101, 44]);
        assert_eq!(
            (postgres.name.as_str(), postgres.home.as_str()),
            ("postgres", "/var/lib/postgresql")
        );
        let nobody = user("nobody").unwrap();
        assert_eq!((nobody.uid, nobody.gid, nobody.groups), (65534, 65534, vec![65534]));
        // An empty home field is `/`.
        assert_eq!(user("nohome").unwrap().home, "/");
        assert_eq!(user("nohome").unwrap().groups, [1000, 44]);
    }

    #[test]
    fn a_group_replaces_the_primary_one_and_keeps_the_others() {
        // As initgroups(user, group) does: the passwd group is not kept.
        let u = user("postgres:nogroup").unwrap();
        assert_eq!((u.gid, u.groups), (65534, vec![65534, 101, 44]));
        let u = user("postgres:ssl-cert").unwrap();
        assert_eq!((u.gid, u.groups), (101, vec![101, 44]));
        // A number needs no entry.
        assert_eq!(user("daemon:4242").unwrap().groups, [4242]);
    }

    #[test]
    fn a_number_is_its_entry_or_itself() {
        // In the file: its name and home.
        let u = user("70").unwrap();
        assert_eq!((u.uid, u.gid, u.name.as_str()), (70, 70, "postgres"));
        // Not in the file: allowed, home `/`, group 0 unless given.
        let u = user("4242").unwrap();
        assert_eq!(
            (u.uid, u.gid, u.groups, u.name, u.home),
            (4242, 0, vec![0], "4242".into(), "/".into())
        );
        let u = user("4242:4343").unwrap();
        assert_eq!((u.uid, u.gid, u.groups), (4242, 4343, vec![4343]));
    }

    #[test]
    fn an_unknown_user_or_group_names_the_file() {
        assert_eq!(user("ghost").unwrap_err(), "no user \"ghost\" in /etc/passwd");
        assert_eq!(user("postgres:ghosts").unwrap_err(), "no group \"ghosts\" in /etc/group");
        // A comment is no user.
        assert!(user("#").is_err());
        assert_eq!(
            resolve(&Spec::parse("root").unwrap(), "", "").unwrap_err(),
            "no user \"root\" in /etc/passwd"
        );
    }
}
