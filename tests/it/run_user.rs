//! `run --user` and `user=` in an `up` header: the command runs as that
//! user, with its groups and `HOME`/`USER`/`LOGNAME`, from `/etc/passwd`
//! and `/etc/group` read directly; an unknown user, or a caller that is
//! not root, is refused before anything is declared or runs. Needs root
//! (CI runs the suite as root). `tests/chroot.sh` does the same in a
//! busybox-only root with the static binary.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use crate::users::shared_sandbox;
use crate::util::*;

/// What `id` (through NSS, on this machine's files) says of `nobody`: the
/// answer the child's own `id` must match.
fn nobody(flag: &str) -> String {
    let out = Command::new("id").args([flag, "nobody"]).output().unwrap();
    assert!(out.status.success(), "this test runs a command as nobody, which this machine lacks");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn set(words: &str) -> BTreeSet<String> {
    words.split_whitespace().map(str::to_owned).collect()
}

#[test]
fn run_user_runs_the_command_as_that_user_with_its_groups_and_home() {
    let (sb, bin) = shared_sandbox();
    let _server = sb.serve(&[]);
    let script = "id -u; id -g; id -G; echo \"$HOME $USER $LOGNAME\"";
    let out = sb.run_via(&[], &bin, &["run", "job", "--user", "nobody", "--", "sh", "-c", script]);
    out.ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert_eq!(lines[0], nobody("-u"), "{out}");
    assert_eq!(lines[1], nobody("-g"), "{out}");
    assert_eq!(set(lines[2]), set(&nobody("-G")), "{out}");
    let passwd = fs::read_to_string("/etc/passwd").unwrap();
    let entry = passwd.lines().find(|l| l.starts_with("nobody:")).unwrap();
    let home = entry.split(':').nth(5).unwrap();
    assert_eq!(lines[3], format!("{home} nobody nobody"), "{out}");
    let status = json_status(&sb, "job");
    assert!(status.contains("\"status\": \"completed\""), "{status}");
}

#[test]
fn run_user_takes_numbers_not_in_passwd_and_an_explicit_group() {
    let (sb, bin) = shared_sandbox();
    let _server = sb.serve(&[]);
    let script = "id -u; id -g; id -G; echo \"$HOME $USER\"";
    let out = sb.run_via(&[], &bin, &["run", "n", "--user", "4242:4343", "--", "sh", "-c", script]);
    out.ok().stdout_is("4242\n4343\n4343\n/ 4242\n");
}

#[test]
fn an_unknown_user_or_group_is_refused_and_nothing_is_declared() {
    let (sb, bin) = shared_sandbox();
    let _server = sb.serve(&[]);
    let marker = sb.path("ran");
    let touch = format!("touch {}", marker.display());
    let ghost =
        ["run", "job", "--after", "db", "--user", "ghost-unitsync", "--", "sh", "-c", &touch];
    sb.run_via(&[], &bin, &ghost)
        .code(2)
        .stderr_is("unitsync: --user: no user \"ghost-unitsync\" in /etc/passwd\n");
    let group = ["run", "job", "--user", "nobody:ghosts-unitsync", "--", "sh", "-c", &touch];
    sb.run_via(&[], &bin, &group)
        .code(2)
        .stderr_is("unitsync: --user: no group \"ghosts-unitsync\" in /etc/group\n");
    assert!(!marker.exists(), "the command ran");
    // Neither the unit nor its dependency was declared.
    sb.run(&["list", "--json"]).ok().stdout_is("[]\n");
}

#[test]
fn run_user_needs_root_or_to_be_that_user_already() {
    let (sb, bin) = shared_sandbox();
    let _server = sb.serve(&["--group", "4242"]);
    let wrapper = ["setpriv", "--reuid", "4242", "--regid", "4242", "--clear-groups"];
    sb.run_via(&wrapper, &bin, &["run", "job", "--user", "nobody", "--", "true"])
        .code(2)
        .stderr_is(
            "unitsync: --user: running as user nobody needs root (or to be that user already), and \
         unitsync runs as uid 4242\n",
        );
    sb.run_via(&wrapper, &bin, &["run", "job", "--user", "4242:4343", "--", "true"])
        .code(2)
        .stderr_has("running as user 4242:4343 needs root");
    sb.run(&["list", "--json"]).ok().stdout_is("[]\n");
    // A container with a non-root USER: already that user, nothing to
    // switch; the environment is set all the same.
    let script = "id -u; id -G; echo \"$HOME $USER $LOGNAME\"";
    let same = ["run", "job", "--user", "4242:4242", "--", "sh", "-c", script];
    sb.run_via(&wrapper, &bin, &same).ok().stdout_is("4242\n4242\n/ 4242 4242\n");
}

#[test]
fn up_runs_a_header_script_as_its_user_and_refuses_an_unknown_one_before_anything_runs() {
    let (sb, bin) = shared_sandbox();
    let dir = sb.path("startup");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    let write = |name: &str, body: &str| {
        let path = dir.join(name);
        fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    };
    write("who.sh", "# unitsync: user=nobody\necho \"uid $(id -u) home $HOME\"");
    write("root.sh", "# unitsync: after=who\necho \"uid $(id -u)\"");
    let dir_arg = dir.to_string_lossy().into_owned();
    let out = sb.run_via(&[], &bin, &["up", "--dir", &dir_arg]);
    out.ok();
    let home = fs::read_to_string("/etc/passwd")
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("nobody:").map(|rest| rest.split(':').nth(4).unwrap().to_owned())
        })
        .unwrap();
    out.stdout_has(&format!("who.sh  | uid {} home {home}\n", nobody("-u")));
    out.stdout_has("root.sh | uid 0\n");
    // An unknown user stops everything before anything runs.
    write("ghost.sh", "# unitsync: user=ghost-unitsync\necho ran");
    let out = sb.run_via(&[], &bin, &["up", "--dir", &dir_arg]);
    out.code(1).stderr_has(&format!(
        "up: {}: user=: no user \"ghost-unitsync\" in /etc/passwd",
        dir.join("ghost.sh").display()
    ));
    assert!(!out.stdout.contains("uid "), "a script ran:{out}");
}
