//! The integration-test harness: a private directory and socket per test,
//! a real server that is killed on drop, and command output that shows
//! everything when an assertion fails.

use std::fmt;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_unitsync");

/// A directory of its own for one test: socket, logs, scripts, a `bin/`
/// that holds `unitsync` and a `coder` symlink for the shells' PATH.
pub struct Sandbox {
    pub dir: PathBuf,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        // Short, because a socket path must fit in 108 bytes.
        let dir = std::env::temp_dir().join(format!(
            "us-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("bin")).unwrap();
        std::os::unix::fs::symlink(BIN, dir.join("bin/unitsync")).unwrap();
        std::os::unix::fs::symlink(BIN, dir.join("bin/coder")).unwrap();
        Sandbox { dir }
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("s/unitsync.sock")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// `unitsync ARGS` with this sandbox's socket and a clean environment.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args);
        self.env(&mut cmd);
        cmd
    }

    fn env(&self, cmd: &mut Command) {
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy().into_owned();
            if key.starts_with("UNITSYNC_") || key.starts_with("CODER_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("UNITSYNC_SOCKET", self.socket());
        let path = std::env::var("PATH").unwrap_or_default();
        cmd.env("PATH", format!("{}:{path}", self.dir.join("bin").display()));
        cmd.stdin(Stdio::null());
    }

    /// Runs `unitsync ARGS` to the end.
    pub fn run(&self, args: &[&str]) -> Output {
        output(format!("unitsync {}", args.join(" ")), self.cmd(args))
    }

    /// Runs `script` under `shell` (e.g. "busybox sh", "dash", "bash") with
    /// `unitsync` and `coder` on PATH.
    pub fn shell(&self, shell: &str, script: &str) -> Output {
        let mut words = shell.split_whitespace();
        let program = words.next().unwrap();
        require(program);
        let mut cmd = Command::new(program);
        cmd.args(words).arg("-c").arg(script).current_dir(&self.dir);
        self.env(&mut cmd);
        output(format!("{shell} -c '{script}'"), cmd)
    }

    /// Starts `unitsync serve ARGS` and waits until it answers.
    pub fn serve(&self, args: &[&str]) -> Server {
        let log = self.path(&format!("server-{}.log", Instant::now().elapsed().as_nanos()));
        let mut full = vec!["serve"];
        full.extend_from_slice(args);
        let mut cmd = self.cmd(&full);
        cmd.stdout(Stdio::null()).stderr(fs::File::create(&log).unwrap());
        let child = cmd.spawn().unwrap();
        let server = Server { child, log, socket: self.socket() };
        server.wait_ready();
        server
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Fails loudly when a tool the tests need is missing.
pub fn require(program: &str) {
    let found = std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .any(|dir| Path::new(dir).join(program).is_file());
    assert!(
        found,
        "{program} is not installed: run scripts/test.sh, which installs what the tests need"
    );
}

/// A running server; killed when dropped.
pub struct Server {
    pub child: Child,
    pub log: PathBuf,
    pub socket: PathBuf,
}

impl Server {
    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(mut conn) = UnixStream::connect(&self.socket)
                && conn.write_all(b"{\"op\":\"ping\"}\n").is_ok()
            {
                let mut line = String::new();
                if BufReader::new(&conn).read_line(&mut line).is_ok() && line.contains("pong") {
                    return;
                }
            }
            sleep(Duration::from_millis(10));
        }
        panic!(
            "server on {} did not answer within 10s; its log:\n{}",
            self.socket.display(),
            self.log()
        );
    }

    /// What the server wrote to stderr so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends `signal` (e.g. "TERM") and waits for the server to exit.
    pub fn stop_with(&mut self, signal: &str) -> ExitStatus {
        send_signal(self.pid() as u32, signal);
        let log = self.log.clone();
        wait_for_exit(&mut self.child, Duration::from_secs(10), || {
            format!(
                "server did not exit on SIG{signal}; log:\n{}",
                fs::read_to_string(&log).unwrap_or_default()
            )
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One finished command, shown in full when an assertion fails.
pub struct Output {
    pub command: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

pub fn output(command: String, mut cmd: Command) -> Output {
    let began = Instant::now();
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {command}: {e}"));
    Output {
        command,
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: began.elapsed(),
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "\n--- command: {}\n--- exit code: {:?} after {:?}\n--- stdout:\n{}\n--- stderr:\n{}\n---",
            self.command, self.code, self.elapsed, self.stdout, self.stderr
        )
    }
}

impl Output {
    #[track_caller]
    pub fn code(&self, expected: i32) -> &Output {
        assert_eq!(self.code, Some(expected), "unexpected exit code{self}");
        self
    }

    #[track_caller]
    pub fn ok(&self) -> &Output {
        self.code(0)
    }

    #[track_caller]
    pub fn stdout_is(&self, expected: &str) -> &Output {
        assert_eq!(self.stdout, expected, "unexpected stdout{self}");
        self
    }

    #[track_caller]
    pub fn stderr_has(&self, needle: &str) -> &Output {
        assert!(self.stderr.contains(needle), "stderr lacks {needle:?}{self}");
        self
    }

    #[track_caller]
    pub fn stdout_has(&self, needle: &str) -> &Output {
        assert!(self.stdout.contains(needle), "stdout lacks {needle:?}{self}");
        self
    }
}

/// Sends raw lines over one connection and returns each response line.
pub fn raw_exchange(socket: &Path, lines: &[&[u8]]) -> Vec<String> {
    let conn = UnixStream::connect(socket).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reader = BufReader::new(&conn);
    lines
        .iter()
        .map(|line| {
            (&conn).write_all(line).unwrap();
            (&conn).write_all(b"\n").unwrap();
            let mut response = String::new();
            reader.read_line(&mut response).unwrap();
            response
        })
        .collect()
}

/// Seconds since server start at which the log says `what` happened,
/// e.g. `at(&log, "pip-install started")`.
pub fn at(log: &str, what: &str) -> f64 {
    log.lines()
        .find(|line| line.split_once(' ').is_some_and(|(_, rest)| rest.starts_with(what)))
        .and_then(|line| line.strip_prefix('+')?.split_once('s')?.0.parse().ok())
        .unwrap_or_else(|| panic!("the server log never says {what:?}:\n{log}"))
}

/// Polls `cond` for up to 10 seconds.
#[track_caller]
pub fn eventually(what: &str, cond: impl FnMut() -> bool) {
    eventually_for(Duration::from_secs(10), what, cond);
}

/// Polls `cond` for up to `limit`.
#[track_caller]
pub fn eventually_for(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        sleep(Duration::from_millis(10));
    }
}

impl Sandbox {
    /// `WRAPPER... unitsync ARGS` (e.g. `setpriv --reuid 4242 ...` or
    /// `prlimit --nofile=128`), with this sandbox's socket and environment.
    /// The wrapper must exec the binary, so the child's pid is unitsync's.
    pub fn cmd_via(&self, wrapper: &[&str], binary: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(wrapper[0]);
        cmd.args(&wrapper[1..]).arg(binary).args(args);
        self.env(&mut cmd);
        cmd
    }

    /// Runs `WRAPPER... unitsync ARGS` to the end.
    pub fn run_via(&self, wrapper: &[&str], binary: &Path, args: &[&str]) -> Output {
        let shown = format!("{} unitsync {}", wrapper.join(" "), args.join(" "));
        output(shown, self.cmd_via(wrapper, binary, args))
    }

    /// Starts `WRAPPER... unitsync serve ARGS` and waits until it answers.
    pub fn serve_via(&self, wrapper: &[&str], binary: &Path, args: &[&str]) -> Server {
        let log = self.path(&format!("server-{}.log", Instant::now().elapsed().as_nanos()));
        let mut full = vec!["serve"];
        full.extend_from_slice(args);
        let mut cmd = self.cmd_via(wrapper, binary, &full);
        cmd.stdout(Stdio::null()).stderr(fs::File::create(&log).unwrap());
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {}: {e}", wrapper[0]));
        let server = Server { child, log, socket: self.socket() };
        server.wait_ready();
        server
    }
}

/// A field of `/proc/PID/status` as a number, e.g. `Threads` or `VmRSS`
/// (in KiB); None once the process is gone.
pub fn proc_status(pid: i32, field: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Raises this test process's soft RLIMIT_NOFILE to at least `need`, so
/// it (and every server it starts afterwards) can hold that many sockets.
/// Fails loudly when the limit cannot be raised: a test that needs many
/// connections must not quietly prove less.
pub fn ensure_fd_limit(need: u64) {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _serial = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let read = || {
        let limits = fs::read_to_string("/proc/self/limits").unwrap();
        let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap().to_owned();
        let mut words = line["Max open files".len()..].split_whitespace();
        let mut number = || words.next().and_then(|w| w.parse::<u64>().ok()).unwrap_or(u64::MAX);
        (number(), number())
    };
    let (soft, hard) = read();
    if soft >= need {
        return;
    }
    require("prlimit");
    let pid = std::process::id().to_string();
    let wanted = format!("--nofile={need}:{}", hard.max(need));
    let out = output(format!("prlimit --pid {pid} {wanted}"), {
        let mut cmd = Command::new("prlimit");
        cmd.args(["--pid", &pid, &wanted]);
        cmd
    });
    let (soft, hard) = read();
    assert!(
        soft >= need,
        "this test needs {need} open files but RLIMIT_NOFILE is {soft} (hard {hard}) and \
         prlimit could not raise it; run the tests after 'ulimit -n {need}'{out}"
    );
}

impl Output {
    #[track_caller]
    pub fn stderr_is(&self, expected: &str) -> &Output {
        assert_eq!(self.stderr, expected, "unexpected stderr{self}");
        self
    }
}

/// Sends `signal` (e.g. "TERM") to `pid` with kill(1).
pub fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill").args(["-s", signal, &pid.to_string()]).status().unwrap();
    assert!(status.success(), "kill -s {signal} {pid} failed");
}

/// Waits up to `limit` for `child` to exit; panics with `why()` after.
#[track_caller]
pub fn wait_for_exit(child: &mut Child, limit: Duration, why: impl Fn() -> String) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "{}", why());
        sleep(Duration::from_millis(10));
    }
}
