//! Other users (issue: reliability and security): who may reach the
//! socket, who the server serves, what `--group` opens, and what `serve`
//! refuses to touch. Needs root, to run children under other uids with
//! `setpriv` (util-linux) and to chown files; CI runs the suite as root.
//! The uids and gids used here need not exist in /etc/passwd.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::util::*;

/// A sandbox other users can reach, and a copy of the binary they can run
/// (the build directory may be private to its owner).
pub fn shared_sandbox() -> (Sandbox, PathBuf) {
    assert!(is_root(), "this test runs children as other users: run it as root (CI does)");
    require("setpriv");
    let sb = Sandbox::new();
    fs::set_permissions(&sb.dir, fs::Permissions::from_mode(0o755)).unwrap();
    for dir in sb.dir.ancestors().skip(1) {
        let mode = fs::metadata(dir).unwrap().permissions().mode();
        assert!(
            mode & 0o001 != 0,
            "{} (mode {mode:o}) cannot be searched by other users, so the sandbox under it \
             cannot be reached; point TMPDIR at a directory they can search",
            dir.display()
        );
    }
    let bin = sb.path("unitsync-copy");
    // Copied by `cp`, not by us: a file we hold open for writing is held
    // by every child another test forks meanwhile, until its exec, and
    // running the copy then fails with "Text file busy".
    let copied = std::process::Command::new("cp").arg(BIN).arg(&bin).status().unwrap();
    assert!(copied.success(), "cp {BIN} {} failed", bin.display());
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
    (sb, bin)
}

/// `setpriv` arguments that run a child as `uid`/`gid`, with `groups` as
/// its only supplementary groups.
pub fn as_user(uid: u32, gid: u32, groups: &[u32]) -> Vec<String> {
    let mut args = vec![
        "setpriv".to_owned(),
        "--reuid".into(),
        uid.to_string(),
        "--regid".into(),
        gid.to_string(),
    ];
    match groups {
        [] => args.push("--clear-groups".into()),
        _ => {
            let list: Vec<String> = groups.iter().map(u32::to_string).collect();
            args.extend(["--groups".into(), list.join(",")]);
        }
    }
    args
}

/// `serve` that must refuse to start; bounded, so that a server that starts
/// after all fails the test instead of hanging it.
fn serve_refused(sb: &Sandbox, args: &[&str]) -> Output {
    require("timeout");
    let mut full = vec!["serve"];
    full.extend_from_slice(args);
    sb.run_via(&["timeout", "10"], Path::new(BIN), &full)
}

pub fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// What the server sends a peer that only listens (`socat -u`, so it never
/// writes and cannot lose a race with the server closing the connection).
fn listen_as(user: &[String], socket: &Path) -> Output {
    require("socat");
    let mut cmd = Command::new(&user[0]);
    cmd.args(&user[1..]).arg("socat").arg("-u").arg(format!("UNIX-CONNECT:{}", socket.display()));
    cmd.arg("-").stdin(Stdio::null());
    output(format!("{} socat -u UNIX-CONNECT:{} -", user.join(" "), socket.display()), cmd)
}

