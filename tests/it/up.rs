//! `unitsync up`: the container entrypoint, run for real: scripts in a
//! directory, prefixed output, header ordering, failures, signals, reaping.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::util::*;

fn script(dir: &Path, name: &str, body: &str) {
    let path = dir.join(name);
    fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// Runs `unitsync up --dir DIR -- MAIN...` to the end.
fn up(sb: &Sandbox, dir: &Path, main: &[&str]) -> Output {
    let dir = dir.to_string_lossy();
    let mut args = vec!["up", "--dir", &dir, "--"];
    args.extend_from_slice(main);
    sb.run(&args)
}

fn startup_dir(sb: &Sandbox) -> std::path::PathBuf {
    let dir = sb.path("startup");
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// Pids of live processes whose command line contains `token`.
fn processes_with(token: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.parse::<u32>().is_err() {
            continue;
        }
        let cmdline = fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(token) {
            found.push(name);
        }
    }
    found
}

/// Zombie children of `pid`.
fn zombies_of(pid: u32) -> Vec<String> {
    let entries = fs::read_dir("/proc").unwrap().flatten();
    let pids = entries.map(|e| e.file_name().to_string_lossy().into_owned());
    pids.filter(|p| proc_state(p).is_some_and(|(state, parent)| state == "Z" && parent == pid))
        .collect()
}

#[test]
fn header_scripts_and_cli_scripts_run_in_order_with_prefixed_output() {
    let sb = Sandbox::new();
    let dir = startup_dir(&sb);
    script(&dir, "git-clone.sh", "# unitsync: unit=git-clone\nsleep 0.3; echo cloned");
    script(&dir, "apt-install.sh", "# unitsync: unit=apt-install\nsleep 0.1; echo installed");
    script(&dir, "pip-install.sh", "# unitsync: after=git-clone,apt-install\necho pip");
    script(
        &dir,
        "agent.sh",
        "unitsync want agent git-clone && unitsync start agent -q && echo agent && unitsync complete agent",
    );
    // A chatty script: its long lines must come out whole.
    let long = "x".repeat(3000);
    script(
        &dir,
        "chatty",
        &format!("i=0; while [ $i -lt 200 ]; do echo \"{long}$i\"; i=$((i+1)); done"),
    );
    script(&dir, ".hidden.sh", "echo must not run");
    fs::write(dir.join("notes.txt"), "not executable").unwrap();
    let out = up(&sb, &dir, &["sh", "-c", "echo main; unitsync ping >/dev/null && echo served"]);
    out.ok();
    for line in out.stdout.lines().take_while(|l| !l.is_empty()) {
        let ok = [
            "agent.sh       | agent",
            "apt-install.sh | installed",
            "git-clone.sh   | cloned",
            "pip-install.sh | pip",
        ]
        .contains(&line)
            || line.strip_prefix("chatty         | ").is_some_and(|rest| {
                rest.starts_with(&long) && rest[long.len()..].parse::<u32>().is_ok()
            });
        assert!(ok, "unexpected or torn line {:.80}...{out}", line);
    }
    assert_eq!(out.stdout.matches("chatty         | ").count(), 200, "{out}");
    assert!(!out.stdout.contains("must not run"), "{out}");
    out.stdout_has("\nmain\nserved\n");
    out.stdout_has("SCRIPT          UNIT         RESULT  WAITED");
    out.stdout_has("\npip-install.sh  pip-install  ok ");
    let log = &out.stderr;
    assert!(at(log, "pip-install started") >= at(log, "git-clone completed"), "{out}");
    assert!(at(log, "pip-install started") >= at(log, "apt-install completed"), "{out}");
    assert!(at(log, "agent started") >= at(log, "git-clone completed"), "{out}");
}

#[test]
fn a_failing_script_stops_its_dependents_and_the_main_command() {
    let sb = Sandbox::new();
    let dir = startup_dir(&sb);
    script(&dir, "build.sh", "# unitsync: after=fetch\necho built");
    script(&dir, "deploy.sh", "# unitsync: after=build\necho deployed");
    script(&dir, "lint.sh", "# unitsync: soft-after=fetch\necho linted");
    // fetch has no header: it speaks for itself.
    script(&dir, "fetch.sh", "unitsync run fetch -- sh -c 'echo network down >&2; exit 2'");
    let out = up(&sb, &dir, &["touch", &sb.path("main-ran").to_string_lossy()]);
    out.code(1);
    out.stderr_has("fetch.sh  | network down\n");
    out.stdout_has("build.sh   build   not run: dependency fetch failed: exit status 2");
    out.stdout_has("deploy.sh  deploy  not run: dependency build failed: dependency fetch failed: exit status 2");
    out.stdout_has("fetch.sh   -       failed: exit status 2");
    out.stdout_has("lint.sh    lint    ok");
    out.stdout_has("linted");
    assert!(!out.stdout.contains("built") && !out.stdout.contains("deployed"), "{out}");
    out.stderr_has("unitsync: up: 3 of 4 scripts failed; not running the main command");
    assert!(!sb.path("main-ran").exists(), "the main command ran after a failure");
}

#[test]
fn the_main_command_runs_while_serving_and_gives_the_exit_status() {
    let sb = Sandbox::new();
    let dir = startup_dir(&sb);
    script(&dir, "setup.sh", "# unitsync: unit=setup\ntrue");
    let out = up(&sb, &dir, &["sh", "-c", "unitsync wait setup && exit 7"]);
    out.code(7);
    // No scripts at all: just the command, under a server.
    sb.run(&["up", "--", "unitsync", "ping"]).ok().stdout_has("unitsync ");
}

#[test]
fn a_bad_header_is_refused_before_anything_runs() {
    let sb = Sandbox::new();
    let dir = startup_dir(&sb);
    script(&dir, "a.sh", &format!("touch {}", sb.path("ran").display()));
    script(&dir, "b.sh", "# unitsync: before=a\ntrue");
    let out = sb.run(&["up", "--dir", &dir.to_string_lossy()]);
    out.code(1).stderr_has("b.sh: unknown header word \"before=a\"");
    assert!(!sb.path("ran").exists());
    sb.run(&["up", &sb.path("missing.sh").to_string_lossy()])
        .code(1)
        .stderr_has("missing.sh: No such file");
}

#[test]
fn a_script_timeout_stops_a_hung_script() {
    let sb = Sandbox::new();
    let dir = startup_dir(&sb);
    script(&dir, "hang.sh", "# unitsync: unit=hang\nsleep 300");
    let began = Instant::now();
    let out = sb.run(&["up", "--dir", &dir.to_string_lossy(), "--script-timeout", "300ms"]);
    out.code(1).stdout_has("hang.sh  hang  timed out (--script-timeout)");
    // Well before the script would have ended by itself.
    assert!(began.elapsed() < Duration::from_secs(60), "{out}");
}

#[test]
fn sigterm_during_startup_leaves_no_process_behind() {
    let sb = Sandbox::new();
    let dir = startup_dir(&sb);
    let token = format!("unitsync-up-test-{}", std::process::id());
    // A waiting unit, a running one, and a grandchild in the background.
    script(&dir, "slow.sh", &format!("# unitsync: unit=slow\nsh -c 'sleep 30; : {token}'"));
    script(&dir, "waits.sh", "# unitsync: after=slow\ntrue");
    script(&dir, "bg.sh", &format!("sh -c 'sleep 30; : {token}' & wait"));
    let child = sb
        .cmd(&["up", "--dir", &dir.to_string_lossy(), "--", "touch", "main-ran"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    eventually("the scripts run", || processes_with(&token).len() >= 2);
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(143), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unitsync: up: stopped by SIGTERM"));
    eventually("no script process is left", || processes_with(&token).is_empty());
    assert_eq!(processes_with(&dir.to_string_lossy()), Vec::<String>::new(), "scripts survived up");
    assert!(!sb.path("main-ran").exists());
    assert!(!sb.socket().exists(), "up left its socket behind");
}

#[test]
fn orphaned_grandchildren_are_reaped() {
    let sb = Sandbox::new();
    let dir = startup_dir(&sb);
    let token = format!("unitsync-orphan-{}", std::process::id());
    // The script exits at once; its background child is orphaned, lands on
    // up (a subreaper, as PID 1 would be), and exits once the test has seen
    // that: up must reap it.
    let orphan_ends = sb.path("orphan-ends");
    let orphan = format!("{}; : {token}", until_file_sh(&orphan_ends));
    script(&dir, "spawner.sh", &format!("sh -c '{orphan}' &\nexit 0"));
    // The main command runs until the test is done looking (or a minute).
    let done = sb.path("done");
    let mut child = sb
        .cmd(&["up", "--dir", &dir.to_string_lossy(), "--", "sh", "-c", &until_file_sh(&done)])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    eventually("the orphan is adopted by up", || {
        processes_with(&token)
            .iter()
            .any(|p| proc_state(p).is_some_and(|(_, parent)| parent == pid))
    });
    fs::write(&orphan_ends, "").unwrap();
    eventually("the orphan has exited", || processes_with(&token).is_empty());
    eventually("up reaps the orphan", || zombies_of(pid).is_empty());
    assert!(child.try_wait().unwrap().is_none(), "up exited before its main command ended");
    fs::write(&done, "").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
}
