//! Abandoned units (README.md, "Abandoned units"): a unit whose owner,
//! the script that started it, exits without finishing it fails by
//! itself, and its dependents fail fast. And no false alarms: a script
//! that is still running, a command substitution, a pipeline, `run`, and
//! a detached start keep their units.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::util::*;

const SHELLS: [&str; 3] = ["busybox sh", "dash", "bash"];

/// Spawns `script` under `shell`, with stderr to a file of the sandbox;
/// returns the child and that file.
fn spawn_sh(sb: &Sandbox, shell: &str, script: &str, log: &str) -> (Child, std::path::PathBuf) {
    let mut words: Vec<&str> = shell.split_whitespace().collect();
    require(words[0]);
    let program = words.remove(0);
    let file = sb.script_file(script);
    words.push(file.to_str().unwrap());
    let mut cmd = sb.cmd_via(&[], Path::new(program), &words);
    let log = sb.path(log);
    cmd.current_dir(&sb.dir).stdout(Stdio::null()).stderr(fs::File::create(&log).unwrap());
    (cmd.spawn().unwrap(), log)
}

/// Waits until `unit` is started and owned by `pid`. Each `status`
/// checks the owner first, so this also says the owner was found alive.
#[track_caller]
fn until_owned(sb: &Sandbox, unit: &str, pid: u32) {
    let owned = format!("\"owner\": {pid}");
    eventually(&format!("{unit} is started, owned by {pid}"), || {
        let status = json_status(sb, unit);
        status.contains("\"status\": \"started\"") && status.contains(&owned)
    });
}

#[test]
fn a_script_that_exits_without_completing_fails_its_unit_and_its_dependents_fast() {
    for shell in SHELLS {
        let sb = Sandbox::new();
        let _server = sb.serve(&[]);
        sb.run(&["want", "b", "a"]).ok();
        let mut dependent = sb.cmd(&["start", "b", "--timeout", "5m"]);
        let log = sb.path("dependent.err");
        dependent.stderr(fs::File::create(&log).unwrap());
        let mut dependent = dependent.spawn().unwrap();
        until_waiting(&sb, "b");
        let began = Instant::now();
        // No trap: the script dies with its unit started.
        sb.shell(shell, "unitsync start a; exit 3").code(3);
        let status = wait_for_exit(&mut dependent, PATIENCE, || {
            format!("{shell}: b still waits: {}", fs::read_to_string(&log).unwrap_or_default())
        });
        let stderr = fs::read_to_string(&log).unwrap();
        assert_eq!(status.code(), Some(5), "{shell}: {stderr}");
        // Its deadline is 5 minutes: 20 s leaves a busy machine room and
        // still says it did not wait it out.
        let took = began.elapsed();
        assert!(took < Duration::from_secs(20), "{shell}: took {took:?}");
        assert!(
            stderr.contains("dependency a failed: abandoned: the script that started it (pid ")
        );
        assert!(stderr.contains(") exited without completing it"), "{stderr}");
        let a = json_status(&sb, "a");
        assert!(a.contains("\"status\": \"failed\"") && a.contains("\"owner\": null"), "{a}");
    }
}

#[test]
fn a_unit_abandoned_with_nobody_asking_fails_within_the_sweep() {
    let sb = Sandbox::new();
    let server = sb.serve(&[]);
    sb.shell("dash", "unitsync start a; exit 0").ok();
    // Nobody reads `a`: the server's own check fails it.
    eventually("the server notices a's owner is gone", || {
        server.log().contains("a failed (ran ")
            && server.log().contains(": abandoned: the script that started it (pid ")
    });
}