#[test]
fn another_uid_is_stopped_by_the_directory_and_then_by_the_server() {
    let (sb, bin) = shared_sandbox();
    let server = sb.serve(&[]);
    sb.run(&["want", "b", "a"]).ok();
    let before = sb.run(&["list", "--json"]);
    before.ok();
    let stranger_args = as_user(4242, 4242, &[]);
    let stranger = strs(&stranger_args);
    // The 0700 directory stops it before the server ever sees it.
    let unreachable = format!(
        "unitsync: cannot reach the server at {}: permission denied; run as the server's user \
         or ask for --group access\n",
        sb.socket().display()
    );
    for args in [&["want", "evil", "b"][..], &["ping"], &["complete", "a"]] {
        sb.run_via(&stranger, &bin, args).code(3).stderr_is(&unreachable);
    }
    // With the filesystem opened up, the server's peer check refuses it.
    chmod(sb.socket().parent().unwrap(), 0o755);
    chmod(&sb.socket(), 0o666);
    let forbidden = format!(
        "unitsync: cannot reach the server at {}: permission denied: uid 4242 may not use this \
         server (it serves root)\n",
        sb.socket().display()
    );
    for args in [
        &["want", "evil", "b"][..],
        &["ping"],
        &["complete", "a"],
        &["fail", "a", "--reason", "sabotage"],
        &["status", "b"],
        &["list"],
    ] {
        sb.run_via(&stranger, &bin, args).code(3).stderr_is(&forbidden);
    }
    // On the wire: one forbidden line, then the connection is closed.
    let heard = listen_as(&stranger_args, &sb.socket());
    heard.ok();
    let line = heard.stdout.strip_suffix('\n').unwrap_or(&heard.stdout);
    assert!(!line.contains('\n'), "more than one line for a forbidden peer{heard}");
    assert!(
        line.ends_with(r#""result":"error","error":{"kind":"forbidden","message":"permission denied: uid 4242 may not use this server (it serves root)"}}"#),
        "{heard}"
    );
    // Root and the owner are still served, and nothing changed.
    sb.run(&["list", "--json"]).ok().stdout_is(&before.stdout);
    assert!(!server.log().contains("evil"), "{}", server.log());
    // The waiting commands give up at once too: a refusal is not a server
    // that went away and may come back (the deadline is 5 minutes by default).
    for args in [&["start", "b", "--timeout", "2s"][..], &["wait", "a", "--timeout", "2s"]] {
        sb.run_via(&stranger, &bin, args).code(3).stderr_is(&forbidden);
    }
}

#[test]
fn a_group_member_is_served_and_a_non_member_is_not() {
    let (sb, bin) = shared_sandbox();
    let server = sb.serve(&["--group", "4343"]);
    let dir = sb.socket().parent().unwrap().to_owned();
    let (d, s) = (fs::metadata(&dir).unwrap(), fs::symlink_metadata(sb.socket()).unwrap());
    assert_eq!(
        (d.uid(), d.gid(), d.permissions().mode() & 0o7777),
        (0, 4343, 0o710),
        "socket directory"
    );
    assert!(s.file_type().is_socket());
    assert_eq!((s.uid(), s.gid(), s.permissions().mode() & 0o7777), (0, 4343, 0o660), "socket");
    // A member by its primary group, and one by a supplementary group.
    let primary = as_user(4242, 4343, &[]);
    let supplementary = as_user(4244, 4244, &[4300, 4343]);
    let (primary, supplementary) = (strs(&primary), strs(&supplementary));
    sb.run_via(&primary, &bin, &["want", "app", "db"]).ok();
    sb.run_via(&supplementary, &bin, &["start", "db"]).ok().stderr_has("db: started\n");
    sb.run_via(&primary, &bin, &["start", "app", "--timeout", "100ms"])
        .code(4)
        .stderr_has("app: timed out after 100ms waiting for db (started ");
    sb.run_via(&supplementary, &bin, &["complete", "db"]).ok();
    sb.run_via(&primary, &bin, &["start", "app"]).ok();
    sb.run_via(&supplementary, &bin, &["ping"]).ok().stdout_has("(protocol 2)");
    // A non-member: stopped by the 0710 directory, then by the server.
    let outsider = as_user(4245, 4245, &[4300]);
    let outsider = strs(&outsider);
    sb.run_via(&outsider, &bin, &["complete", "app"])
        .code(3)
        .stderr_has("permission denied; run as the server's user or ask for --group access\n");
    chmod(&dir, 0o711);
    chmod(&sb.socket(), 0o666);
    sb.run_via(&outsider, &bin, &["complete", "app"]).code(3).stderr_has(
        "permission denied: uid 4245 may not use this server (it serves root and group 4343)\n",
    );
    let listed = sb.run(&["list", "--json"]);
    listed.ok().stdout_has("\"unit\": \"app\",\n    \"status\": \"started\"");
    listed.stdout_has("\"unit\": \"db\",\n    \"status\": \"completed\"");
    let log = server.log();
    // The timed-out start said it stopped waiting; the next one began afresh.
    assert!(log.contains(" app stopped waiting (after "), "{log}");
    assert!(log.contains(" db completed") && log.contains(" app started\n"), "{log}");
}

#[test]
fn group_names_come_from_etc_group_without_nss() {
    assert!(is_root(), "this test chowns a socket: run it as root (CI does)");
    let sb = Sandbox::new();
    serve_refused(&sb, &["--group", "no-such-group-here"]).code(1).stderr_is(
        "unitsync: --group: no group named \"no-such-group-here\" in /etc/group; give a name \
         from there or a numeric gid\n",
    );
    assert!(
        !sb.socket().parent().unwrap().exists(),
        "a refused serve created the socket directory"
    );
    // Any group /etc/group names other than root's.
    let groups = fs::read_to_string("/etc/group").expect("/etc/group exists");
    let (name, gid) = groups
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            Some((fields.first()?.to_string(), fields.get(2)?.parse::<u32>().ok()?))
        })
        .find(|(_, gid)| *gid != 0)
        .expect("/etc/group names a group besides root");
    let _server = sb.serve(&["--group", &name]);
    assert_eq!(fs::metadata(sb.socket()).unwrap().gid(), gid, "--group {name} is gid {gid}");
}

