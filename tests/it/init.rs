//! `up` and `run` as a container's init (README.md, "As a container's init"): they never die of a
//! signal, forward every signal that is not a stop signal, and a second
//! stop signal ends a shutdown at once. Real binary, real shells, real
//! signals.

use std::fs;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::up::{Background, processes_marked, script_in, startup_dir};
use crate::util::*;

/// Signals that an init forwards rather than dies of or stops on.
const FORWARDED: [&str; 6] = ["USR1", "USR2", "QUIT", "ALRM", "WINCH", "CONT"];

/// Shell code that appends the name of each signal in `signals` to `log`
/// when it comes, and marks `ready` once the traps are set.
fn traps(signals: &[&str], log: &std::path::Path) -> String {
    let mut code = String::new();
    for signal in signals {
        code += &format!("trap 'echo {signal} >> {}' {signal}\n", log.display());
    }
    code
}

/// Sends each signal and waits until `log` shows it arrived, one at a
/// time (a shell runs one trap per signal, however many came).
fn deliver(signals: &[&str], pid: u32, log: &std::path::Path, alive: &mut dyn FnMut() -> bool) {
    for (i, signal) in signals.iter().enumerate() {
        send_signal(pid, signal);
        eventually(&format!("SIG{signal} is forwarded"), || {
            fs::read_to_string(log).unwrap_or_default().lines().count() > i
        });
        assert!(alive(), "died of SIG{signal}");
    }
    let got = fs::read_to_string(log).unwrap();
    assert_eq!(got.lines().collect::<Vec<_>>(), signals, "forwarded in order");
}

#[test]
fn up_forwards_other_signals_to_the_main_command_and_lives() {
    let sb = Sandbox::new();
    let dir = startup_dir(&sb);
    let token = format!("unitsync-fwd-cmd-{}", std::process::id());
    script_in(
        &dir,
        "dash",
        "web.sh",
        &format!("unitsync complete web\nwhile :; do sleep 0.1; : {token}; done"),
    );
    let log = sb.path("cmd-signals");
    let ready = sb.path("cmd-ready");
    let mut with_hup: Vec<&str> = FORWARDED.to_vec();
    with_hup.push("HUP");
    let main = format!(
        "{}touch {}\nwhile :; do sleep 0.1; : {token}; done",
        traps(&with_hup, &log),
        ready.display()
    );
    let dir_arg = dir.to_string_lossy();
    let mut up = Background::start(&sb, &["up", "--dir", &dir_arg, "--", "dash", "-c", &main]);
    eventually("the main command runs", || ready.exists());
    let pid = up.child_id();
    deliver(&with_hup, pid, &log, &mut || up.alive());
    up.signal("TERM");
    // The main command dies of the SIGTERM up received.
    assert_eq!(up.wait(), Some(143), "{}\n{}", up.stdout(), up.stderr());
    assert!(up.stdout().contains("\nweb.sh  web   stopped"), "{}", up.stdout());
    eventually("nothing of it is left", || processes_marked(&token).is_empty());
    assert!(!sb.socket().exists(), "up left its socket behind");
}

#[test]
fn up_without_a_command_forwards_other_signals_to_its_services() {
    let sb = Sandbox::new();
    let dir = startup_dir(&sb);
    let token = format!("unitsync-fwd-svc-{}", std::process::id());
    let log = sb.path("svc-signals");
    let ready = sb.path("svc-ready");
    script_in(
        &dir,
        "dash",
        "svc.sh",
        &format!(
            "# unitsync: ready=file:{}\n{}touch {}\nwhile :; do sleep 0.1; : {token}; done",
            ready.display(),
            traps(&FORWARDED, &log),
            ready.display()
        ),
    );
    let dir_arg = dir.to_string_lossy();
    let mut up = Background::start(&sb, &["up", "--dir", &dir_arg]);
    eventually("the summary is printed", || up.stdout().contains("\nsvc.sh  svc   ready"));
    let pid = up.child_id();
    deliver(&FORWARDED, pid, &log, &mut || up.alive());
    // Without a main command, SIGHUP stops it like SIGTERM.
    up.signal("HUP");
    assert_eq!(up.wait(), Some(0), "{}\n{}", up.stdout(), up.stderr());
    assert!(up.stderr().contains("up: stopping on SIGHUP"), "{}", up.stderr());
    eventually("nothing of it is left", || processes_marked(&token).is_empty());
}