#[test]
fn a_running_script_keeps_its_unit_until_it_completes_it() {
    for shell in SHELLS {
        let sb = Sandbox::new();
        let _server = sb.serve(&[]);
        let go = sb.path("go");
        let script = format!("unitsync start a; {}; unitsync complete a", until_file_sh(&go));
        let (mut child, log) = spawn_sh(&sb, shell, &script, "script.err");
        until_owned(&sb, "a", child.id());
        // Each status checks the owner again: still there, still started.
        sb.run(&["status", "a"]).ok().stdout_has(&format!("owner:      pid {}\n", child.id()));
        let list = sb.run(&["list", "--json"]);
        assert!(list.ok().stdout.contains("\"status\": \"started\""), "{list}");
        sb.run(&["list"]).ok().stdout_has(&format!("started (pid {})", child.id()));
        fs::write(&go, "").unwrap();
        let status = wait_for_exit(&mut child, PATIENCE, || format!("{shell}: script hangs"));
        assert!(status.success(), "{shell}: {}", fs::read_to_string(&log).unwrap());
        assert!(json_status(&sb, "a").contains("\"status\": \"completed\""));
    }
}

#[test]
fn a_command_substitution_a_pipeline_and_exec_wrappers_are_owned_by_the_script() {
    for shell in SHELLS {
        for start in [
            "x=$(unitsync start a); echo \"$x\"",
            "unitsync start a | cat",
            "( unitsync start a )",
            // A subshell that forks unitsync rather than becoming it: the
            // walk goes up past the copy of the script to the script.
            "( unitsync start a; true )",
            "x=$(unitsync start a; echo); echo \"$x\"",
            // Wrappers that exec what they run.
            "env X=1 unitsync start a",
            "nice unitsync start a",
        ] {
            let sb = Sandbox::new();
            let _server = sb.serve(&[]);
            let go = sb.path("go");
            let script = format!("{start}; {}; unitsync complete a", until_file_sh(&go));
            let (mut child, log) = spawn_sh(&sb, shell, &script, "script.err");
            // The script itself, not the subshell that ran unitsync.
            until_owned(&sb, "a", child.id());
            fs::write(&go, "").unwrap();
            let status = wait_for_exit(&mut child, PATIENCE, || format!("{shell}: {start} hangs"));
            let stderr = fs::read_to_string(&log).unwrap();
            assert!(status.success(), "{shell}: {start}: {stderr}");
            let a = json_status(&sb, "a");
            assert!(a.contains("\"status\": \"completed\""), "{shell}: {start}: {a}");
        }
    }
}

#[test]
fn run_owns_its_unit_and_its_command_owns_what_it_starts_under_other_names() {
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    let go = sb.path("go");
    let command = format!("unitsync start inner; {}; unitsync complete inner", until_file_sh(&go));
    let script = sb.script_file(&command);
    let mut run = sb.cmd(&["run", "a", "--", "dash", script.to_str().unwrap()]);
    run.stderr(Stdio::null());
    let mut run = run.spawn().unwrap();
    until_owned(&sb, "a", run.id());
    // `run` ends only `a`: the command itself owns what else it starts.
    let command_pid = || {
        let children = format!("/proc/{}/task/{}/children", run.id(), run.id());
        fs::read_to_string(children).unwrap_or_default().trim().to_owned()
    };
    eventually("run's command runs", || !command_pid().is_empty());
    let pid: u32 = command_pid().parse().expect("one child");
    until_owned(&sb, "inner", pid);
    fs::write(&go, "").unwrap();
    let status = wait_for_exit(&mut run, PATIENCE, || "run hangs".into());
    assert!(status.success());
    assert!(json_status(&sb, "a").contains("\"status\": \"completed\""));
    assert!(json_status(&sb, "inner").contains("\"status\": \"completed\""));
}

#[test]
fn a_detached_unit_outlives_its_script() {
    for (shell, start) in [
        ("busybox sh", "unitsync start --detached a"),
        ("dash", "UNITSYNC_DETACHED=yes unitsync start a"),
    ] {
        let sb = Sandbox::new();
        let _server = sb.serve(&[]);
        let go = sb.path("go");
        let script = format!(
            "{start}; ( {}; unitsync complete a ) >/dev/null 2>&1 & exit 0",
            until_file_sh(&go)
        );
        sb.shell(shell, &script).ok();
        // The script is gone; `a` has no owner, so it is still started.
        let a = json_status(&sb, "a");
        assert!(a.contains("\"status\": \"started\"") && a.contains("\"owner\": null"), "{a}");
        fs::write(&go, "").unwrap();
        eventually("the background subshell completes a", || {
            json_status(&sb, "a").contains("\"status\": \"completed\"")
        });
    }
}