#[test]
fn a_server_run_by_another_user_serves_that_user_only() {
    let (sb, bin) = shared_sandbox();
    let dir = sb.socket().parent().unwrap().to_owned();
    fs::create_dir(&dir).unwrap();
    std::os::unix::fs::chown(&dir, Some(4242), Some(4242)).unwrap();
    chmod(&dir, 0o700);
    let owner = as_user(4242, 4242, &[]);
    let owner = strs(&owner);
    let server = sb.serve_via(&owner, &bin, &[]);
    let s = fs::symlink_metadata(sb.socket()).unwrap();
    assert_eq!((s.uid(), s.permissions().mode() & 0o777), (4242, 0o600));
    sb.run_via(&owner, &bin, &["want", "b", "a"]).ok();
    // Root's client will not talk to a server someone else runs.
    let theirs = "the socket belongs to uid 4242, not to you (uid 0) or root; refusing to talk to \
                  a server someone else runs\n";
    sb.run(&["ping"]).code(3).stderr_has(theirs);
    // Nor will a third user's, even with the path opened up...
    chmod(&dir, 0o755);
    chmod(&sb.socket(), 0o666);
    let third = as_user(4343, 4343, &[]);
    sb.run_via(&strs(&third), &bin, &["complete", "a"])
        .code(3)
        .stderr_has("the socket belongs to uid 4242, not to you (uid 4343) or root");
    // ...nor through a symbolic link that root owns.
    let link = sb.path("link.sock");
    std::os::unix::fs::symlink(sb.socket(), &link).unwrap();
    sb.run(&["--socket", &link.to_string_lossy(), "complete", "a"]).code(3).stderr_has(
        "the socket belongs to uid 4242, not to you (uid 0) or root, and you are not in its \
         group 4242; refusing to talk to a server someone else runs\n",
    );
    // And a third user who talks anyway is refused by the server.
    let heard = listen_as(&third, &sb.socket());
    heard.ok().stdout_has(
        r#""kind":"forbidden","message":"permission denied: uid 4343 may not use this server (it serves uid 4242 and root)"}"#,
    );
    let listed = sb.run_via(&owner, &bin, &["list", "--json"]);
    listed.ok().stdout_has("\"unit\": \"a\",\n    \"status\": \"not registered\"");
    listed.stdout_has("\"unit\": \"b\",\n    \"status\": \"pending\"");
    drop(server);
}

#[test]
fn a_group_server_of_another_uid_serves_members_that_trust_it() {
    let (sb, bin) = shared_sandbox();
    // A directory shared with group 4343, as a volume with an fsGroup is.
    let dir = sb.socket().parent().unwrap().to_owned();
    fs::create_dir(&dir).unwrap();
    std::os::unix::fs::chown(&dir, Some(0), Some(4343)).unwrap();
    chmod(&dir, 0o770);
    let owner = as_user(4242, 4242, &[4343]);
    let server = sb.serve_via(&strs(&owner), &bin, &["--group", "4343"]);
    let s = fs::symlink_metadata(sb.socket()).unwrap();
    assert_eq!((s.uid(), s.gid(), s.permissions().mode() & 0o777), (4242, 4343, 0o660));
    // Members by a supplementary and by their primary group, as other uids.
    let supplementary = as_user(4244, 4244, &[4300, 4343]);
    let primary = as_user(4245, 4343, &[]);
    let (supplementary, primary) = (strs(&supplementary), strs(&primary));
    sb.run_via(&supplementary, &bin, &["want", "app", "db"]).ok();
    sb.run_via(&primary, &bin, &["run", "db", "--", "true"]).ok();
    sb.run_via(&supplementary, &bin, &["start", "app"]).ok().stderr_has("app: started\n");
    sb.run_via(&primary, &bin, &["ping"]).ok().stdout_has("(protocol 2)");
    // A non-member is refused by its own client, even with the path open,
    // before it sends anything.
    chmod(&dir, 0o777);
    let outsider = as_user(4246, 4246, &[4300]);
    let refused = |user: &[&str], why: &str| {
        let log = server.log();
        sb.run_via(user, &bin, &["complete", "app"]).code(3).stderr_is(&format!(
            "unitsync: cannot reach the server at {}: the socket belongs to uid 4242, not to \
             you (uid {}) or root, {why}; refusing to talk to a server someone else runs\n",
            sb.socket().display(),
            user[2],
        ));
        assert_eq!(server.log(), log, "a refused client reached the server");
    };
    refused(&strs(&outsider), "and you are not in its group 4343");
    // A socket that does not grant its group read and write is refused by
    // members too: the server that made it did not mean to serve them.
    chmod(&sb.socket(), 0o640);
    refused(
        &supplementary,
        "and its mode 640 does not let its group 4343 (yours) read and write it",
    );
    chmod(&sb.socket(), 0o660);
    sb.run_via(&supplementary, &bin, &["complete", "app"]).ok();
    let listed = sb.run_via(&primary, &bin, &["list", "--json"]);
    listed.ok().stdout_has("\"unit\": \"app\",\n    \"status\": \"completed\"");
}

