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

pub(crate) fn startup_dir(sb: &Sandbox) -> std::path::PathBuf {
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
    // The summary cuts a long result to keep its rows short.
    out.stdout_has("deploy.sh  deploy  not run: dependency build failed: dependency fe…");
    // fetch has no header, but it is a unit all the same.
    out.stdout_has("fetch.sh   fetch   failed: exit status 2");
    out.stdout_has("lint.sh    lint    ok");
    out.stdout_has("linted");
    assert!(!out.stdout.contains("built") && !out.stdout.contains("deployed"), "{out}");
    out.stderr_has("unitsync: up: 1 failed, 2 not run; not running the main command");
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
    out.code(1).stderr_has("b.sh: unknown header key \"before\"");
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
    send_signal(child.id(), "TERM");
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

/// A script run by `shell` ("dash", "busybox sh"): its shebang names the
/// shell's full path, so each test says which shell its scripts meet.
pub(crate) fn script_in(dir: &Path, shell: &str, name: &str, body: &str) {
    let mut words = shell.split_whitespace();
    let program = words.next().unwrap();
    require(program);
    let path = std::env::var("PATH").unwrap_or_default();
    let full = path.split(':').map(|d| Path::new(d).join(program)).find(|p| p.is_file()).unwrap();
    let rest: Vec<&str> = words.collect();
    let shebang = format!("#!{} {}", full.display(), rest.join(" "));
    let path = dir.join(name);
    fs::write(&path, format!("{}\n{body}\n", shebang.trim_end())).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// `up ARGS` started in the background, its stdout and stderr going to
/// files of the sandbox, so a test can watch them while it runs.
pub(crate) struct Background {
    child: std::process::Child,
    stdout: std::path::PathBuf,
    stderr: std::path::PathBuf,
}

impl Background {
    pub(crate) fn start(sb: &Sandbox, args: &[&str]) -> Background {
        let stdout = sb.path("up.stdout");
        let stderr = sb.path("up.stderr");
        let child = sb
            .cmd(args)
            .stdout(fs::File::create(&stdout).unwrap())
            .stderr(fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        Background { child, stdout, stderr }
    }

    pub(crate) fn stdout(&self) -> String {
        fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    pub(crate) fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    pub(crate) fn child_id(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    pub(crate) fn signal(&self, signal: &str) {
        send_signal(self.child.id(), signal);
    }

    /// Waits (generously) for `up` to exit; returns its exit code.
    pub(crate) fn wait(&mut self) -> Option<i32> {
        let (stdout, stderr) = (self.stdout.clone(), self.stderr.clone());
        let read = |path: &Path| fs::read_to_string(path).unwrap_or_default();
        let why = || format!("up did not exit:\n{}\n{}", read(&stdout), read(&stderr));
        wait_for_exit(&mut self.child, Duration::from_secs(30), why).code()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Pids of live processes whose environment or command line carries `token`.
pub(crate) fn processes_marked(token: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.parse::<u32>().is_err() || proc_state(&name).is_some_and(|(s, _)| s == "Z") {
            continue;
        }
        let mut text = fs::read(entry.path().join("cmdline")).unwrap_or_default();
        text.extend(fs::read(entry.path().join("environ")).unwrap_or_default());
        if String::from_utf8_lossy(&text).contains(token) {
            found.push(name);
        }
    }
    found
}

#[test]
fn what_cannot_work_is_refused_before_anything_runs() {
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 4] = [
        (
            "a cycle",
            &[("a.sh", "# unitsync: after=b\ntrue"), ("b.sh", "# unitsync: after = a\ntrue")],
            "b.sh: cycle: b -> a -> b",
        ),
        (
            "an unknown key",
            &[("db.sh", "# unitsync: afterr=a\ntrue")],
            "db.sh: unknown header key \"afterr\" (did you mean after?)",
        ),
        (
            "a unit claimed twice",
            &[("db.sh", "# unitsync: ready=file:x\ntrue"), ("db.py", "true")],
            "db.sh: claims unit db like ",
        ),
        (
            "a command before the header",
            &[("app.sh", "set -e\n# unitsync: after=db\ntrue")],
            "app.sh: the '# unitsync:' header must come before any command, but \"set -e\" comes first",
        ),
    ];
    for (what, scripts, message) in cases {
        let sb = Sandbox::new();
        let dir = startup_dir(&sb);
        let ran = sb.path("ran");
        script(&dir, "0-marker.sh", &format!("touch {}", ran.display()));
        for (name, body) in scripts {
            script(&dir, name, body);
        }
        let out =
            sb.run(&["up", "--dir", &dir.to_string_lossy(), "--", "touch", &ran.to_string_lossy()]);
        out.code(1).stderr_has(message);
        assert!(out.elapsed < Duration::from_secs(5), "{what} took long to refuse{out}");
        assert!(!ran.exists(), "something ran despite {what}{out}");
    }
}

#[test]
fn an_unknown_dependency_is_warned_about_at_once() {
    let sb = Sandbox::new();
    let dir = startup_dir(&sb);
    script(&dir, "database.sh", "true");
    script(&dir, "app.sh", "# unitsync: after=databse\ntrue");
    let out = sb.run(&["up", "--dir", &dir.to_string_lossy(), "--script-timeout", "200ms"]);
    out.code(1);
    out.stderr_has("app.sh: no script provides databse (did you mean database? it must come from another process, or app will wait for it)");
    // The warning comes before anything runs.
    assert!(
        out.stderr.find("databse (did you mean").unwrap()
            < out.stderr.find("database registered").unwrap(),
        "{out}"
    );
}

#[test]
fn a_file_that_is_not_executable_is_reported_not_skipped() {
    let sb = Sandbox::new();
    let dir = startup_dir(&sb);
    script(&dir, "setup.sh", "echo set up");
    fs::write(dir.join("migrate.sh"), "#!/bin/sh\necho migrated\n").unwrap();
    script(&dir, "app.sh", "# unitsync: after=migrate\necho app");
    let main = sb.path("main-ran");
    let out =
        sb.run(&["up", "--dir", &dir.to_string_lossy(), "--", "touch", &main.to_string_lossy()]);
    out.code(1);
    out.stderr_has(&format!(
        "up: {}: not executable; chmod +x {}; counted as failed",
        dir.join("migrate.sh").display(),
        dir.join("migrate.sh").display()
    ));
    out.stdout_has("migrate.sh  migrate  not run: not executable; chmod +x ");
    // Its dependents fail at once rather than wait for it.
    out.stdout_has("app.sh      app      not run: dependency migrate failed");
    out.stdout_has("setup.sh    setup    ok");
    assert!(!main.exists(), "the main command ran{out}");

    // An executable whose interpreter is missing (#!/bin/bash in a busybox
    // image) is reported the same way.
    fs::remove_file(dir.join("migrate.sh")).unwrap();
    fs::write(dir.join("migrate.sh"), "#!/no/such/shell\necho migrated\n").unwrap();
    fs::set_permissions(dir.join("migrate.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    let out =
        sb.run(&["up", "--dir", &dir.to_string_lossy(), "--", "touch", &main.to_string_lossy()]);
    out.code(1).stderr_has(
        "migrate.sh: cannot run it: its interpreter /no/such/shell (its #! line) was not found",
    );
    out.stdout_has("migrate.sh  migrate  not run: cannot run it: its interpreter /no/suc…");
    out.stdout_has("app.sh      app      not run: dependency migrate failed");
    assert!(!main.exists(), "the main command ran{out}");
}

#[test]
fn a_main_command_that_cannot_run_exits_127_or_126() {
    let sb = Sandbox::new();
    sb.run(&["up", "--", "no-such-command-here"])
        .code(127)
        .stderr_has("cannot run no-such-command-here");
    let plain = sb.path("plain");
    fs::write(&plain, "#!/bin/sh\n").unwrap();
    sb.run(&["up", "--", &plain.to_string_lossy()]).code(126);
}

#[test]
fn a_service_that_ignores_sigterm_is_killed_after_its_stop_timeout() {
    let sb = Sandbox::new();
    let dir = startup_dir(&sb);
    let token = format!("unitsync-stubborn-{}", std::process::id());
    // It says it is ready itself (no header), then ignores SIGTERM.
    script_in(
        &dir,
        "dash",
        "stubborn.sh",
        &format!(
            "trap '' TERM\nunitsync complete stubborn\nwhile :; do sleep 0.1; : {token}; done"
        ),
    );
    // Its own stop timeout, then --grace, which caps the whole shutdown
    // whatever the stop timeouts say.
    let cases = [
        ("300ms", "5s", "up: stubborn: still running 300ms after SIGTERM; killing it (SIGKILL)"),
        (
            "1h",
            "300ms",
            "up: stubborn: still running when the grace of 300ms was over; killing it (SIGKILL)",
        ),
    ];
    for (stop_timeout, grace, logged) in cases {
        let dir = dir.to_string_lossy();
        let out = sb.run(&[
            "up",
            "--dir",
            &dir,
            "--stop-timeout",
            stop_timeout,
            "--grace",
            grace,
            "--",
            "true",
        ]);
        out.ok().stderr_has(logged);
        out.stdout_has("stubborn.sh  stubborn  stopped (killed after ");
        assert!(out.elapsed < Duration::from_secs(20), "{out}");
        eventually("nothing of it is left", || processes_marked(&token).is_empty());
    }
}

#[test]
fn without_a_command_up_stays_while_a_service_runs_and_stops_it_on_sigterm() {
    let sb = Sandbox::new();
    let dir = startup_dir(&sb);
    let log = sb.path("stopped");
    let token = format!("unitsync-stays-{}", std::process::id());
    // A service without a header, which completes its unit and keeps
    // running (`exec daemon`), and a service with one, after it.
    script_in(
        &dir,
        "busybox sh",
        "web.sh",
        &format!(
            "trap 'echo web >> {}; exit 0' TERM\nunitsync complete web\nwhile :; do sleep 0.1; : {token}; done",
            log.display()
        ),
    );
    let ready = sb.path("api-ready");
    script_in(
        &dir,
        "dash",
        "api.sh",
        &format!(
            "# unitsync: after=web ready=file:{}\ntrap 'echo api >> {}; exit 0' TERM\ntouch {}\nwhile :; do sleep 0.1; : {token}; done",
            ready.display(),
            log.display(),
            ready.display()
        ),
    );
    let mut up = Background::start(&sb, &["up", "--dir", &dir.to_string_lossy()]);
    eventually("the summary is printed", || up.stdout().contains("\napi.sh  api   ready"));
    assert!(up.alive(), "up ended while its services ran:\n{}\n{}", up.stdout(), up.stderr());
    up.signal("TERM");
    assert_eq!(up.wait(), Some(0), "{}\n{}", up.stdout(), up.stderr());
    assert_eq!(fs::read_to_string(&log).unwrap(), "api\nweb\n", "{}", up.stderr());
    assert!(up.stdout().contains("\nweb.sh  web   stopped"), "{}", up.stdout());
    assert!(up.stdout().contains("\napi.sh  api   stopped"), "{}", up.stdout());
    assert!(up.stderr().contains("up: stopping on SIGTERM"), "{}", up.stderr());
    eventually("nothing of it is left", || processes_marked(&token).is_empty());
    assert!(!sb.socket().exists(), "up left its socket behind");
}

#[test]
fn the_main_command_keeps_the_standard_input() {
    // `docker run -it image sh`: the shell needs the terminal; scripts do not.
    let sb = Sandbox::new();
    let dir = startup_dir(&sb);
    script(&dir, "setup.sh", "read line || echo no input for scripts");
    let mut cmd = sb.cmd(&[
        "up",
        "--dir",
        &dir.to_string_lossy(),
        "--",
        "sh",
        "-c",
        "read line; echo \"got $line\"",
    ]);
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(b"hello\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("setup.sh | no input for scripts\n"), "{stdout}");
    assert!(stdout.contains("\ngot hello\n"), "{stdout}");
}

/// A TCP port nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn services_run_under_the_main_command_and_stop_in_reverse_dependency_order() {
    require("python3");
    let sb = Sandbox::new();
    let dir = startup_dir(&sb);
    let port = free_port();
    let token = format!("unitsync-services-{}", std::process::id());
    let stops = sb.path("stops");
    let stops = stops.display();
    // A database: a TCP listener, ready once its port accepts connections.
    script_in(
        &dir,
        "dash",
        "db.sh",
        &format!(
            "# unitsync: ready = tcp:127.0.0.1:{port} stop-timeout = 5s\n\
             trap 'echo db >> {stops}; exit 0' TERM\n\
             python3 -c 'import socket, time\n\
             s = socket.socket()\n\
             s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
             s.bind((\"127.0.0.1\", {port}))\n\
             s.listen(8)\n\
             while True: s.accept()[0].close()' &\n\
             wait"
        ),
    );
    // Seeding has no header: it is a unit all the same.
    script_in(&dir, "dash", "seed.sh", &format!("echo seeded > {}", sb.path("seeded").display()));
    // An app: a service after both, ready when it says so on fd 3.
    script_in(
        &dir,
        "busybox sh",
        "app.sh",
        &format!(
            "# unitsync: after=db, seed ready=fd:3\n\
             trap 'echo app >> {stops}; exit 0' TERM\n\
             python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {port}))' || exit 1\n\
             echo ready >&3\n\
             while :; do sleep 1; done"
        ),
    );
    // A migration that leaves a helper behind, daemonized with setsid and
    // holding its output pipe.
    script_in(
        &dir,
        "busybox sh",
        "migrate.sh",
        "# unitsync: after=db,seed\nsetsid sh -c 'while :; do sleep 1; done' &\necho migrated",
    );
    let list = sb.path("list");
    let main = format!(
        "unitsync list > {}; python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {port}))' && exit 3",
        list.display()
    );
    // A generous deadline for startup, so that a broken service fails the test
    // rather than hang it.
    // A generous deadline for startup, so that a broken service fails the
    // test rather than hang it.
    let mut cmd = sb.cmd(&[
        "up",
        "--script-timeout",
        "60s",
        "--dir",
        &dir.to_string_lossy(),
        "--script-timeout",
        "60s",
        "--",
        "sh",
        "-c",
        &main,
    ]);
    cmd.env("UNITSYNC_TEST_MARK", &token);
    let out = output("unitsync up (services)".to_owned(), cmd);
    out.code(3);
    let list = fs::read_to_string(&list).unwrap();
    let status = |unit: &str| {
        let line = list.lines().find(|l| l.starts_with(&format!("{unit} "))).unwrap_or("");
        line.split_whitespace().nth(1).unwrap_or("?").to_owned()
    };
    assert_eq!(
        [status("db"), status("app"), status("seed"), status("migrate")],
        ["ready", "ready", "completed", "completed"],
        "{list}{out}"
    );
    // The app is stopped before the database it depends on.
    assert_eq!(fs::read_to_string(sb.path("stops")).unwrap(), "app\ndb\n", "{out}");
    out.stdout_has("migrate.sh | migrated\n");
    out.stdout_has("\ndb.sh       db       ready");
    out.stdout_has("\ndb.sh       db       stopped");
    out.stdout_has("\napp.sh      app      stopped");
    out.stdout_has("\nseed.sh     seed     ok");
    assert!(
        out.stderr.find("up: stopping app").unwrap() < out.stderr.find("up: stopping db").unwrap(),
        "{out}"
    );
    // Nothing of it is left, the setsid helper included, and the port is closed.
    assert_eq!(processes_marked(&token), Vec::<String>::new(), "processes survived up{out}");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the database still listens{out}"
    );
}

#[test]
fn a_script_without_a_header_ends_its_unit_unless_it_did() {
    let sb = Sandbox::new();
    let dir = startup_dir(&sb);
    // Failed by the script, which then exits 0: it stays failed.
    script_in(&dir, "dash", "disk.sh", "unitsync fail disk --reason 'no space left'\nexit 0");
    // Ended by up from the exit status.
    script_in(&dir, "busybox sh", "fine.sh", "true");
    script_in(&dir, "busybox sh", "broken.sh", "exit 4");
    let out = sb.run(&["up", "--dir", &dir.to_string_lossy(), "--", "true"]);
    out.code(1);
    out.stdout_has("\ndisk.sh    disk    failed: no space left");
    out.stdout_has("\nfine.sh    fine    ok");
    out.stdout_has("\nbroken.sh  broken  failed: exit status 4");
    out.stderr_has("disk failed: no space left");
    out.stderr_has("fine completed");
    out.stderr_has("broken failed");
}

#[test]
fn a_script_that_only_waited_shows_its_wait_and_no_run_time() {
    let sb = Sandbox::new();
    let dir = startup_dir(&sb);
    // b fails only once c is seen waiting for it.
    script(
        &dir,
        "b.sh",
        "# unitsync: unit=b\n\
         until unitsync status c --json | grep -q '\"waiting_since\": [0-9]'; do sleep 0.05; done\n\
         exit 2",
    );
    script(&dir, "c.sh", "# unitsync: after=b\necho c ran");
    let out = up(&sb, &dir, &["true"]);
    out.code(1);
    let row =
        out.stdout.lines().find(|l| l.starts_with("c.sh ")).unwrap_or_else(|| panic!("{out}"));
    assert!(row.contains("not run: dependency b failed"), "{out}");
    let fields: Vec<&str> = row.split_whitespace().collect();
    let (waited, ran) = (fields[fields.len() - 2], fields[fields.len() - 1]);
    assert_ne!(waited, "-", "the wait is lost: {out}");
    assert_eq!(ran, "-", "c never ran: {out}");
    // The timeline draws the wait.
    let lane =
        out.stdout.lines().rev().find(|l| l.starts_with("c ")).unwrap_or_else(|| panic!("{out}"));
    assert!(lane.contains('.'), "no dots for the wait: {out}");
}

#[test]
fn up_owns_its_scripts_units_even_through_a_helper_that_exits() {
    let sb = Sandbox::new();
    let dir = startup_dir(&sb);
    // Without $UNITSYNC_OWNER, the helper `sh -c` would own the script's
    // unit and abandon it on exit; under `up`, which ends that unit from
    // the script's exit status, `up` owns it.
    script(
        &dir,
        "helped.sh",
        "sh -c 'unitsync start \"$UNITSYNC_UNIT\"; true'\n\
         unitsync status helped | grep '^status: *started' || exit 9\n\
         unitsync status helped | grep '^owner:'",
    );
    let out = up(&sb, &dir, &["true"]);
    // Owned by up (the server's pid: up serves in-process), and completed
    // by it once the script exited 0.
    let serving = out.stderr.lines().next().unwrap_or_default().to_owned();
    let pid = serving.rsplit_once("(pid ").map(|(_, p)| p.trim_end_matches(')')).unwrap_or("?");
    out.ok().stdout_has(&format!("owner:      pid {pid}\n"));
    out.stderr_has("helped completed (ran ");
}

#[test]
fn a_unit_a_script_under_up_starts_under_another_name_is_the_scripts() {
    let sb = Sandbox::new();
    let dir = startup_dir(&sb);
    // The seeds' way: a script named after its module starts a unit of
    // another name, then dies (set -e) without completing it. `up` does
    // not end that unit, so the script owns it, and its dependent stops
    // at once instead of waiting out its timeout.
    script(
        &dir,
        "claude.sh",
        "set -e\nunitsync start claude-code\nfalse\nunitsync complete claude-code",
    );
    script(
        &dir,
        "review.sh",
        "unitsync want review claude-code\nunitsync start review --timeout 5m || exit $?",
    );
    let out = up(&sb, &dir, &["true"]);
    out.code(1);
    out.stderr_has("claude-code failed (ran ");
    out.stderr_has("abandoned: the script that started it (pid ");
    // Not run, whichever of its start and up's look comes first.
    let row = out.stdout.lines().find(|l| l.starts_with("review.sh ")).unwrap_or_default();
    assert!(row.contains("not run: dependency claude-code failed"), "{out}");
    assert!(out.elapsed < Duration::from_secs(60), "it waited out a timeout{out}");
}

#[test]
fn a_header_script_killed_after_its_stop_timeout_ends_stopped_not_abandoned() {
    let sb = Sandbox::new();
    let dir = startup_dir(&sb);
    let token = format!("unitsync-stubborn-header-{}", std::process::id());
    // Run by `unitsync run`, which up kills with the script: `up`, not
    // that `run`, owns the unit, and ends it as stopped.
    script(
        &dir,
        "svc.sh",
        &format!(
            "# unitsync: stop-timeout=300ms\ntrap '' TERM\nunitsync ready\n\
             while :; do sleep 0.1; : {token}; done"
        ),
    );
    let out = up(&sb, &dir, &["true"]);
    out.ok().stderr_has("up: svc: still running 300ms after SIGTERM; killing it (SIGKILL)");
    out.stdout_has("  stopped (killed after 300ms)");
    assert!(!out.stderr.contains("abandoned"), "{out}");
    eventually("nothing of it is left", || processes_marked(&token).is_empty());
}

#[test]
fn an_exit_status_is_told_as_it_was_and_an_empty_dir_is_warned_about() {
    let sb = Sandbox::new();
    let dir = startup_dir(&sb);
    // `exit 130` is a status, not SIGINT: up words the real wait status.
    script(&dir, "quits.sh", "exit 130");
    let empty = sb.path("empty");
    fs::create_dir(&empty).unwrap();
    let (dir, empty) = (dir.to_string_lossy(), empty.to_string_lossy());
    let out = sb.run(&["up", "--dir", &dir, "--dir", &empty, "--", "true"]);
    out.code(1);
    out.stdout_has("quits.sh  quits  failed: exit status 130");
    out.stderr_has("up: 1 failed; not running the main command");
    out.stderr_has(&format!("up: warning: --dir {empty} holds no scripts"));
}

#[test]
fn a_service_that_dies_after_startup_stops_the_container_with_exit_1() {
    // With a main command and without: up names the unit and why, stops
    // everything in order and exits 1, within seconds, nothing left.
    for with_main in [true, false] {
        let sb = Sandbox::new();
        let dir = startup_dir(&sb);
        let token = format!("unitsync-dies-{}-{with_main}", std::process::id());
        let pidfile = sb.path("db.pid");
        script_in(
            &dir,
            "dash",
            "db.sh",
            &format!(
                "# unitsync: ready=file:{ready}\nexport MARK={token}\necho $$ > {pid}\n\
                 touch {ready}\nwhile :; do sleep 0.1; done",
                ready = sb.path("db.ready").display(),
                pid = pidfile.display()
            ),
        );
        script_in(
            &dir,
            "dash",
            "app.sh",
            &format!(
                "# unitsync: after=db ready=exec:true\nexport MARK={token}\nwhile :; do sleep 0.1; done"
            ),
        );
        let mut args =
            vec!["up".to_owned(), "--dir".to_owned(), dir.to_string_lossy().into_owned()];
        if with_main {
            let main = format!("export MARK={token}; while :; do sleep 0.1; done");
            args.extend(["--".to_owned(), "dash".to_owned(), "-c".to_owned(), main]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut up = Background::start(&sb, &args);
        eventually("the summary is printed", || up.stdout().contains("app.sh  app   ready"));
        let pid: u32 = fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
        send_signal(pid, "KILL");
        let code = up.wait();
        let stderr = up.stderr();
        assert_eq!(code, Some(1), "{stderr}");
        assert!(
            stderr.contains("up: db failed after startup: killed by SIGKILL; stopping everything"),
            "{stderr}"
        );
        assert!(stderr.contains("up: stopping app"), "{stderr}");
        eventually("nothing of it is left", || processes_marked(&token).is_empty());
    }
}