#[test]
fn an_owner_is_kept_only_from_a_client_in_our_pid_namespace() {
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    let me = std::process::id();
    // A client_pid that is not the connection's: the owner is dropped.
    let line = format!(
        "{{\"op\":\"start\",\"unit\":\"x\",\"owner\":{{\"pid\":{me},\"start\":1}},\"client_pid\":{}}}\n",
        me + 1
    );
    let answers = raw_exchange(&sb.socket(), &[line.as_bytes()]);
    assert!(answers[0].contains("\"result\":\"started\""), "{answers:?}");
    let x = json_status(&sb, "x");
    assert!(x.contains("\"status\": \"started\"") && x.contains("\"owner\": null"), "{x}");
    // Our own pid, but another start time: a process that no longer exists.
    let line = format!(
        "{{\"op\":\"start\",\"unit\":\"y\",\"owner\":{{\"pid\":{me},\"start\":1}},\"client_pid\":{me}}}\n"
    );
    raw_exchange(&sb.socket(), &[line.as_bytes()]);
    let y = json_status(&sb, "y");
    assert!(y.contains("\"status\": \"failed\"") && y.contains("abandoned"), "{y}");
}

#[test]
fn a_restarted_server_checks_the_owners_it_recovered() {
    let sb = Sandbox::new();
    let state = sb.path("state.jsonl");
    let state = state.to_str().unwrap();
    let mut server = sb.serve(&["--state", state]);
    let go = sb.path("go");
    // Started, then the script leaves without a word while no server runs.
    let script = format!("unitsync start a; {}; exit 0", until_file_sh(&go));
    let (mut child, _) = spawn_sh(&sb, "dash", &script, "script.err");
    until_owned(&sb, "a", child.id());
    server.stop_with("KILL");
    fs::write(&go, "").unwrap();
    wait_for_exit(&mut child, PATIENCE, || "the script hangs".into());
    let _server = sb.serve(&["--state", state]);
    let a = json_status(&sb, "a");
    assert!(a.contains("\"status\": \"failed\"") && a.contains("abandoned"), "{a}");
}

#[test]
fn coder_start_is_owned_too_and_unitsync_detached_opts_out() {
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    sb.shell("dash", "coder exp sync start a >/dev/null; exit 0").ok();
    let a = json_status(&sb, "a");
    assert!(a.contains("\"status\": \"failed\"") && a.contains("abandoned"), "{a}");
    sb.shell("dash", "UNITSYNC_DETACHED=1 coder exp sync start b >/dev/null; exit 0").ok();
    let b = json_status(&sb, "b");
    assert!(b.contains("\"status\": \"started\"") && b.contains("\"owner\": null"), "{b}");
}

#[test]
fn a_script_that_execs_its_long_command_still_owns_its_unit() {
    for shell in SHELLS {
        let sb = Sandbox::new();
        let _server = sb.serve(&[]);
        let go = sb.path("go");
        // exec keeps the pid and its start time: the owner lives on.
        let script = format!(
            "unitsync start a; exec dash -c '{}; unitsync complete a'",
            until_file_sh(&go).replace('\'', "'\\''")
        );
        let (mut child, log) = spawn_sh(&sb, shell, &script, "script.err");
        until_owned(&sb, "a", child.id());
        eventually("the script has become dash", || {
            let cmdline = fs::read(format!("/proc/{}/cmdline", child.id())).unwrap_or_default();
            cmdline.starts_with(b"dash\0-c\0")
        });
        until_owned(&sb, "a", child.id());
        fs::write(&go, "").unwrap();
        let status = wait_for_exit(&mut child, PATIENCE, || format!("{shell}: the exec hangs"));
        assert!(status.success(), "{shell}: {}", fs::read_to_string(&log).unwrap());
        assert!(json_status(&sb, "a").contains("\"status\": \"completed\""), "{shell}");
    }
}