/// What identifies a file and its content, to prove it was not touched.
fn fingerprint(path: &Path) -> (u64, i64, i64, u32, Option<PathBuf>, Vec<u8>) {
    let m = fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let target = fs::read_link(path).ok();
    let content = if m.is_file() { fs::read(path).unwrap() } else { Vec::new() };
    (m.ino(), m.mtime(), m.mtime_nsec(), m.mode(), target, content)
}

#[test]
fn serve_never_touches_a_path_that_is_not_its_own() {
    assert!(is_root(), "this test chowns files to another user: run it as root (CI does)");
    let sb = Sandbox::new();
    let dir = sb.socket().parent().unwrap().to_owned();
    fs::create_dir(&dir).unwrap();
    let refuse = |why: &str, watched: &[&Path]| {
        let before: Vec<_> = watched.iter().map(|p| fingerprint(p)).collect();
        serve_refused(&sb, &[]).code(1).stderr_has(why);
        let after: Vec<_> = watched.iter().map(|p| fingerprint(p)).collect();
        assert_eq!(before, after, "serve touched what it refused ({why})");
    };
    let socket = sb.socket();
    // A directory, a FIFO, a dangling symbolic link.
    fs::create_dir(&socket).unwrap();
    fs::write(socket.join("keep"), "kept").unwrap();
    refuse(
        "exists and is a directory, not a socket; refusing to touch it",
        &[&socket, &socket.join("keep")],
    );
    fs::remove_dir_all(&socket).unwrap();
    let made = Command::new("mkfifo").arg(&socket).status().unwrap();
    assert!(made.success());
    refuse("exists and is a regular file or device, not a socket", &[&socket]);
    fs::remove_file(&socket).unwrap();
    let nowhere = sb.path("nowhere.sock");
    std::os::unix::fs::symlink(&nowhere, &socket).unwrap();
    refuse("exists and is a symbolic link, not a socket", &[&socket]);
    assert!(!nowhere.exists(), "serve created the symbolic link's target");
    fs::remove_file(&socket).unwrap();
    // A symbolic link to another live server's socket: that server is
    // neither replaced nor disturbed.
    let other = Sandbox::new();
    let _other_server = other.serve(&[]);
    other.run(&["want", "x", "y"]).ok();
    std::os::unix::fs::symlink(other.socket(), &socket).unwrap();
    refuse("exists and is a symbolic link, not a socket", &[&socket, &other.socket()]);
    other.run(&["status", "x", "--json"]).ok().stdout_has("\"status\": \"pending\"");
    fs::remove_file(&socket).unwrap();
    // A stale socket in a directory another user owns: left alone.
    drop(UnixListener::bind(&socket).unwrap());
    std::os::unix::fs::chown(&socket, Some(4242), Some(4242)).unwrap();
    std::os::unix::fs::chown(&dir, Some(4242), Some(4242)).unwrap();
    refuse("belongs to uid 4242, not to you (uid 0)", &[&socket, &dir]);
    fs::remove_file(&socket).unwrap();
    fs::remove_dir(&dir).unwrap();
    // A socket directory that is a symbolic link to someone else's.
    let theirs = sb.path("theirs");
    fs::create_dir(&theirs).unwrap();
    std::os::unix::fs::chown(&theirs, Some(4242), Some(4242)).unwrap();
    std::os::unix::fs::symlink(&theirs, &dir).unwrap();
    refuse(
        &format!("cannot use socket directory {}: not a directory", dir.display()),
        &[&dir, &theirs],
    );
    assert_eq!(
        fs::read_dir(&theirs).unwrap().count(),
        0,
        "serve created files in {}",
        theirs.display()
    );
    fs::remove_file(&dir).unwrap();
    // A regular file where the directory should be.
    fs::write(&dir, "not a directory").unwrap();
    refuse("not a directory", &[&dir]);
}