#[test]
fn run_forwards_other_signals_to_its_command_and_lives() {
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    let token = format!("unitsync-fwd-run-{}", std::process::id());
    let log = sb.path("run-signals");
    let ready = sb.path("run-ready");
    let mut with_hup: Vec<&str> = FORWARDED.to_vec();
    with_hup.push("HUP");
    let body = format!(
        "{}touch {}\nwhile :; do sleep 0.1; : {token}; done",
        traps(&with_hup, &log),
        ready.display()
    );
    let mut child = sb
        .cmd(&["run", "svc", "--", "dash", "-c", &body])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    eventually("the command runs", || ready.exists());
    let pid = child.id();
    deliver(&with_hup, pid, &log, &mut || child.try_wait().unwrap().is_none());
    send_signal(pid, "TERM");
    let status = wait_for_exit(&mut child, Duration::from_secs(30), || "run did not exit".into());
    assert_eq!(status.code(), Some(143));
    eventually("nothing of it is left", || processes_marked(&token).is_empty());
}

#[test]
fn a_second_stop_signal_kills_everything_at_once() {
    let sb = Sandbox::new();
    let dir = startup_dir(&sb);
    let token = format!("unitsync-again-{}", std::process::id());
    script_in(
        &dir,
        "dash",
        "stubborn.sh",
        &format!(
            "trap '' TERM INT\nunitsync complete stubborn\nwhile :; do sleep 0.1; : {token}; done"
        ),
    );
    let dir_arg = dir.to_string_lossy();
    let args = ["up", "--dir", &dir_arg, "--grace", "1h", "--stop-timeout", "1h"];
    let mut up = Background::start(&sb, &args);
    eventually("the summary is printed", || {
        up.stdout().contains("stubborn  ok") || up.stdout().contains("stubborn  completed")
    });
    up.signal("TERM");
    eventually("the hint is given", || {
        up.stderr().contains("send the signal again to kill everything now")
    });
    let began = Instant::now();
    up.signal("INT");
    assert_eq!(up.wait(), Some(130), "{}\n{}", up.stdout(), up.stderr());
    assert!(began.elapsed() < Duration::from_secs(10), "{:?}", began.elapsed());
    assert!(up.stderr().contains("up: SIGINT again: killing everything now"), "{}", up.stderr());
    eventually("nothing of it is left", || processes_marked(&token).is_empty());
    assert!(!sb.socket().exists(), "up left its socket behind");

    // `run` the same: the command ignores SIGTERM, the stop timeout is long.
    let _server = sb.serve(&[]);
    let ready = sb.path("run-ready");
    let body =
        format!("trap '' TERM\ntouch {}\nwhile :; do sleep 0.1; : {token}; done", ready.display());
    let stderr = sb.path("run.stderr");
    let mut child = sb
        .cmd(&["run", "stubborn", "--stop-timeout", "1h", "--", "dash", "-c", &body])
        .stdin(Stdio::null())
        .stderr(fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    eventually("the command runs", || ready.exists());
    send_signal(child.id(), "TERM");
    // Two signals sent at once may arrive as one: the second goes once
    // `run` has taken the first.
    eventually("run is stopping", || {
        fs::read_to_string(&stderr).unwrap_or_default().contains("send the signal again")
    });
    send_signal(child.id(), "TERM");
    let status = wait_for_exit(&mut child, Duration::from_secs(20), || "run did not exit".into());
    assert_eq!(status.code(), Some(143));
    eventually("nothing of it is left", || processes_marked(&token).is_empty());
}

#[test]
fn serve_lives_through_signals_that_are_not_stop_signals() {
    let sb = Sandbox::new();
    let mut server = sb.serve(&[]);
    for signal in ["USR1", "USR2", "QUIT", "ALRM", "HUP"] {
        send_signal(server.pid() as u32, signal);
    }
    sb.run(&["list"]).ok();
    let status = server.stop_with("TERM");
    assert_eq!(status.code(), Some(0), "{}", server.log());
}

#[test]
fn up_outlives_a_closed_output_pipe_and_still_shuts_down() {
    // `up ... 2>&1 | head -1`: the reader goes away after the first line;
    // every later log line and the summary meet a closed pipe.
    let sb = Sandbox::new();
    let dir = startup_dir(&sb);
    let token = format!("unitsync-epipe-{}", std::process::id());
    script_in(
        &dir,
        "dash",
        "web.sh",
        &format!(
            "echo web starts\nunitsync complete web\nexec dash -c 'while :; do echo tick; sleep 0.1; done' {token}"
        ),
    );
    let go = sb.path("go");
    let (code, head) = (sb.path("code"), sb.path("head"));
    let main = format!("while [ ! -e {} ]; do sleep 0.05; done", go.display());
    let pipeline = format!(
        "{{ \"$0\" up --dir {} -- dash -c '{main}'; echo $? > {}; }} 2>&1 | head -1 > {}",
        dir.display(),
        code.display(),
        head.display()
    );
    let mut sh =
        sb.cmd_via(&["dash", "-c", &pipeline], std::path::Path::new(BIN), &[]).spawn().unwrap();
    eventually("head has its line and is gone", || {
        fs::read_to_string(&head).is_ok_and(|h| h.lines().count() == 1)
            && !processes_marked(&token).is_empty()
    });
    fs::write(&go, "").unwrap();
    let status = wait_for_exit(&mut sh, Duration::from_secs(30), || "up did not end".into());
    assert!(status.success());
    assert_eq!(fs::read_to_string(&code).unwrap().trim(), "0", "up's own exit code");
    eventually("nothing of it is left", || processes_marked(&token).is_empty());
    assert!(!sb.socket().exists(), "up left its socket behind");
}

#[test]
fn the_sigkill_after_a_stop_timeout_reaches_the_service_under_its_run_wrapper() {
    // A service run through `run` (it has a header) that ignores its stop
    // signal: the SIGKILL at its 1 s stop timeout must reach the command
    // itself, not only the wrapper, long before the 20 s grace.
    let sb = Sandbox::new();
    let dir = startup_dir(&sb);
    let token = format!("unitsync-stubborn-svc-{}", std::process::id());
    script_in(
        &dir,
        "dash",
        "stubborn.sh",
        &format!(
            "# unitsync: ready=exec:true stop-timeout=1s\ntrap '' TERM\nexport MARK={token}\n\
             while :; do sleep 0.1; done"
        ),
    );
    for _ in 0..3 {
        let dir = dir.to_string_lossy();
        let began = Instant::now();
        let out = sb.run(&["up", "--dir", &dir, "--grace", "20s", "--", "true"]);
        out.ok().stdout_has("stubborn.sh  stubborn  stopped (killed after 1.00s)");
        // The whole up, startup included, within a few seconds of the
        // 1 s stop timeout: nowhere near the grace.
        assert!(began.elapsed() < Duration::from_secs(10), "{out}");
        eventually("nothing of it is left", || processes_marked(&token).is_empty());
    }
}

/// A TCP port on the loopback that nothing listens on (bound, then freed).
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn a_service_stopped_before_it_was_ready_fails_and_releases_nobody() {
    let sb = Sandbox::new();
    let mut server = sb.serve(&[]);
    server.wait_ready();
    let ready = format!("tcp:{}", closed_port());
    let mut web = sb
        .cmd(&["run", "web", "--ready", &ready, "--", "sleep", "100"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    eventually("web runs", || json_status(&sb, "web").contains(r#""status": "started""#));
    send_signal(web.id(), "TERM");
    wait_for_exit(&mut web, Duration::from_secs(30), || "run web did not stop".into());
    let status = json_status(&sb, "web");
    assert!(status.contains(r#""status": "failed""#), "{status}");
    assert!(status.contains("stopped before it was ready"), "{status}");
    // What waits for it is told at once, and never runs.
    sb.run(&["run", "agent", "--after", "web", "--timeout", "20s", "--", "true"])
        .code(5)
        .stderr_has("stopped before it was ready");
}

#[test]
fn a_oneshot_stopped_before_it_ended_fails() {
    let sb = Sandbox::new();
    let mut server = sb.serve(&[]);
    server.wait_ready();
    let script = sb.script_file("trap 'exit 0' TERM\nwhile :; do sleep 0.05; done");
    let script = script.to_string_lossy();
    let mut job =
        sb.cmd(&["run", "job", "--", "dash", &script]).stdin(Stdio::null()).spawn().unwrap();
    eventually("job runs", || json_status(&sb, "job").contains(r#""status": "started""#));
    send_signal(job.id(), "TERM");
    wait_for_exit(&mut job, Duration::from_secs(30), || "run job did not stop".into());
    let status = json_status(&sb, "job");
    assert!(status.contains("stopped before it completed"), "even though it exited 0: {status}");
}

#[test]
fn a_service_that_exits_before_ready_with_status_0_makes_run_exit_1_with_a_hint() {
    let sb = Sandbox::new();
    let mut server = sb.serve(&[]);
    server.wait_ready();
    let ready = format!("tcp:{}", closed_port());
    sb.run(&["run", "web", "--ready", &ready, "--", "true"])
        .code(1)
        .stderr_has("web: the service exited (exit status 0) before it was ready")
        .stderr_has("daemon off;");
}

#[test]
fn run_as_pid_1_reaps_the_orphans_its_command_leaves() {
    require("unshare");
    let sb = Sandbox::new();
    let mut server = sb.serve(&[]);
    server.wait_ready();
    let out = sb.path("zombies");
    // Four orphans (their parent subshell exits at once) that end soon;
    // then the script waits until no sleep is left and counts zombies.
    let script = sb.script_file(&format!(
        "for i in 1 2 3 4; do ( sleep 0.2 & ); done\n\
         n=0\n\
         while [ $n -lt 400 ]; do\n\
           z=$(grep -l '^[0-9]* ([^)]*) Z' /proc/[0-9]*/stat 2>/dev/null | wc -l)\n\
           s=$(grep -l '^[0-9]* (sleep) [^Z]' /proc/[0-9]*/stat 2>/dev/null | wc -l)\n\
           if [ \"$s\" -eq 0 ] && [ \"$z\" -eq 0 ]; then echo clean > {out}; exit 0; fi\n\
           sleep 0.05; n=$((n+1))\n\
         done\n\
         echo \"zombies: $z\" > {out}",
        out = out.display()
    ));
    let script = script.to_string_lossy();
    sb.run_via(
        &["unshare", "--pid", "--fork", "--mount-proc"],
        std::path::Path::new(BIN),
        &["run", "reaper", "--", "dash", &script],
    )
    .ok();
    assert_eq!(fs::read_to_string(&out).unwrap().trim(), "clean");
}

#[test]
fn run_as_pid_1_of_a_pid_namespace_forwards_other_signals_and_lives() {
    require("unshare");
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    let token = format!("unitsync-fwd-pid1-{}", std::process::id());
    let log = sb.path("pid1-signals");
    let ready = sb.path("pid1-ready");
    let body = format!(
        "{}touch {}\nwhile :; do sleep 0.1; : {token}; done",
        traps(&FORWARDED, &log),
        ready.display()
    );
    let mut unshare = sb
        .cmd_via(
            &["unshare", "--pid", "--fork", "--kill-child", "--mount-proc"],
            std::path::Path::new(BIN),
            &["run", "svc", "--", "dash", "-c", &body],
        )
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    eventually("the command runs", || ready.exists());
    // `run` is the child unshare forked: PID 1 inside, some pid outside.
    let children = format!("/proc/{}/task/{}/children", unshare.id(), unshare.id());
    let run: u32 = fs::read_to_string(&children).unwrap().trim().parse().unwrap();
    deliver(&FORWARDED, run, &log, &mut || unshare.try_wait().unwrap().is_none());
    send_signal(run, "TERM");
    let status = wait_for_exit(&mut unshare, Duration::from_secs(30), || "run did not exit".into());
    assert_eq!(status.code(), Some(143));
    eventually("nothing of it is left", || processes_marked(&token).is_empty());
}