#[test]
fn a_detached_unit_handed_to_a_setsid_daemon_is_completed_by_it() {
    require("setsid");
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    let go = sb.path("go");
    let daemon = format!("{}; unitsync ready a; unitsync complete a", until_file_sh(&go));
    let script = format!(
        "unitsync start --detached a\n\
         setsid dash -c '{}' </dev/null >/dev/null 2>&1 &\n\
         exit 0",
        daemon.replace('\'', "'\\''")
    );
    sb.shell("dash", &script).ok();
    let a = json_status(&sb, "a");
    assert!(a.contains("\"status\": \"started\"") && a.contains("\"owner\": null"), "{a}");
    fs::write(&go, "").unwrap();
    eventually("the daemon completes a", || json_status(&sb, "a").contains("\"completed\""));
}

#[test]
fn ready_keeps_the_owner_its_start_recorded() {
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    // Started detached, then said ready by the script, which exits: the
    // daemon it handed the unit to carries on, so nobody owns it still.
    sb.shell("dash", "unitsync start --detached db; unitsync ready db; exit 0").ok();
    let db = json_status(&sb, "db");
    assert!(db.contains("\"status\": \"ready\"") && db.contains("\"owner\": null"), "{db}");
    // An owned unit keeps its owner: a helper that says ready and exits
    // (`true` keeps the helper's shell from exec'ing unitsync) abandons
    // nothing while the script that started it runs.
    let go = sb.path("go");
    let script = format!(
        "unitsync start b; sh -c 'unitsync ready b; true'; {}; unitsync complete b",
        until_file_sh(&go)
    );
    let (mut child, log) = spawn_sh(&sb, "dash", &script, "script.err");
    eventually("b is ready", || json_status(&sb, "b").contains("\"status\": \"ready\""));
    let b = json_status(&sb, "b");
    assert!(b.contains(&format!("\"owner\": {}", child.id())), "{b}");
    fs::write(&go, "").unwrap();
    let status = wait_for_exit(&mut child, PATIENCE, || "the script hangs".into());
    assert!(status.success(), "{}", fs::read_to_string(&log).unwrap());
    assert!(json_status(&sb, "b").contains("\"status\": \"completed\""));
}

#[test]
fn a_service_that_says_ready_under_run_is_owned_by_run() {
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    let go = sb.path("go");
    let service = format!("unitsync ready; {}", until_file_sh(&go));
    let mut run = sb.cmd(&["run", "db", "--", "dash", "-c", &service]);
    run.stderr(Stdio::null());
    let mut run = run.spawn().unwrap();
    eventually("db is ready", || json_status(&sb, "db").contains("\"status\": \"ready\""));
    let db = json_status(&sb, "db");
    assert!(db.contains(&format!("\"owner\": {}", run.id())), "{db}");
    fs::write(&go, "").unwrap();
    let status = wait_for_exit(&mut run, PATIENCE, || "run hangs".into());
    assert!(status.success());
    assert!(json_status(&sb, "db").contains("\"status\": \"completed\""));
}

