//! `unitsync run`: a unit's whole life around a real command, with real
//! signals, under every shell.

use std::path::Path;
use std::process::Stdio;

use crate::util::*;

const SHELLS: [&str; 3] = ["busybox sh", "dash", "bash"];

#[test]
fn success_completes_the_unit_and_failure_fails_it_with_the_status() {
    for shell in SHELLS {
        let sb = Sandbox::new();
        let _server = sb.serve(&[]);
        let out = sb.shell(
            shell,
            r#"unitsync run build -- sh -c 'echo "building $UNITSYNC_UNIT"'
               echo "build: $?"
               unitsync run deploy --after build -- sh -c 'exit 3'
               echo "deploy: $?"
               unitsync run smoke --after deploy -- true
               echo "smoke: $?""#,
        );
        out.ok().stdout_is("building build\nbuild: 0\ndeploy: 3\nsmoke: 5\n");
        out.stderr_has("unitsync: deploy: marked failed: exit status 3\n");
        out.stderr_has(
            "unitsync: smoke: dependency deploy failed: exit status 3; not starting smoke\n",
        );
        assert!(json_status(&sb, "build").contains("\"status\": \"completed\""));
        assert!(json_status(&sb, "deploy").contains("\"reason\": \"exit status 3\""));
    }
}

#[test]
fn a_waiting_run_starts_its_command_only_after_its_dependencies() {
    let sb = Sandbox::new();
    let server = sb.serve(&[]);
    let script = r#"
        unitsync run pip-install --after git-clone --after apt-install -- sh -c 'echo pip' &
        unitsync run git-clone -- sleep 0.2 &
        unitsync run apt-install -- sleep 0.4 &
        wait
    "#;
    sb.shell("dash", script).ok().stdout_is("pip\n");
    let log = server.log();
    assert!(at(&log, "pip-install started") >= at(&log, "apt-install completed"), "{log}");
    assert!(at(&log, "pip-install started") >= at(&log, "git-clone completed"), "{log}");
}

#[test]
fn soft_after_runs_past_a_failure() {
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    sb.run(&["run", "tests", "--", "false"]).code(1);
    sb.run(&["run", "report", "--soft-after", "tests", "--", "true"]).ok();
    let status = json_status(&sb, "report");
    assert!(status.contains("\"status\": \"completed\""), "{status}");
    assert!(status.contains("\"soft\": true"), "{status}");
}

#[test]
fn a_command_killed_by_a_signal_exits_128_plus_n() {
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    sb.run(&["run", "k", "--", "sh", "-c", "kill -KILL $$"])
        .code(137)
        .stderr_has("k: marked failed: killed by SIGKILL");
    sb.run(&["run", "missing", "--", "no-such-command-here"]).code(127);
    assert!(json_status(&sb, "missing").contains("cannot run no-such-command-here"));
}

#[test]
fn sigterm_and_sighup_reach_the_command_and_the_unit_fails() {
    for (signal, number) in [("TERM", 15), ("HUP", 1), ("INT", 2)] {
        let sb = Sandbox::new();
        let _server = sb.serve(&[]);
        let marker = sb.path("got-signal");
        let trapped = sb.path("trapped");
        // The command says when its trap is set, reports the signal it got,
        // then exits 7.
        let script = format!(
            "trap 'kill $!; echo {signal} > {}; exit 7' {signal}; : > {}; \
             sleep 30 2>/dev/null & wait",
            marker.display(),
            trapped.display()
        );
        // The signal must reach the shell's trap: run under nohup, or as a
        // background job of a script (scripts/soak-tests.sh), the tests
        // inherit HUP or INT ignored, and a shell cannot trap a signal that
        // was ignored when it started. GNU env puts the default back.
        let wrapper = ["env", "--default-signal=HUP,INT,TERM"];
        let args = ["run", "worker", "--", "sh", "-c", &script];
        let mut cmd = sb.cmd_via(&wrapper, Path::new(BIN), &args);
        let child = cmd.stderr(Stdio::piped()).spawn().unwrap();
        eventually("the command has set its trap", || trapped.exists());
        let pid = child.id().to_string();
        assert!(
            std::process::Command::new("kill")
                .args(["-s", signal, &pid])
                .status()
                .unwrap()
                .success()
        );
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(7),
            "SIG{signal} ({number}): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(std::fs::read_to_string(&marker).unwrap().trim(), signal);
        // A stop signal (TERM, INT) stopped it before it completed: failed
        // as such whatever its status; HUP is forwarded, not a stop, so its
        // exit status is the reason.
        let reason = match signal {
            "HUP" => "exit status 7",
            _ => "stopped before it completed",
        };
        let status = json_status(&sb, "worker");
        assert!(status.contains(&format!("\"reason\": \"{reason}\"")), "SIG{signal}: {status}");
    }
}

