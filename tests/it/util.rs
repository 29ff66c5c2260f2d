//! The integration-test harness: a private directory and socket per test,
//! a real server that is killed on drop, and command output that shows
//! everything when an assertion fails.

use std::fmt;
use std::fs;
use std::io::{self, BufRead, BufReader, ErrorKind, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_unitsync");

/// How long a test waits for something that takes milliseconds when all
/// is well: far longer than any loaded machine needs, so that only a real
/// failure ever runs into it.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A name used by no other sandbox or log of this test run: the process id
/// and a process-wide counter (two clock readings can be equal; two
/// counter values cannot).
fn unique(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("{prefix}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst))
}

/// A directory of its own for one test: socket, logs, scripts, a `bin/`
/// that holds `unitsync` and a `coder` symlink for the shells' PATH.
pub struct Sandbox {
    pub dir: PathBuf,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        // Short, because a socket path must fit in 108 bytes.
        let dir = std::env::temp_dir().join(unique("us"));
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
        self.cmd_via(&[], Path::new(BIN), args)
    }

    /// `WRAPPER... BINARY ARGS` (e.g. `setpriv --reuid 4242 ...` or
    /// `prlimit --nofile=128`; no wrapper runs the binary itself), with
    /// this sandbox's socket and environment. A wrapper must exec the
    /// binary, so that the child's pid is unitsync's.
    pub fn cmd_via(&self, wrapper: &[&str], binary: &Path, args: &[&str]) -> Command {
        let mut cmd = match wrapper {
            [] => Command::new(binary),
            [program, rest @ ..] => {
                let mut cmd = Command::new(program);
                cmd.args(rest).arg(binary);
                cmd
            }
        };
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
        self.run_via(&[], Path::new(BIN), args)
    }

    /// Runs `WRAPPER... BINARY ARGS` to the end.
    pub fn run_via(&self, wrapper: &[&str], binary: &Path, args: &[&str]) -> Output {
        output(shown(wrapper, args), self.cmd_via(wrapper, binary, args))
    }

    /// Runs `script` under `shell` (e.g. "busybox sh", "dash", "bash") with
    /// `unitsync` and `coder` on PATH.
    pub fn shell(&self, shell: &str, script: &str) -> Output {
        let mut words = shell.split_whitespace();
        let program = words.next().unwrap();
        require(program);
        let mut cmd = Command::new(program);
        cmd.args(words).arg(self.script_file(script)).current_dir(&self.dir);
        self.env(&mut cmd);
        output(format!("{shell} -c '{script}'"), cmd)
    }

    /// `script` in a file of its own, for a shell to run as a script: a
    /// shell run as `sh -c` is a wrapper whose caller owns what it starts
    /// (README.md, "Abandoned units"), and a test's caller is the test.
    pub fn script_file(&self, script: &str) -> PathBuf {
        let file = self.path(&format!("{}.sh", unique("script")));
        fs::write(&file, script).unwrap();
        file
    }

    /// Starts `unitsync serve ARGS` and waits until it answers.
    pub fn serve(&self, args: &[&str]) -> Server {
        self.serve_via(&[], Path::new(BIN), args)
    }

    /// Starts `WRAPPER... BINARY serve ARGS` and waits until it answers.
    pub fn serve_via(&self, wrapper: &[&str], binary: &Path, args: &[&str]) -> Server {
        let log = self.path(&format!("{}.log", unique("server")));
        let mut full = vec!["serve"];
        full.extend_from_slice(args);
        let mut cmd = self.cmd_via(wrapper, binary, &full);
        cmd.stdout(Stdio::null()).stderr(fs::File::create(&log).unwrap());
        let child =
            cmd.spawn().unwrap_or_else(|e| panic!("cannot run {}: {e}", shown(wrapper, &full)));
        let mut server = Server { child, log, socket: self.socket() };
        server.wait_ready();
        server
    }
}

/// A command line as a failure message shows it.
fn shown(wrapper: &[&str], args: &[&str]) -> String {
    let mut words = wrapper.to_vec();
    words.push("unitsync");
    words.extend_from_slice(args);
    words.join(" ")
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Whether the tests run as root (the users and ownership tests need it).
pub fn is_root() -> bool {
    fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
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
    /// Waits until the server answers a ping; fails at once if it exits.
    pub fn wait_ready(&mut self) {
        let mut exited = None;
        let answered = poll(|| {
            exited = self.child.try_wait().unwrap();
            exited.is_some()
                || UnixStream::connect(&self.socket).is_ok_and(|stream| {
                    let mut conn = Conn::with(stream);
                    conn.try_ask(br#"{"op":"ping"}"#).is_ok_and(|answer| answer.contains("pong"))
                })
        });
        if let Some(status) = exited {
            panic!("the server exited ({status}) instead of serving; its log:\n{}", self.log());
        }
        assert!(
            answered,
            "server on {} did not answer within {PATIENCE:?}; its log:\n{}",
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
        let mut exited = None;
        poll(|| {
            exited = self.child.try_wait().unwrap();
            exited.is_some()
        });
        exited.unwrap_or_else(|| {
            panic!("server did not exit on SIG{signal} within {PATIENCE:?}; log:\n{}", self.log())
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
    pub fn stderr_is(&self, expected: &str) -> &Output {
        assert_eq!(self.stderr, expected, "unexpected stderr{self}");
        self
    }

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

/// One raw connection to a server, read without a line cap of our own.
pub struct Conn {
    pub reader: BufReader<UnixStream>,
}

impl Conn {
    pub fn open(socket: &Path) -> Conn {
        let stream = UnixStream::connect(socket)
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", socket.display()));
        Conn::with(stream)
    }

    /// A connection already made, with timeouts so a silent server fails
    /// the test instead of hanging it.
    pub fn with(stream: UnixStream) -> Conn {
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        stream.set_write_timeout(Some(PATIENCE)).unwrap();
        Conn { reader: BufReader::new(stream) }
    }

    pub fn stream(&self) -> &UnixStream {
        self.reader.get_ref()
    }

    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.reader.get_mut().write_all(bytes)
    }

    /// The next line, or None at the end of the stream.
    pub fn line(&mut self) -> io::Result<Option<String>> {
        let mut buf = Vec::new();
        if self.reader.read_until(b'\n', &mut buf)? == 0 {
            return Ok(None);
        }
        Ok(Some(String::from_utf8(buf).expect("the server answers in UTF-8")))
    }

    /// Sends one line and returns its answer, or says why there is none.
    pub fn try_ask(&mut self, line: &[u8]) -> Result<String, String> {
        let mut request = line.to_vec();
        request.push(b'\n');
        // The server may answer and close before it read everything (a line
        // over the cap, a busy server): its answer still counts when the
        // send failed.
        let sent = self.send(&request);
        match self.line() {
            Ok(Some(answer)) => Ok(answer),
            _ if sent.is_err() => Err(format!("cannot send: {}", sent.expect_err("checked"))),
            Ok(None) => Err("the server closed the connection instead of answering".into()),
            Err(e) => Err(format!("no answer: {e}")),
        }
    }

    #[track_caller]
    pub fn ask(&mut self, line: &[u8]) -> String {
        self.try_ask(line).unwrap_or_else(|why| panic!("{}: {why}", show(line)))
    }

    /// Whether the server closed this connection (end of stream or reset).
    pub fn is_closed(&mut self) -> bool {
        match self.line() {
            Ok(None) => true,
            Err(e) => e.kind() == ErrorKind::ConnectionReset,
            Ok(Some(_)) => false,
        }
    }
}

/// A possibly binary line, escaped and cut short for a failure message.
pub fn show(line: &[u8]) -> String {
    const SHOWN: usize = 300;
    let cut = &line[..line.len().min(SHOWN)];
    let more = if line.len() > SHOWN { format!("... ({} bytes)", line.len()) } else { "".into() };
    format!("\"{}\"{more}", cut.escape_ascii())
}

/// Sends raw lines over one connection and returns each answer line.
pub fn raw_exchange(socket: &Path, lines: &[&[u8]]) -> Vec<String> {
    let mut conn = Conn::open(socket);
    lines.iter().map(|line| conn.ask(line)).collect()
}

/// Seconds since server start at which the log says `what` happened,
/// e.g. `at(&log, "pip-install started")`.
pub fn at(log: &str, what: &str) -> f64 {
    log.lines()
        .find(|line| line.split_once(' ').is_some_and(|(_, rest)| rest.starts_with(what)))
        .and_then(|line| line.strip_prefix('+')?.split_once('s')?.0.parse().ok())
        .unwrap_or_else(|| panic!("the server log never says {what:?}:\n{log}"))
}

/// The one waiting loop: polls `cond` until it holds or [`PATIENCE`] runs
/// out, and says whether it held.
pub fn poll(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        sleep(Duration::from_millis(10));
    }
}

/// Waits for an event: polls `cond` until it holds, and fails, saying what
/// it waited for, if it has not after [`PATIENCE`].
#[track_caller]
pub fn eventually(what: &str, cond: impl FnMut() -> bool) {
    assert!(poll(cond), "waited {PATIENCE:?} in vain until {what}");
}

/// The status of `unit` as `status --json` prints it.
pub fn json_status(sb: &Sandbox, unit: &str) -> String {
    let out = sb.run(&["status", unit, "--json"]);
    out.ok();
    out.stdout
}

/// Waits until `unit` is blocked in a `start` (or `run`): a client has
/// asked to start it and is waiting for its dependencies.
#[track_caller]
pub fn until_waiting(sb: &Sandbox, unit: &str) {
    eventually(&format!("{unit} waits for its dependencies"), || {
        let status = json_status(sb, unit);
        status.contains("\"waiting_since\": ") && !status.contains("\"waiting_since\": null")
    });
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

/// A shell function for test scripts: `until_waiting UNIT` returns once
/// UNIT is blocked in a start, or fails after a minute (so that the script
/// carries on, and the test fails on what follows, instead of hanging).
pub const UNTIL_WAITING_SH: &str = r#"until_waiting() {
    i=0
    until unitsync status "$1" --json | grep -q '"waiting_since": [0-9]'; do
        i=$((i + 1))
        [ "$i" -lt 1200 ] || { echo "$1 never waited" >&2; return 1; }
        sleep 0.05
    done
}
"#;

/// A shell command that returns once `path` exists, or after a minute (so
/// that a failing test ends instead of hanging).
pub fn until_file_sh(path: &Path) -> String {
    format!(
        "i=0; until [ -e \"{}\" ] || [ $i -ge 1200 ]; do sleep 0.05; i=$((i + 1)); done",
        path.display()
    )
}

/// The state letter (`R`, `S`, `Z`...) and parent pid of process `pid`,
/// from /proc; None once it is gone.
pub fn proc_state(pid: &str) -> Option<(String, u32)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    Some((fields.next()?.to_owned(), fields.next()?.parse().ok()?))
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

/// An answer as JSON, with what differs between two servers that were told
/// the same things (instance id, pid, times) left out or zeroed.
pub fn normalized(answer: &str) -> serde_json::Value {
    use serde_json::Value;

    fn blank(v: &mut Value) {
        match v {
            Value::Number(n) if n.is_f64() => *v = Value::from(0.0),
            Value::Array(items) => items.iter_mut().for_each(blank),
            Value::Object(fields) => {
                fields.remove("instance");
                fields.remove("pid");
                fields.values_mut().for_each(blank);
            }
            _ => {}
        }
    }
    let mut v: Value = serde_json::from_str(answer)
        .unwrap_or_else(|e| panic!("the server's answer is not JSON ({e}): {answer}"));
    blank(&mut v);
    v
}