#[test]
fn the_seed_script_without_its_trap_no_longer_hangs_its_dependents() {
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    // The claude-code example with its trap removed: `set -e` ends it at
    // the missing repository, with claude-code started and never completed.
    let script = crate::coder::CLAUDE_CODE.replace("trap cleanup_sync EXIT\n", "");
    assert_ne!(script, crate::coder::CLAUDE_CODE, "the seed's trap line moved");
    fs::write(sb.path("claude.sh"), script).unwrap();
    // Its dependency is done: the script starts at once, then dies.
    sb.run(&["complete", "git-clone"]).ok();
    sb.run(&["want", "review", "claude-code"]).ok();
    crate::coder::coder(&sb, &["exp", "sync", "want", "preview", "claude-code"]).ok();
    let mut native = sb.cmd(&["start", "review", "--timeout", "5m"]);
    let native_log = sb.path("review.err");
    native.stderr(fs::File::create(&native_log).unwrap());
    let mut native = native.spawn().unwrap();
    let mut coder = sb.cmd(&["exp", "sync", "start", "preview", "--timeout", "5m"]);
    let coder_log = sb.path("preview.err");
    coder.arg0("coder").stdout(Stdio::null()).stderr(fs::File::create(&coder_log).unwrap());
    let mut coder = coder.spawn().unwrap();
    until_waiting(&sb, "review");
    until_waiting(&sb, "preview");
    let began = Instant::now();
    let out = sb.shell("bash", "bash claude.sh");
    out.code(1).stdout_has("Started sync: claude-code\n");
    let native = wait_for_exit(&mut native, PATIENCE, || "review still waits".into());
    let said = fs::read_to_string(&native_log).unwrap();
    assert_eq!(native.code(), Some(5), "{said}");
    assert!(said.contains("dependency claude-code failed: abandoned: "), "{said}");
    let coder = wait_for_exit(&mut coder, PATIENCE, || "preview still waits".into());
    let said = fs::read_to_string(&coder_log).unwrap();
    assert_eq!(coder.code(), Some(1), "{said}");
    assert!(said.contains("abandoned"), "{said}");
    // Well inside the 5-minute deadline they would otherwise wait out.
    let took = began.elapsed();
    assert!(took < Duration::from_secs(20), "took {took:?}");
}

#[test]
fn a_caller_in_another_pid_namespace_gets_no_owner() {
    require("unshare");
    assert!(is_root(), "this test makes a PID namespace: run it as root (CI does)");
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    // Its pids mean nothing here: had the server kept the owner, `a` would
    // be failed as abandoned the moment the script exits.
    let out = sb.shell(
        "unshare --pid --fork --mount-proc dash",
        "unitsync start a && unitsync status a | grep -c ^owner: ; exit 0",
    );
    out.ok().stdout_is("0\n");
    let a = json_status(&sb, "a");
    assert!(a.contains("\"status\": \"started\"") && a.contains("\"owner\": null"), "{a}");
}

#[test]
fn a_script_that_died_with_its_unit_started_may_be_run_again_at_once() {
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    sb.shell("dash", "unitsync start a; exit 1").code(1);
    // The retry's own start finds the old owner gone: no "already
    // started", whether or not the server's sweep came first.
    sb.shell("dash", "unitsync start a && unitsync complete a").ok();
    assert!(json_status(&sb, "a").contains("\"status\": \"completed\""));
}

#[test]
fn a_stale_unitsync_owner_from_a_process_that_is_no_ancestor_is_ignored() {
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    // A live process that is not the script's ancestor, as `run` is not
    // for a daemon that outlived it.
    let mut other = std::process::Command::new("sleep").arg("600").spawn().unwrap();
    let stat = fs::read_to_string(format!("/proc/{}/stat", other.id())).unwrap();
    let start = stat.rsplit(')').next().unwrap().split_whitespace().nth(19).unwrap().to_owned();
    let go = sb.path("go");
    let script = format!(
        "UNITSYNC_OWNER={}:{start} UNITSYNC_UNIT=a unitsync start a; {}; unitsync complete a",
        other.id(),
        until_file_sh(&go)
    );
    let (mut child, log) = spawn_sh(&sb, "dash", &script, "script.err");
    // The script owns `a`, not the process the variable names...
    until_owned(&sb, "a", child.id());
    // ...so that process's end abandons nothing.
    other.kill().unwrap();
    other.wait().unwrap();
    assert!(json_status(&sb, "a").contains("\"status\": \"started\""));
    fs::write(&go, "").unwrap();
    let status = wait_for_exit(&mut child, PATIENCE, || "the script hangs".into());
    assert!(status.success(), "{}", fs::read_to_string(&log).unwrap());
}

