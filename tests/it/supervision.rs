//! Supervision after startup (README.md, "Supervision"): restarts with
//! their backoff and limit, health checks, and what `up` does when a
//! restart policy is spent. Real binary, real shells, real SIGKILLs.

use std::fs;

use crate::up::{Background, processes_marked, script_in, startup_dir};
use crate::util::*;

fn lines(path: &std::path::Path) -> usize {
    fs::read_to_string(path).map(|t| t.lines().count()).unwrap_or(0)
}

fn pid_in(path: &std::path::Path) -> u32 {
    fs::read_to_string(path).unwrap().trim().parse().unwrap()
}

#[test]
fn a_service_restarted_on_failure_is_ready_again_while_its_dependent_runs() {
    // db restarts twice (killed from outside), each time ready again by
    // its fd, while app, which needs it, keeps running; its third death
    // spends the policy and stops the container with exit 1.
    let sb = Sandbox::new();
    let dir = startup_dir(&sb);
    let token = format!("unitsync-restarts-{}", std::process::id());
    let (db_pid, lives, app_pid) = (sb.path("db.pid"), sb.path("lives"), sb.path("app.pid"));
    script_in(
        &dir,
        "dash",
        "db.sh",
        &format!(
            "# unitsync: ready=fd:3 restart=on-failure:2\nexport MARK={token}\n\
             echo $$ > {pid}.new && mv {pid}.new {pid}\necho life >> {lives}\necho >&3\n\
             while :; do sleep 0.1; done",
            pid = db_pid.display(),
            lives = lives.display()
        ),
    );
    script_in(
        &dir,
        "busybox sh",
        "app.sh",
        &format!(
            "# unitsync: after=db ready=exec:true\nexport MARK={token}\necho $$ > {pid}\n\
             while :; do sleep 0.1; done",
            pid = app_pid.display()
        ),
    );
    let mut up = Background::start(&sb, &["up", "--dir", dir.to_str().unwrap()]);
    eventually("the summary is printed", || up.stdout().contains("app.sh  app   ready"));
    let app = pid_in(&app_pid);
    for restarts in 1..=2 {
        send_signal(pid_in(&db_pid), "KILL");
        eventually("db runs again", || lines(&lives) == restarts + 1);
        eventually("db is ready again", || {
            json_status(&sb, "db").contains("\"status\": \"ready\"")
        });
        let status = sb.run(&["status", "db"]);
        status.ok().stdout_has(&format!("restarts:   {restarts} (last: killed by SIGKILL"));
        let json = json_status(&sb, "db");
        assert!(json.contains(&format!("\"restarts\": {restarts}")), "{json}");
        assert!(json.contains("\"last_failure\": \"killed by SIGKILL\""), "{json}");
        assert!(signal_exists(app), "app keeps running while db restarts");
        assert!(up.alive(), "up keeps running while db restarts: {}", up.stderr());
    }
    sb.run(&["list"]).ok().stdout_has("RESTARTS");
    send_signal(pid_in(&db_pid), "KILL");
    let code = up.wait();
    let stderr = up.stderr();
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "up: db failed after startup: killed by SIGKILL (after 2 restarts); stopping everything"
        ),
        "{stderr}"
    );
    assert_eq!(lines(&lives), 3, "two restarts, no more");
    eventually("nothing of it is left", || processes_marked(&token).is_empty());
}

fn signal_exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && proc_state(&pid.to_string()).is_some_and(|(s, _)| s != "Z")
}

#[test]
fn a_dependent_waits_through_the_restarts_of_a_flaky_migration() {
    // The migration fails twice during startup under on-failure:3: its
    // dependent does not fail, and runs once when it completes.
    let sb = Sandbox::new();
    let dir = startup_dir(&sb);
    let (tries, ran) = (sb.path("tries"), sb.path("app.ran"));
    script_in(
        &dir,
        "dash",
        "migrate.sh",
        &format!(
            "# unitsync: restart=on-failure:3\necho try >> {tries}\n\
             [ \"$(wc -l < {tries})\" -ge 3 ] || exit 3",
            tries = tries.display()
        ),
    );
    script_in(
        &dir,
        "busybox sh",
        "app.sh",
        &format!("# unitsync: after=migrate\necho ran >> {}", ran.display()),
    );
    let out = sb.run(&["up", "--dir", dir.to_str().unwrap()]);
    out.ok();
    assert_eq!(lines(&tries), 3, "two failures, then success");
    assert_eq!(lines(&ran), 1, "the dependent ran once");
    out.stderr_has("migrate restarting (restart 1, ran ").stderr_has("): exit status 3");
    out.stdout_has("migrate.sh  migrate  ok");
}