/// Whoever creates `/tmp/unitsync-$UID` first would own its socket's
/// group: at the default path, a member of the group does not trust
/// another uid's `--group` socket (elsewhere it does: the test above).
#[test]
fn another_uids_group_socket_is_never_trusted_at_the_default_path() {
    let (sb, bin) = shared_sandbox();
    let member = 4248;
    let dir = PathBuf::from(format!("/tmp/unitsync-{member}"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir(&dir).unwrap();
    std::os::unix::fs::chown(&dir, Some(4242), Some(4343)).unwrap();
    chmod(&dir, 0o770);
    let socket = dir.join("unitsync.sock");
    let socket_arg = socket.to_string_lossy().into_owned();
    let owner = as_user(4242, 4242, &[4343]);
    let mut serve = sb.cmd_via(&strs(&owner), &bin, &["serve", "--group", "4343"]);
    serve.env("UNITSYNC_SOCKET", &socket).stderr(std::process::Stdio::null());
    let mut server = Server { child: serve.spawn().unwrap(), log: sb.path("none"), socket };
    server.wait_ready();
    let user = as_user(member, member, &[4343]);
    let mut default = sb.cmd_via(&strs(&user), &bin, &["ping"]);
    default.env_remove("UNITSYNC_SOCKET");
    let refused = output("ping at the default path".into(), default);
    refused.code(3).stderr_has(
        "(another uid's --group socket is never trusted at the default path: put it \
         elsewhere with --socket or $UNITSYNC_SOCKET)",
    );
    let chosen = sb.run_via(&strs(&user), &bin, &["--socket", &socket_arg, "ping"]);
    chosen.code(3).stderr_has("is never trusted at the default path");
    assert!(server.stop_with("TERM").success());
    let _ = fs::remove_dir_all(&dir);
}

/// A `/proc` mounted with `hidepid=2` hides other users' processes from a
/// server that is not root: it cannot tell whether their scripts live, so
/// their units get no owner (README.md, "Abandoned units"), while its own
/// user's do.
#[test]
fn a_server_that_cannot_see_a_members_processes_keeps_no_owner_for_it() {
    let (sb, bin) = shared_sandbox();
    require("unshare");
    let dir = sb.socket().parent().unwrap().to_owned();
    fs::create_dir(&dir).unwrap();
    std::os::unix::fs::chown(&dir, Some(0), Some(4343)).unwrap();
    chmod(&dir, 0o770);
    let mut wrapper: Vec<String> =
        ["unshare", "--mount", "--propagation", "private", "sh", "-c"].map(String::from).to_vec();
    wrapper.push("mount -t proc -o hidepid=2 proc /proc && exec \"$@\"".into());
    wrapper.push("sh".into());
    wrapper.extend(as_user(4242, 4242, &[4343]));
    let _server = sb.serve_via(&strs(&wrapper), &bin, &["--group", "4343"]);
    // dash runs unitsync, which names dash its owner; dash then exits.
    let script = |uid| {
        let mut words = as_user(uid, uid, &[4343]);
        words.extend(["dash", "-c", "\"$0\" \"$@\"; exit 0"].map(String::from));
        words
    };
    sb.run_via(&strs(&script(4244)), &bin, &["start", "theirs"]).ok();
    sb.run_via(&strs(&script(4242)), &bin, &["start", "mine"]).ok();
    let member = as_user(4244, 4244, &[4343]);
    let status = |unit| sb.run_via(&strs(&member), &bin, &["status", unit, "--json"]);
    // Another user's: no owner, so not taken for abandoned.
    let theirs = status("theirs");
    assert!(theirs.ok().stdout.contains("\"status\": \"started\""), "{theirs}");
    assert!(theirs.stdout.contains("\"owner\": null"), "{theirs}");
    // The server's own user's: seen, owned, and abandoned.
    let mine = status("mine");
    assert!(mine.ok().stdout.contains("abandoned: the script that started it"), "{mine}");
}