/// The repro, as a script file: a background subshell that starts
/// the unit outlives its script, which exits at once. The unit stays
/// started while the subshell lives (it is on the owner chain), completes
/// when the subshell says so, and fails, naming the script, only when
/// every process on the chain is gone.
#[test]
fn a_background_subshell_that_outlives_its_script_keeps_its_unit() {
    for shell in SHELLS {
        let sb = Sandbox::new();
        let _server = sb.serve(&[]);
        let (go, end) = (sb.path("go"), sb.path("end"));
        let (started_u, started_v) = (sb.path("started_u"), sb.path("started_v"));
        let script = format!(
            "( unitsync start u; touch {}; {}; unitsync complete u 2>{} ) >/dev/null 2>&1 & \
             ( unitsync start v; touch {}; {} ) >/dev/null 2>&1 & exit 0",
            started_u.display(),
            until_file_sh(&go),
            sb.path("complete.err").display(),
            started_v.display(),
            until_file_sh(&end),
        );
        let file = sb.path("warm.sh");
        fs::write(&file, script).unwrap();
        let mut words: Vec<&str> = shell.split_whitespace().collect();
        require(words[0]);
        words.push(file.to_str().unwrap());
        let out = output(format!("{shell} warm.sh"), {
            let mut cmd = sb.cmd_via(&[], Path::new(words[0]), &words[1..]);
            cmd.current_dir(&sb.dir);
            cmd
        });
        out.ok();
        eventually("both subshells started their units", || {
            started_u.exists() && started_v.exists()
        });
        // The script is gone: each status looks at the owners again, and
        // the subshells still hold their units.
        for unit in ["u", "v"] {
            let status = json_status(&sb, unit);
            assert!(status.contains("\"status\": \"started\""), "{shell}: {unit}: {status}");
        }
        fs::write(&go, "").unwrap();
        eventually("the subshell completes u", || {
            json_status(&sb, "u").contains("\"status\": \"completed\"")
        });
        // The other subshell exits without completing v: now nobody on
        // its chain lives, and the reason names the script.
        fs::write(&end, "").unwrap();
        eventually("v fails as abandoned", || {
            let v = json_status(&sb, "v");
            v.contains("\"status\": \"failed\"")
                && v.contains(" (warm.sh)) exited without completing it")
        });
        let complete_err = fs::read_to_string(sb.path("complete.err")).unwrap();
        assert!(!complete_err.contains("warning"), "{shell}: {complete_err}");
    }
}

/// Forking wrappers that wait for what they run (`timeout`, `sh -c`) are
/// walked past: the script that called them owns the unit, and it stays
/// started after they exit.
#[test]
fn forking_wrappers_are_walked_past_to_the_script() {
    require("timeout");
    for start in [
        "timeout 60 unitsync start a",
        "sh -c 'unitsync start a; true'",
        "timeout 60 sh -c 'unitsync start a; true'",
    ] {
        let sb = Sandbox::new();
        let _server = sb.serve(&[]);
        let go = sb.path("go");
        let script = format!("{start}; {}; unitsync complete a", until_file_sh(&go));
        let (mut child, log) = spawn_sh(&sb, "dash", &script, "script.err");
        until_owned(&sb, "a", child.id());
        fs::write(&go, "").unwrap();
        let status = wait_for_exit(&mut child, PATIENCE, || format!("{start}: script hangs"));
        assert!(status.success(), "{start}: {}", fs::read_to_string(&log).unwrap());
        assert!(json_status(&sb, "a").contains("\"status\": \"completed\""), "{start}");
    }
}

/// A late `complete` of a unit failed as abandoned completes it, and warns
/// that its dependents may have given up.
#[test]
fn completing_an_abandoned_unit_completes_it_with_a_warning() {
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    sb.shell("dash", "unitsync start a; exit 0").ok();
    eventually("a fails as abandoned", || {
        json_status(&sb, "a").contains("abandoned: the script that started it (pid ")
    });
    let out = sb.run(&["complete", "a"]);
    out.ok().stderr_has("warning: a had failed (abandoned: the script that started it (pid ");
    out.stderr_has("its dependents may already have given up");
    assert!(json_status(&sb, "a").contains("\"status\": \"completed\""));
    // An ordinary complete says nothing of the kind.
    sb.run(&["start", "b"]).ok();
    let out = sb.run(&["complete", "b"]);
    assert!(!out.ok().stderr.contains("warning"), "{out}");
}