#[test]
fn restart_always_runs_a_command_that_exits_0_again_after_a_growing_delay() {
    let sb = Sandbox::new();
    let mut server = sb.serve(&[]);
    server.wait_ready();
    let runs = sb.path("runs");
    let script = sb.script_file(&format!("echo run >> {}\nexit 0", runs.display()));
    let out =
        sb.run(&["run", "beat", "--restart", "always:2", "--", "dash", script.to_str().unwrap()]);
    out.ok().stderr_has("beat: exit status 0; restarting in 1.00s (restart 1 of 2)");
    out.stderr_has("beat: exit status 0; restarting in 2.00s (restart 2 of 2)");
    assert_eq!(lines(&runs), 3, "the first run and two restarts");
    sb.run(&["status", "beat"]).ok().stdout_has("completed").stdout_has("restarts:   2");
    let log = server.log();
    // From the server's own clock: the first run ended at once, so the
    // second restart came at least a first delay (1s) after the first,
    // and the third at least the doubled one (2s) after the second.
    let first = at(&log, "beat restarting (restart 1");
    let second = at(&log, "beat restarting (restart 2");
    let completed = at(&log, "beat completed");
    assert!(second - first >= 1.0, "{log}");
    assert!(completed - second >= 2.0, "{log}");
    assert!(completed - second > second - first, "the delay grows:\n{log}");
}

#[test]
fn failed_health_checks_stop_a_ready_service_and_its_restart_policy_applies() {
    let sb = Sandbox::new();
    let mut server = sb.serve(&[]);
    server.wait_ready();
    let (healthy, lives) = (sb.path("healthy"), sb.path("lives"));
    let script = sb.script_file(&format!(
        "echo life >> {lives}\ntouch {healthy}\nwhile :; do sleep 0.1; done",
        lives = lives.display(),
        healthy = healthy.display()
    ));
    let health = format!("exec:test -e {}", healthy.display());
    let args = [
        "run",
        "web",
        "--ready",
        &health,
        "--health",
        &health,
        "--health-interval",
        "100ms",
        "--health-failures",
        "2",
        "--restart",
        "on-failure:1",
        "--",
        "dash",
        script.to_str().unwrap(),
    ];
    let mut run = sb.cmd(&args).stderr(std::process::Stdio::piped()).spawn().unwrap();
    eventually("web is ready", || json_status(&sb, "web").contains("\"status\": \"ready\""));
    fs::remove_file(&healthy).unwrap();
    eventually("web runs again", || lines(&lives) == 2);
    eventually("web is ready again", || json_status(&sb, "web").contains("\"status\": \"ready\""));
    let json = json_status(&sb, "web");
    assert!(
        json.contains("\"last_failure\": \"2 health checks in a row failed (exec:test -e "),
        "{json}"
    );
    fs::remove_file(&healthy).unwrap();
    let status = wait_for_exit(&mut run, PATIENCE, || json_status(&sb, "web"));
    assert_eq!(status.code(), Some(1));
    let json = json_status(&sb, "web");
    assert!(json.contains("\"status\": \"failed\""), "{json}");
    assert!(json.contains("2 health checks in a row failed (exec:test -e "), "{json}");
    assert!(json.contains("(after 1 restart)"), "{json}");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut run.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("web: health check failed (1 of 2 in a row)"), "{stderr}");
    drop(server);
}

#[test]
fn bad_restart_and_health_options_are_refused_before_anything_runs() {
    let sb = Sandbox::new();
    let mut server = sb.serve(&[]);
    server.wait_ready();
    let cases = [
        (&["--restart", "sometimes"][..], "--restart: invalid restart policy \"sometimes\""),
        (&["--restart", "on-failure:0"], "the limit after ':' is a number of 1 or more"),
        (&["--health", "tcp:1"], "--health needs --ready COND"),
        (&["--ready", "fd:3", "--health", "fd:3"], "cannot be checked again"),
        (
            &["--ready", "tcp:1", "--health", "tcp:1", "--health-failures", "0"],
            "not a number of 1 or more",
        ),
        (
            &["--ready", "tcp:1", "--health", "tcp:1", "--health-interval", "0s"],
            "--health-interval must be more than 0",
        ),
        (&["--health-interval", "1s"], "need --health COND"),
    ];
    for (flags, message) in cases {
        let mut args = vec!["run", "x"];
        args.extend_from_slice(flags);
        args.extend(["--", "true"]);
        sb.run(&args).code(2).stderr_has(message);
    }
    sb.run(&["status", "x"]).ok().stdout_has("not registered");
    let dir = startup_dir(&sb);
    script_in(&dir, "dash", "db.sh", "# unitsync: restart=on-failur\ntrue");
    sb.run(&["up", "--dir", dir.to_str().unwrap()])
        .code(1)
        .stderr_has("restart=: invalid restart policy \"on-failur\"");
}