#[test]
fn sigterm_while_waiting_fails_the_unit_and_exits_143() {
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    let child = sb
        .cmd(&["run", "late", "--after", "never", "--", "touch", "ran"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    until_waiting(&sb, "late");
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{stderr}");
    assert!(stderr.contains("late: stopped waiting on SIGTERM"), "{stderr}");
    assert!(!sb.path("ran").exists(), "the command ran although run was stopped while waiting");
    assert!(
        json_status(&sb, "late").contains("\"reason\": \"interrupted by SIGTERM while waiting\"")
    );
}

#[test]
fn a_timeout_fails_the_unit_so_dependents_stop_waiting() {
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    sb.run(&["run", "a", "--after", "never", "--timeout", "200ms", "--", "true"])
        .code(4)
        .stderr_has("a: timed out after 200ms waiting for never (never registered");
    sb.run(&["run", "b", "--after", "a", "--", "true"]).code(5);
}

#[test]
fn optional_runs_the_command_without_a_server() {
    for shell in SHELLS {
        let sb = Sandbox::new();
        let out = sb.shell(
            shell,
            "unitsync --optional run a --after b -- sh -c 'echo ran; exit 4'; echo \"exit $?\"",
        );
        out.ok()
            .stdout_is("ran\nexit 4\n")
            .stderr_has("running a without coordination (--optional)");
        sb.shell(shell, "unitsync run a -- true").code(3);
    }
}

#[test]
fn a_server_restart_while_waiting_makes_run_declare_again() {
    let sb = Sandbox::new();
    let mut server = sb.serve(&[]);
    let child =
        sb.cmd(&["run", "b", "--after", "a", "--", "true"]).stderr(Stdio::piped()).spawn().unwrap();
    until_waiting(&sb, "b");
    server.stop_with("KILL");
    let _server = sb.serve(&[]);
    // The new server learns b's dependency from run itself.
    eventually("b is declared again", || json_status(&sb, "b").contains("\"unit\": \"a\""));
    sb.run(&["complete", "a"]).ok();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("b: the server restarted with a fresh state; declaring b again"),
        "{stderr}"
    );
    assert!(json_status(&sb, "b").contains("\"status\": \"completed\""));
}

/// The README's one-line replacement for Coder's 40-line script, extracted
/// from README.md so the README cannot drift from what is tested.
fn readme_one_liner() -> String {
    let readme = include_str!("../../README.md");
    let after_marker =
        readme.split("<!-- tested: run-one-liner -->").nth(1).expect("README marker");
    let block = after_marker.split("```sh\n").nth(1).expect("README code block");
    block.split("```").next().unwrap().to_owned()
}

#[test]
fn the_readme_one_liner_replaces_the_forty_line_script() {
    for shell in SHELLS {
        let sb = Sandbox::new();
        let server = sb.serve(&[]);
        std::fs::create_dir_all(sb.path("repo")).unwrap();
        // A stand-in for the agent: proves it ran in the repository.
        std::fs::write(sb.path("bin/claude"), "#!/bin/sh\npwd > ../claude-ran-in\n").unwrap();
        std::fs::set_permissions(
            sb.path("bin/claude"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        std::fs::write(sb.path("agent.sh"), readme_one_liner()).unwrap();
        let script = UNTIL_WAITING_SH.to_owned()
            + "export REPO_DIR=\"$PWD/repo\"
            sh ./agent.sh & agent=$!
            until_waiting claude-code
            test ! -e claude-ran-in || { echo 'ran before git-clone'; exit 1; }
            unitsync run git-clone -- true
            wait $agent";
        sb.shell(shell, &script).ok();
        let ran_in = std::fs::read_to_string(sb.path("claude-ran-in")).unwrap();
        assert_eq!(ran_in.trim(), sb.path("repo").to_string_lossy());
        let log = server.log();
        assert!(at(&log, "claude-code started") >= at(&log, "git-clone completed"), "{log}");
        assert!(json_status(&sb, "claude-code").contains("\"status\": \"completed\""));
        // Without a server it degrades gracefully and still runs the agent.
        drop(server);
        std::fs::remove_file(sb.path("claude-ran-in")).unwrap();
        sb.shell(shell, "REPO_DIR=\"$PWD/repo\" sh ./agent.sh")
            .ok()
            .stderr_has("without coordination (--optional)");
        assert!(sb.path("claude-ran-in").exists());
    }
}
