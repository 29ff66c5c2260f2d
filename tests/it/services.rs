//! `unitsync run --ready`: services that dependents use while they keep
//! running. Real listeners (python3), real shell scripts under busybox sh
//! and dash, real signals; every wait is for an event, with a deadline far
//! beyond what the event needs.

use std::fs;
use std::io::Read;
use std::net::TcpListener;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::*;

const SHELLS: [&str; 2] = ["busybox sh", "dash"];
/// How long anything in these tests may take; far beyond what it needs.
const PATIENCE: Duration = Duration::from_secs(60);

/// A listener that answers every connection with one line, and records a
/// SIGTERM in $GOT. Argument: tcp PORT | unix PATH, then a file it creates
/// once it listens.
const LISTENER: &str = r#"
import os, signal, socket, sys
kind, where, mark = sys.argv[1:4]
def term(signum, frame):
    if os.environ.get("GOT"):
        with open(os.environ["GOT"], "a") as f:
            f.write("listener got SIGTERM\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, term)
if kind == "tcp":
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", int(where)))
else:
    s = socket.socket(socket.AF_UNIX)
    s.bind(where)
s.listen(64)
open(mark + ".tmp", "w").close()
os.rename(mark + ".tmp", mark)
while True:
    c, _ = s.accept()
    try:
        c.sendall(b"hello from the service\n")
    except OSError:
        pass  # a readiness probe that hung up at once
    c.close()
"#;

/// Connects like a dependent would and prints the line the listener sends;
/// fails while nothing listens. Arguments: tcp PORT | unix PATH.
const CLIENT: &str = r#"
import socket, sys
kind, where = sys.argv[1:3]
if kind == "tcp":
    s = socket.create_connection(("127.0.0.1", int(where)), 10)
else:
    s = socket.socket(socket.AF_UNIX)
    s.connect(where)
sys.stdout.write(s.makefile().readline())
"#;

/// The service: starts the listener without exec, as a startup script
/// would, records both pids, and with NOTIFY=3 writes a newline to fd 3
/// once the listener listens. Arguments: tcp PORT | unix PATH.
const SERVICE: &str = r#"
python3 listener.py "$1" "$2" listening 3>&- &
echo $! > listener.pid
echo $$ > service.pid
if [ "$NOTIFY" = 3 ]; then
    while [ ! -e listening ]; do sleep 0.05; done
    echo >&3
fi
wait
"#;

/// A sandbox with a server and the python programs in place.
fn setup() -> (Sandbox, Server) {
    require("python3");
    let sb = Sandbox::new();
    let server = sb.serve(&[]);
    fs::write(sb.path("listener.py"), LISTENER).unwrap();
    fs::write(sb.path("client.py"), CLIENT).unwrap();
    (sb, server)
}

/// A TCP port nothing listens on (bound, read, closed).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `status UNIT --json`, parsed.
fn status(sb: &Sandbox, unit: &str) -> Value {
    let out = sb.run(&["status", unit, "--json"]);
    out.ok();
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON: {e}{out}"))
}

/// `unitsync ARGS` as `SHELL SCRIPT` would run it: in the sandbox, stderr
/// kept for the report.
fn spawn(sb: &Sandbox, args: &[&str]) -> Child {
    let mut cmd = sb.cmd(args);
    cmd.current_dir(&sb.dir).stdout(Stdio::null()).stderr(Stdio::piped());
    cmd.spawn().unwrap()
}

/// `run UNIT ARGS -- SHELL FILE ARGS...` with `body` written to FILE.
fn run_script(sb: &Sandbox, shell: &str, file: &str, body: &str, args: &[&str]) -> Command {
    fs::write(sb.path(file), body).unwrap();
    let mut words: Vec<&str> = args.to_vec();
    words.push("--");
    words.extend(shell.split_whitespace());
    words.push(file);
    let mut cmd = sb.cmd(&words);
    cmd.current_dir(&sb.dir).stdout(Stdio::null()).stderr(Stdio::piped());
    cmd
}

/// A `run` in the background. If a test fails while it runs, it gets
/// SIGTERM (which it forwards), then SIGKILL: no service outlives a test.
struct Running(Child);

impl Running {
    fn spawn(mut cmd: Command) -> Running {
        Running(cmd.spawn().unwrap())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(self.0.try_wait(), Ok(None)) && Instant::now() < deadline {
                sleep(Duration::from_millis(10));
            }
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Waits for `child` to exit, within PATIENCE; returns its status and stderr.
fn finish(child: &mut Child, what: &str) -> (ExitStatus, String) {
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not exit within {PATIENCE:?}");
        }
        sleep(Duration::from_millis(10));
    };
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    (status, stderr)
}

/// Sends `signal` (e.g. "TERM") to `pid`.
fn kill(signal: &str, pid: u32) {
    let status = Command::new("kill").args(["-s", signal, &pid.to_string()]).status().unwrap();
    assert!(status.success(), "kill -s {signal} {pid}");
}

/// Whether `pid` runs (a zombie does not).
fn alive(pid: u32) -> bool {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
}

/// The pid a script wrote to `file` in the sandbox.
fn pid_in(sb: &Sandbox, file: &str) -> u32 {
    let mut pid = None;
    eventually(&format!("{file} is written"), || {
        let text = fs::read_to_string(sb.path(file)).unwrap_or_default();
        pid = text.trim().parse().ok();
        pid.is_some()
    });
    pid.unwrap()
}

/// A dependent, as a startup script under `shell`: waits for `svc`, then
/// connects where the service listens and prints what it says.
fn dependent(sb: &Sandbox, shell: &str, kind: &str, at: &str) -> Output {
    let script = format!(
        "unitsync want web svc && unitsync start web --timeout 60s && python3 client.py {kind} {at}"
    );
    sb.shell(shell, &script)
}

/// The service listens (`kind`: tcp or unix) and is ready by the condition
/// `cond` gives for where it listens; with `notify`, its script says so on
/// fd 3. A dependent starts once it is ready and reaches it while it keeps
/// running; then SIGTERM to `run` stops the script and its listener, and
/// the unit is completed as stopped.
fn dependents_reach_a_running_service(
    kind: &str,
    cond: impl Fn(&Sandbox, &str) -> String,
    notify: bool,
) {
    for shell in SHELLS {
        let (sb, _server) = setup();
        let at = match kind {
            "tcp" => free_port().to_string(),
            _ => sb.path("svc.sock").to_string_lossy().into_owned(),
        };
        let ready = cond(&sb, &at);
        let args = ["run", "svc", "--ready", &ready];
        let mut cmd = run_script(&sb, shell, "service.sh", SERVICE, &args);
        cmd.args([kind, &at]).env("NOTIFY", if notify { "3" } else { "" });
        let mut svc = Running::spawn(cmd);
        let out = dependent(&sb, shell, kind, &at);
        out.ok().stdout_is("hello from the service\n");
        let (script, listener) = (pid_in(&sb, "service.pid"), pid_in(&sb, "listener.pid"));
        assert!(svc.0.try_wait().unwrap().is_none(), "{shell}, {ready}: run ended{out}");
        assert!(alive(script) && alive(listener), "{shell}, {ready}: the service ended");
        assert_eq!(status(&sb, "svc")["status"], "ready", "{shell}, {ready}");

        kill("TERM", svc.0.id());
        let (_, stderr) = finish(&mut svc.0, "run svc");
        assert!(stderr.contains("svc: ready\n"), "{shell}, {ready}: {stderr}");
        assert!(stderr.contains("svc: completed (stopped)\n"), "{shell}, {ready}: {stderr}");
        let unit = status(&sb, "svc");
        assert_eq!((&unit["status"], &unit["note"]), (&"completed".into(), &"stopped".into()));
        // The listener was started without exec: the stop reached it too.
        eventually("the listener is stopped too", || !alive(listener));
        assert!(!alive(script));
    }
}

#[test]
fn fd_ready_when_the_script_writes_a_newline() {
    dependents_reach_a_running_service("tcp", |_, _| "fd:3".to_owned(), true);
}

#[test]
fn tcp_ready_when_the_port_accepts() {
    dependents_reach_a_running_service("tcp", |_, port| format!("tcp:{port}"), false);
}

#[test]
fn unix_ready_when_the_socket_accepts() {
    dependents_reach_a_running_service("unix", |_, path| format!("unix:{path}"), false);
}

#[test]
fn file_ready_when_the_path_exists() {
    let file = |sb: &Sandbox, _: &str| format!("file:{}", sb.path("listening").display());
    dependents_reach_a_running_service("tcp", file, false);
}

#[test]
fn exec_ready_when_the_probe_succeeds() {
    let probe = |sb: &Sandbox, port: &str| {
        format!("exec:python3 {} tcp {port}", sb.path("client.py").display())
    };
    dependents_reach_a_running_service("tcp", probe, false);
}

#[test]
fn a_service_that_exits_before_it_is_ready_fails_its_dependents_at_once() {
    for shell in SHELLS {
        for ready in ["tcp:1", "fd:3"] {
            let (sb, _server) = setup();
            // Two dependents wait first, with a deadline they must not need.
            let mut waiting: Vec<Child> = ["web", "worker"]
                .iter()
                .map(|unit| {
                    spawn(&sb, &["run", unit, "--after", "svc", "--timeout", "60s", "--", "true"])
                })
                .collect();
            let began = Instant::now();
            let body = "echo 'svc: no configuration' >&2\nexit 3\n";
            let out = output(
                format!("{shell}: run svc --ready {ready}"),
                run_script(&sb, shell, "service.sh", body, &["run", "svc", "--ready", ready]),
            );
            out.code(3).stderr_has("svc: marked failed: exited before it was ready: exit status 3");
            for (dependent, name) in waiting.iter_mut().zip(["web", "worker"]) {
                let (status, stderr) = finish(dependent, name);
                assert_eq!(status.code(), Some(5), "{shell}, {ready}: {stderr}");
                assert!(
                    stderr.contains(&format!(
                        "{name}: dependency svc failed: exited before it was ready: exit status 3"
                    )),
                    "{shell}, {ready}: {stderr}"
                );
            }
            assert!(
                began.elapsed() < Duration::from_secs(30),
                "dependents waited for their deadline"
            );
            assert_eq!(status(&sb, "svc")["status"], "failed");
        }
    }
}

#[test]
fn a_service_not_ready_in_time_is_stopped_and_run_exits_4() {
    for shell in SHELLS {
        let (sb, _server) = setup();
        // Never ready; its child is stopped with it.
        let body = "echo $$ > service.pid\nsleep 600 &\necho $! > child.pid\nwait\n";
        let args = ["run", "svc", "--ready", "file:never", "--ready-timeout", "1s"];
        let out =
            output(format!("{shell}: run svc"), run_script(&sb, shell, "service.sh", body, &args));
        out.code(4).stderr_has("svc: marked failed: not ready within 1.00s\n");
        assert!(!alive(pid_in(&sb, "service.pid")), "{shell}: the command still runs{out}");
        let child = pid_in(&sb, "child.pid");
        eventually("the service's child is stopped", || !alive(child));
        let unit = status(&sb, "svc");
        assert_eq!(
            (&unit["status"], &unit["reason"]),
            (&"failed".into(), &"not ready within 1.00s".into())
        );
    }
}

#[test]
fn closing_the_fd_without_a_newline_fails_at_once() {
    for shell in SHELLS {
        let (sb, _server) = setup();
        let body = "echo $$ > service.pid\nprintf x >&3\nexec 3>&-\nwhile :; do sleep 1; done\n";
        let args = ["run", "svc", "--ready", "fd:3"];
        let out =
            output(format!("{shell}: run svc"), run_script(&sb, shell, "service.sh", body, &args));
        let why = "will never be ready: it closed fd 3 without writing a newline";
        out.code(1).stderr_has(&format!("svc: marked failed: {why}\n"));
        assert!(!alive(pid_in(&sb, "service.pid")), "{shell}: the command still runs{out}");
        assert_eq!(status(&sb, "svc")["reason"], why);
    }
}

#[test]
fn sigterm_reaches_a_ready_service_and_its_children() {
    for shell in SHELLS {
        let (sb, _server) = setup();
        let port = free_port().to_string();
        // The script and the listener it started each record the signal.
        let body = "trap 'echo \"script got TERM\" >> got; exit 0' TERM
            python3 listener.py tcp \"$1\" listening 3>&- &
            echo $! > listener.pid
            while [ ! -e listening ]; do sleep 0.05; done
            echo >&3
            wait\n";
        let args = ["run", "svc", "--ready", "fd:3"];
        let mut cmd = run_script(&sb, shell, "service.sh", body, &args);
        cmd.arg(&port).env("GOT", sb.path("got"));
        let mut svc = Running::spawn(cmd);
        eventually("svc is ready", || status(&sb, "svc")["status"] == "ready");
        let listener = pid_in(&sb, "listener.pid");
        kill("TERM", svc.0.id());
        let (exit, stderr) = finish(&mut svc.0, "run svc");
        // run exits with the script's status: its trap exits 0.
        assert_eq!(exit.code(), Some(0), "{shell}: {stderr}");
        let unit = status(&sb, "svc");
        assert_eq!((&unit["status"], &unit["note"]), (&"completed".into(), &"stopped".into()));
        eventually("both record SIGTERM", || {
            let got = fs::read_to_string(sb.path("got")).unwrap_or_default();
            got.contains("script got TERM") && got.contains("listener got SIGTERM")
        });
        eventually("the listener exits", || !alive(listener));
    }
}

#[test]
fn a_service_that_ignores_sigterm_is_killed_after_the_stop_timeout() {
    for shell in SHELLS {
        let (sb, _server) = setup();
        let body = "trap '' TERM\necho $$ > service.pid\necho >&3\nwhile :; do sleep 1; done\n";
        let args = ["run", "svc", "--ready", "fd:3", "--stop-timeout", "1s"];
        let mut svc = Running::spawn(run_script(&sb, shell, "service.sh", body, &args));
        eventually("svc is ready", || status(&sb, "svc")["status"] == "ready");
        let script = pid_in(&sb, "service.pid");
        kill("TERM", svc.0.id());
        let (exit, stderr) = finish(&mut svc.0, "run svc");
        assert_eq!(exit.code(), Some(137), "{shell}: {stderr}");
        assert!(
            stderr.contains("svc: still running 1.00s after it was told to stop; sent SIGKILL"),
            "{shell}: {stderr}"
        );
        assert!(!alive(script));
        let unit = status(&sb, "svc");
        assert_eq!((&unit["status"], &unit["note"]), (&"completed".into(), &"stopped".into()));
    }
}

#[test]
fn a_service_leaves_nothing_behind_but_a_one_shot_command_may() {
    let (sb, _server) = setup();
    // A service that ends after it was ready: completed, and what it left
    // running gets SIGTERM.
    // (Its stdio is not run's: a test reading run's output to the end would
    // wait for it.)
    let body = "sleep 600 >/dev/null 2>&1 3>&- &\necho $! > child.pid\necho >&3\nexit 0\n";
    let args = ["run", "svc", "--ready", "fd:3"];
    output("run svc".into(), run_script(&sb, "dash", "service.sh", body, &args))
        .ok()
        .stderr_has("svc: completed\n");
    let child = pid_in(&sb, "child.pid");
    eventually("the service's leftover is stopped", || !alive(child));
    // A one-shot command may start a daemon on purpose: it keeps running.
    fs::remove_file(sb.path("child.pid")).unwrap();
    let body = "sleep 600 >/dev/null 2>&1 &\necho $! > child.pid\n";
    output("run setup".into(), run_script(&sb, "dash", "setup.sh", body, &["run", "setup"])).ok();
    let daemon = pid_in(&sb, "child.pid");
    assert!(alive(daemon), "run stopped the daemon a one-shot command started");
    kill("KILL", daemon);
}

#[test]
fn a_command_that_marks_itself_ready_is_stopped_like_a_service() {
    for shell in SHELLS {
        let (sb, _server) = setup();
        // No --ready: the script says it is ready with `unitsync ready`.
        let body = "echo $$ > service.pid\nunitsync ready\nwhile :; do sleep 1; done\n";
        let mut svc = Running::spawn(run_script(&sb, shell, "service.sh", body, &["run", "svc"]));
        sb.shell(shell, "unitsync want web svc && unitsync start web --timeout 60s").ok();
        let script = pid_in(&sb, "service.pid");
        assert!(alive(script), "{shell}: the service ended");
        assert_eq!(status(&sb, "svc")["status"], "ready", "{shell}");
        kill("TERM", svc.0.id());
        let (exit, stderr) = finish(&mut svc.0, "run svc");
        assert_eq!(exit.code(), Some(143), "{shell}: {stderr}");
        let unit = status(&sb, "svc");
        assert_eq!((&unit["status"], &unit["note"]), (&"completed".into(), &"stopped".into()));
        assert!(!alive(script));
    }
}
