//! unitsync-bench: the load generator and the bare line-echo server that
//! `scripts/bench.sh` measures unitsync against. Std only, never shipped.
//!
//! Every measuring subcommand prints one line of space-separated numbers on
//! stdout, in the order its usage line gives, so that a shell can `read`
//! them. Errors go to stderr with exit status 1.

use std::env;
use std::fs;
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread::{self, sleep};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod peers;
use peers::Contender;

const USAGE: &str = "usage:
  unitsync-bench echo SOCKET
      a bare line-echo server: one thread per connection, each line sent back
  unitsync-bench throughput SOCKET CONNS SECONDS LINE PID
      CONNS connections each send LINE and read one line back, in a loop;
      PID is the server's; prints: requests_per_second server_cpu_us_per_request
  unitsync-bench hold SOCKET CONNS SECONDS POLL_MS PID
      CONNS connections each declare a unit that waits for one nobody
      completes, then all poll `start` every POLL_MS; samples PID's VmRSS;
      prints: connected rounds peak_rss_kib threads
  unitsync-bench handoff unitsync TRIALS SOCKET UNITSYNC POLL_MS
  unitsync-bench handoff sleep|inotify TRIALS DIR
      time from an acknowledged completion to the waiter's exit;
      prints: trials median_us p95_us min_us max_us
  unitsync-bench ready tcp|fd TRIALS SOCKET UNITSYNC POLL_MS DIR
      a service run by `unitsync run --ready tcp:PORT|fd:3` becomes ready at
      a random moment; time from its listening (tcp) or its newline (fd) to
      the exit of a dependent's waiting `unitsync start`;
      prints: trials median_us p95_us min_us max_us
  unitsync-bench abandon TRIALS SOCKET UNITSYNC POLL_MS
      a script starts a unit a dependent waits for, and is killed at a
      random moment; time from the kill to the dependent's exit (5);
      prints: trials median_us p95_us min_us max_us
  unitsync-bench notify FIFO
      (the fd service) once a byte arrives on FIFO, writes a newline to fd
      3, then waits to be stopped
  unitsync-bench shutdown ROUNDS UNITSYNC DIR UNIT
      starts `unitsync up --dir DIR` on a socket of its own, waits until
      UNIT is ready, sends SIGTERM and times until `up` has exited;
      prints: rounds median_us p95_us min_us max_us
  unitsync-bench scale SOCKET chain|fan N PID LIMIT_SECONDS
      registers N units, declares their edges in a shuffled order (a chain,
      or each wanting 10 earlier units), then starts and completes them all
      in order, over one connection; stops declaring past the limit; prints:
      done|cut declared_fraction requests register_s declare_s run_s total_s
      rss_kib server_cpu_s
  unitsync-bench poke FIFO
      (the peers' dependent) one byte into FIFO
  unitsync-bench peer-ready ROUNDS DIR (NAME fifo|file|tcp SCRIPT)...
  unitsync-bench peer-time ROUNDS DIR (NAME SCRIPT)...
  unitsync-bench peer-stop ROUNDS DIR SERVICES (NAME -SIGNAL SCRIPT)...
      the peers' measures, interleaved round by round (see peers.rs);
      print one line per round and contender: round name microseconds";

/// Connection threads of both servers get the same small stack.
const THREAD_STACK: usize = 128 * 1024;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("unitsync-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one subcommand; `Ok(false)` for a usage error.
fn run(args: &[&str]) -> io::Result<bool> {
    match args {
        ["echo", socket] => echo(socket),
        ["throughput", socket, conns, secs, line, pid] => {
            throughput(socket, num(conns)?, secs_arg(secs)?, line, pid)
        }
        ["hold", socket, conns, secs, poll, pid] => {
            hold(socket, num(conns)?, secs_arg(secs)?, millis(poll)?, pid)
        }
        ["handoff", "unitsync", trials, socket, bin, poll] => {
            handoff_unitsync(num(trials)?, socket, bin, millis(poll)?).map(|t| report(&t))
        }
        ["handoff", kind @ ("sleep" | "inotify"), trials, dir] => {
            handoff_marker(kind, num(trials)?, Path::new(dir)).map(|t| report(&t))
        }
        ["ready", kind @ ("tcp" | "fd"), trials, socket, bin, poll, dir] => {
            ready_latency(kind, num(trials)?, socket, bin, millis(poll)?, Path::new(dir))
                .map(|t| report(&t))
        }
        ["abandon", trials, socket, bin, poll] => {
            abandon(num(trials)?, socket, bin, millis(poll)?).map(|t| report(&t))
        }
        ["notify", fifo] => notify(Path::new(fifo)),
        ["shutdown", rounds, bin, dir, unit] => {
            shutdown(num(rounds)?, bin, Path::new(dir), unit).map(|t| report(&t))
        }
        ["scale", socket, shape @ ("chain" | "fan"), n, pid, limit] => {
            scale(socket, shape, num(n)?, pid, secs_arg(limit)?)
        }
        ["poke", fifo] => peers::poke(Path::new(fifo)),
        ["peer-ready", rounds, dir, rest @ ..] if !rest.is_empty() && rest.len() % 3 == 0 => {
            let all = rest.chunks(3).map(|c| Contender { name: c[0], trigger: c[1], script: c[2] });
            peers::ready(num(rounds)?, Path::new(dir), &all.collect::<Vec<_>>())
        }
        ["peer-time", rounds, dir, rest @ ..] if !rest.is_empty() && rest.len() % 2 == 0 => {
            let all = rest.chunks(2).map(|c| Contender { name: c[0], trigger: "", script: c[1] });
            peers::time(num(rounds)?, Path::new(dir), &all.collect::<Vec<_>>())
        }
        ["peer-stop", rounds, dir, services, rest @ ..]
            if !rest.is_empty() && rest.len() % 3 == 0 =>
        {
            let all = rest.chunks(3).map(|c| Contender { name: c[0], trigger: c[1], script: c[2] });
            peers::stop(num(rounds)?, Path::new(dir), num(services)?, &all.collect::<Vec<_>>())
        }
        ["-h" | "--help"] => {
            println!("{USAGE}");
            Ok(())
        }
        _ => return Ok(false),
    }
    .map(|()| true)
}

fn num(s: &str) -> io::Result<usize> {
    s.parse().map_err(|_| fail(format!("not a number: {s}")))
}

fn secs_arg(s: &str) -> io::Result<Duration> {
    s.parse::<f64>().map(Duration::from_secs_f64).map_err(|_| fail(format!("not seconds: {s}")))
}

fn millis(s: &str) -> io::Result<Duration> {
    num(s).map(|ms| Duration::from_millis(ms as u64))
}

fn fail(message: impl Into<String>) -> io::Error {
    io::Error::other(message.into())
}

/// One client connection: a line out, a line back.
struct Conn {
    reader: BufReader<UnixStream>,
    line: Vec<u8>,
}

impl Conn {
    fn open(path: &str) -> io::Result<Conn> {
        let stream = UnixStream::connect(path)
            .map_err(|e| fail(format!("cannot connect to {path}: {e}")))?;
        Ok(Conn { reader: BufReader::new(stream), line: Vec::new() })
    }

    /// Sends `request` (newline included).
    fn send(&mut self, request: &[u8]) -> io::Result<()> {
        self.reader.get_mut().write_all(request)
    }

    /// Reads one line, newline included.
    fn recv(&mut self) -> io::Result<&[u8]> {
        self.line.clear();
        match self.reader.read_until(b'\n', &mut self.line)? {
            0 => Err(fail("the server closed the connection")),
            _ => Ok(&self.line),
        }
    }

    fn call(&mut self, request: &[u8]) -> io::Result<&[u8]> {
        self.send(request)?;
        self.recv()
    }

    /// Sends a JSON request without its newline; fails unless `"ok":true`.
    fn ok(&mut self, request: &str) -> io::Result<&[u8]> {
        let answer = self.call(format!("{request}\n").as_bytes())?;
        if !contains(answer, b"\"ok\":true") {
            let answer = String::from_utf8_lossy(answer);
            return Err(fail(format!("{request} was refused: {}", answer.trim_end())));
        }
        Ok(answer)
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The baseline: the least a thread-per-connection line server can do.
fn echo(path: &str) -> io::Result<()> {
    let _ = fs::remove_file(path);
    let listener = UnixListener::bind(path)?;
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let _ = thread::Builder::new().stack_size(THREAD_STACK).spawn(move || {
            let mut reader = BufReader::new(&stream);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                if (&stream).write_all(&line).is_err() {
                    return;
                }
            }
        });
    }
    Ok(())
}

/// Requests per second over `conns` connections, one request in flight each.
fn throughput(path: &str, conns: usize, length: Duration, line: &str, pid: &str) -> io::Result<()> {
    let request: Arc<[u8]> = format!("{line}\n").into_bytes().into();
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let go = Arc::new(Barrier::new(conns + 1));
    let mut workers = Vec::new();
    for _ in 0..conns {
        let (request, stop, done, go) = (request.clone(), stop.clone(), done.clone(), go.clone());
        let path = path.to_owned();
        workers.push(thread::spawn(move || -> io::Result<()> {
            // Connect and warm up before the clock starts, and reach the
            // barrier even on failure, or the others would wait forever.
            let conn = Conn::open(&path).and_then(|mut conn| {
                conn.call(&request)?;
                Ok(conn)
            });
            go.wait();
            let mut conn = conn?;
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                conn.call(&request)?;
                n += 1;
            }
            done.fetch_add(n, Ordering::Relaxed);
            Ok(())
        }));
    }
    go.wait();
    let began = Instant::now();
    let cpu = cpu_secs(pid);
    sleep(length);
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join().map_err(|_| fail("a load thread panicked"))??;
    }
    let cpu = cpu_secs(pid) - cpu;
    let requests = done.load(Ordering::Relaxed) as f64;
    let rate = requests / began.elapsed().as_secs_f64();
    println!("{rate:.0} {:.2}", cpu * 1e6 / requests.max(1.0));
    Ok(())
}

/// A field of /proc/PID/status, in its own unit (kB for VmRSS).
fn proc_status(pid: &str, field: &str) -> u64 {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Many clients waiting at once, as many startup scripts would.
fn hold(path: &str, conns: usize, length: Duration, poll: Duration, pid: &str) -> io::Result<()> {
    let tag = std::process::id();
    let mut all = Vec::with_capacity(conns);
    for i in 0..conns {
        let mut conn = Conn::open(path)?;
        conn.ok(&format!(r#"{{"op":"want","unit":"hold{tag}-{i}","deps":["gate{tag}"]}}"#))?;
        all.push(conn);
    }
    let requests: Vec<Vec<u8>> = (0..conns)
        .map(|i| format!("{{\"op\":\"start\",\"unit\":\"hold{tag}-{i}\"}}\n").into_bytes())
        .collect();
    let deadline = Instant::now() + length;
    let (mut rounds, mut peak) = (0, 0);
    loop {
        // Every client asks, then every client reads its answer: all of
        // them are in flight at once.
        for (conn, request) in all.iter_mut().zip(&requests) {
            conn.send(request)?;
        }
        for conn in &mut all {
            if !contains(conn.recv()?, b"\"result\":\"blocked\"") {
                return Err(fail("a held unit was not blocked"));
            }
        }
        rounds += 1;
        peak = peak.max(proc_status(pid, "VmRSS"));
        if Instant::now() >= deadline {
            break;
        }
        sleep(poll);
    }
    println!("{} {rounds} {peak} {}", all.len(), proc_status(pid, "Threads"));
    Ok(())
}

/// A small, seedable generator (xorshift64*), good enough for delays and
/// shuffles.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn from_clock() -> Rng {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_nanos());
        Rng::new(nanos as u64 ^ u64::from(std::process::id()))
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Uniform in `0..max`.
    fn duration(&mut self, max: Duration) -> Duration {
        let nanos = max.as_nanos().max(1) as u64;
        Duration::from_nanos(self.next() % nanos)
    }
}

/// A waiting `unitsync start`: declare, let it poll, complete its
/// dependency at a random moment of its poll cycle, time until it exits.
fn handoff_unitsync(
    trials: usize,
    socket: &str,
    bin: &str,
    poll: Duration,
) -> io::Result<Vec<Duration>> {
    let mut ctl = Conn::open(socket)?;
    let mut rng = Rng::from_clock();
    let tag = std::process::id();
    let poll_arg = format!("{}ms", poll.as_millis());
    let mut times = Vec::with_capacity(trials);
    for k in 0..trials {
        let (unit, dep) = (format!("h{tag}-{k}"), format!("h{tag}-{k}-dep"));
        let child = waiting_start(&mut ctl, socket, bin, &unit, &dep, &poll_arg)?;
        sleep(rng.duration(poll));
        ctl.ok(&format!(r#"{{"op":"complete","unit":"{dep}"}}"#))?;
        times.push(until_exit(child, &unit)?);
    }
    Ok(times)
}

/// Declares `unit` wanting `dep` and starts a `unitsync start unit` that
/// polls every `poll`; returns once its first start was refused, so that
/// it surely polls.
fn waiting_start(
    ctl: &mut Conn,
    socket: &str,
    bin: &str,
    unit: &str,
    dep: &str,
    poll: &str,
) -> io::Result<Child> {
    ctl.ok(&format!(r#"{{"op":"want","unit":"{unit}","deps":["{dep}"]}}"#))?;
    let mut child =
        spawn(Command::new(bin).args(["--socket", socket, "-q", "start", unit, "--poll", poll]))?;
    let status = format!("{{\"op\":\"status\",\"unit\":\"{unit}\"}}\n");
    let began = Instant::now();
    while contains(ctl.call(status.as_bytes())?, b"\"waiting_since\":null") {
        if began.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            return Err(fail(format!("{unit}: its start never began waiting")));
        }
        sleep(Duration::from_millis(1));
    }
    Ok(child)
}

/// Waits until `unit`'s status answer contains `needle`.
fn until_status(ctl: &mut Conn, unit: &str, needle: &[u8], child: &mut Child) -> io::Result<()> {
    let status = format!("{{\"op\":\"status\",\"unit\":\"{unit}\"}}\n");
    let began = Instant::now();
    while !contains(ctl.call(status.as_bytes())?, needle) {
        if began.elapsed() > Duration::from_secs(30) || child.try_wait()?.is_some() {
            let _ = child.kill();
            let needle = String::from_utf8_lossy(needle);
            return Err(fail(format!("{unit}: never showed {needle}")));
        }
        sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// Readiness detection: a dependent waits on a service that `unitsync run
/// --ready` probes; at a random moment of the probe cycle the service
/// becomes ready (the port starts listening, or the newline is written);
/// the time runs from then until the dependent's `start` has exited.
fn ready_latency(
    kind: &str,
    trials: usize,
    socket: &str,
    bin: &str,
    poll: Duration,
    dir: &Path,
) -> io::Result<Vec<Duration>> {
    let mut ctl = Conn::open(socket)?;
    let mut rng = Rng::from_clock();
    let tag = std::process::id();
    let poll_arg = format!("{}ms", poll.as_millis());
    let me = env::current_exe()?;
    let mut times = Vec::with_capacity(trials);
    for k in 0..trials {
        let (unit, service) = (format!("r{tag}-{k}"), format!("r{tag}-{k}-svc"));
        let dependent = waiting_start(&mut ctl, socket, bin, &unit, &service, &poll_arg)?;
        // The service starts at a random moment of the dependent's poll
        // cycle: two polls of one period started back to back would stay
        // in step, and the measure would show that artefact, not the tool.
        sleep(rng.duration(poll));
        // The port is picked free now and bound again later, by us, at the
        // moment the "service" becomes ready; fd: the service is this
        // program's `notify`, woken through a FIFO.
        let fifo = dir.join(format!("ready-{k}.fifo"));
        let (cond, command): (String, Vec<String>) = match kind {
            "tcp" => {
                let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
                (format!("tcp:{port}"), vec!["sleep".into(), "600".into()])
            }
            _ => {
                let made = Command::new("mkfifo").arg(&fifo).status()?;
                if !made.success() {
                    return Err(fail(format!("mkfifo {} failed", fifo.display())));
                }
                let notify = vec![me.display().to_string(), "notify".into()];
                ("fd:3".to_owned(), [notify, vec![fifo.display().to_string()]].concat())
            }
        };
        let mut args = vec!["--socket", socket, "-q", "run", &service, "--poll", &poll_arg];
        args.extend(["--ready", &cond, "--"]);
        args.extend(command.iter().map(String::as_str));
        let mut run = spawn(Command::new(bin).args(args))?;
        let started = format!("\"unit\":\"{service}\",\"status\":\"started\"");
        until_status(&mut ctl, &service, started.as_bytes(), &mut run)?;
        sleep(rng.duration(poll));
        let _listener = match kind {
            "tcp" => {
                let port = cond.trim_start_matches("tcp:");
                Some(std::net::TcpListener::bind(format!("127.0.0.1:{port}"))?)
            }
            _ => {
                fs::OpenOptions::new().write(true).open(&fifo)?.write_all(b"x")?;
                None
            }
        };
        times.push(until_exit(dependent, &unit)?);
        stop(&mut run)?;
        let _ = fs::remove_file(&fifo);
    }
    Ok(times)
}

/// An abandoned unit: a script starts a unit that a dependent waits for,
/// then is killed (kill -9) at a random moment of the dependent's poll
/// cycle; the time runs from the kill until the dependent's `start` has
/// exited, as it must, with 5 (a dependency failed).
fn abandon(trials: usize, socket: &str, bin: &str, poll: Duration) -> io::Result<Vec<Duration>> {
    let mut ctl = Conn::open(socket)?;
    let mut rng = Rng::from_clock();
    let tag = std::process::id();
    let poll_arg = format!("{}ms", poll.as_millis());
    let mut times = Vec::with_capacity(trials);
    for k in 0..trials {
        let (unit, dep) = (format!("a{tag}-{k}"), format!("a{tag}-{k}-dep"));
        let mut dependent = waiting_start(&mut ctl, socket, bin, &unit, &dep, &poll_arg)?;
        // The script owns `dep` (it is the client's parent) and then waits.
        // A file, not `sh -c`: a shell run as `sh -c` is a wrapper that the
        // owner walk goes past, up to this long-lived program.
        let start = format!("{bin} --socket {socket} -q start {dep} && exec sleep 600\n");
        let path = std::env::temp_dir().join(format!("unitsync-bench-{unit}.sh"));
        std::fs::write(&path, start)?;
        let mut script = spawn(Command::new("sh").arg(&path))?;
        let started = format!("\"unit\":\"{dep}\",\"status\":\"started\"");
        until_status(&mut ctl, &dep, started.as_bytes(), &mut script)?;
        let status = format!("{{\"op\":\"status\",\"unit\":\"{dep}\"}}\n");
        if contains(ctl.call(status.as_bytes())?, b"\"owner\":null") {
            return Err(fail(format!("{dep}: started without an owner")));
        }
        // Our own status requests checked the owner just now, which puts
        // off the dependent's next check by up to 5 ms: let that pass, then
        // die at a random moment of the dependent's check cycle (its poll,
        // or the 5 ms between checks if that is longer).
        let cycle = poll.max(Duration::from_millis(5));
        sleep(Duration::from_millis(10) + rng.duration(cycle));
        let t0 = Instant::now();
        script.kill()?;
        let status = dependent.wait()?;
        times.push(t0.elapsed());
        script.wait()?;
        let _ = std::fs::remove_file(&path);
        if status.code() != Some(5) {
            return Err(fail(format!("the waiter for {unit} ended with {status}, not 5")));
        }
    }
    Ok(times)
}

/// The fd: service: a newline on fd 3 once a byte comes through `fifo`.
fn notify(fifo: &Path) -> io::Result<()> {
    let mut byte = [0u8; 1];
    io::Read::read_exact(&mut fs::File::open(fifo)?, &mut byte)?;
    // SAFETY: fd 3 is the notification pipe `run` handed us; nothing else
    // in this process owns it.
    let mut fd3 = unsafe { <fs::File as std::os::fd::FromRawFd>::from_raw_fd(3) };
    fd3.write_all(b"\n")?;
    sleep(Duration::from_secs(600));
    Ok(())
}

/// SIGTERM to `child`, then waits for it.
fn stop(child: &mut Child) -> io::Result<()> {
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status()?;
    child.wait()?;
    Ok(())
}

/// Ordered shutdown: `up --dir DIR` until UNIT is ready, then SIGTERM;
/// the time runs from the signal until `up` has exited.
fn shutdown(rounds: usize, bin: &str, dir: &Path, unit: &str) -> io::Result<Vec<Duration>> {
    let socket = dir.join("up.sock");
    let socket = socket.to_str().ok_or_else(|| fail("the directory is not UTF-8"))?;
    let scripts = dir.join("scripts");
    let scripts = scripts.to_str().ok_or_else(|| fail("the directory is not UTF-8"))?;
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        // The services' `ready=file:` markers of the last round would make
        // them ready before their TERM traps are set.
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "up") {
                fs::remove_file(path)?;
            }
        }
        let mut up = spawn(Command::new(bin).args(["--socket", socket, "up", "--dir", scripts]))?;
        let began = Instant::now();
        let mut ctl = loop {
            match Conn::open(socket) {
                Ok(conn) => break conn,
                Err(_) if began.elapsed() < Duration::from_secs(30) => {
                    sleep(Duration::from_millis(5))
                }
                Err(e) => return Err(e),
            }
        };
        // The unit's own status: its dependencies' objects have one too.
        let ready = format!("\"unit\":\"{unit}\",\"status\":\"ready\"");
        until_status(&mut ctl, unit, ready.as_bytes(), &mut up)?;
        drop(ctl);
        let t0 = Instant::now();
        stop(&mut up)?;
        times.push(t0.elapsed());
    }
    Ok(times)
}

/// The same handoff with a marker file, polled by `sleep 1` or watched
/// with `inotifywait`, in `sh`.
fn handoff_marker(kind: &str, trials: usize, dir: &Path) -> io::Result<Vec<Duration>> {
    let (script, settle, spread) = match kind {
        "sleep" => (
            r#"while [ ! -e "$1" ]; do sleep 1; done"#,
            Duration::from_millis(300),
            Duration::from_secs(1),
        ),
        _ => (
            r#"until [ -e "$1" ]; do inotifywait -qq -t 1 -e create -e moved_to "$2"; done"#,
            Duration::from_millis(200),
            Duration::from_millis(200),
        ),
    };
    let mut rng = Rng::from_clock();
    let mut times = Vec::with_capacity(trials);
    for k in 0..trials {
        let marker = dir.join(format!("{kind}-{k}.done"));
        let child =
            spawn(Command::new("sh").arg("-c").arg(script).arg("sh").arg(&marker).arg(dir))?;
        sleep(settle + rng.duration(spread));
        fs::File::create(&marker)?;
        times.push(until_exit(child, &marker.display().to_string())?);
    }
    Ok(times)
}

fn spawn(cmd: &mut Command) -> io::Result<Child> {
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn()
}

/// From now until `child` has exited; it must succeed.
fn until_exit(mut child: Child, what: &str) -> io::Result<Duration> {
    let t0 = Instant::now();
    let status = child.wait()?;
    let took = t0.elapsed();
    if !status.success() {
        return Err(fail(format!("the waiter for {what} failed: {status}")));
    }
    Ok(took)
}

/// Prints `trials median_us p95_us min_us max_us`.
fn report(times: &[Duration]) {
    let mut us: Vec<f64> = times.iter().map(|d| d.as_secs_f64() * 1e6).collect();
    us.sort_by(f64::total_cmp);
    let n = us.len();
    if n == 0 {
        println!("0 0 0 0 0");
        return;
    }
    let median = if n % 2 == 1 { us[n / 2] } else { f64::midpoint(us[n / 2 - 1], us[n / 2]) };
    // Nearest rank.
    let p95 = us[(n * 95).div_ceil(100) - 1];
    println!("{n} {median:.0} {p95:.0} {:.0} {:.0}", us[0], us[n - 1]);
}

/// The dependencies of unit `i`: the one before it (chain), or 10 distinct
/// earlier units picked at random but the same on every run (fan).
fn deps_of(shape: &str, i: usize) -> Vec<usize> {
    match shape {
        "chain" => (i > 0).then(|| i - 1).into_iter().collect(),
        _ if i <= 10 => (0..i).collect(),
        _ => {
            let mut rng = Rng::new(i as u64);
            let mut picked = Vec::with_capacity(10);
            while picked.len() < 10 {
                let d = rng.below(i);
                if !picked.contains(&d) {
                    picked.push(d);
                }
            }
            picked
        }
    }
}

/// CPU seconds `pid` has used (user and system; /proc counts in 1/100 s).
fn cpu_secs(pid: &str) -> f64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesized command name; utime and stime are the
    // 14th and 15th of the whole line.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: u64 =
        rest.split_whitespace().skip(11).take(2).filter_map(|f| f.parse::<u64>().ok()).sum();
    ticks as f64 / 100.0
}

fn scale(path: &str, shape: &str, n: usize, pid: &str, limit: Duration) -> io::Result<()> {
    let mut conn = Conn::open(path)?;
    let cpu = cpu_secs(pid);
    let mut requests = 0;
    let began = Instant::now();
    for i in 0..n {
        conn.ok(&format!(r#"{{"op":"want","unit":"u{i}"}}"#))?;
        requests += 1;
    }
    let registered = began.elapsed();

    // Scripts run in any order: declare in a shuffled one, so that both
    // ends of every new edge exist and every edge is cycle-checked.
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = Rng::new(n as u64);
    for i in (1..n).rev() {
        order.swap(i, rng.below(i + 1));
    }
    let t = Instant::now();
    for (k, &i) in order.iter().enumerate() {
        if began.elapsed() > limit {
            // Too slow to finish here: say how far it got.
            let done = k as f64 / n as f64;
            let declared = t.elapsed().as_secs_f64();
            println!(
                "cut {done:.3} {requests} {:.3} {declared:.3} - - {} {:.2}",
                registered.as_secs_f64(),
                proc_status(pid, "VmRSS"),
                cpu_secs(pid) - cpu
            );
            return Ok(());
        }
        let deps = deps_of(shape, i);
        if deps.is_empty() {
            continue;
        }
        let deps: Vec<String> = deps.iter().map(|d| format!("\"u{d}\"")).collect();
        conn.ok(&format!(r#"{{"op":"want","unit":"u{i}","deps":[{}]}}"#, deps.join(",")))?;
        requests += 1;
    }
    let declared = t.elapsed();

    let t = Instant::now();
    for i in 0..n {
        let answer = conn.ok(&format!(r#"{{"op":"start","unit":"u{i}"}}"#))?;
        if !contains(answer, b"\"result\":\"started\"") {
            return Err(fail(format!("u{i} did not start: {}", String::from_utf8_lossy(answer))));
        }
        conn.ok(&format!(r#"{{"op":"complete","unit":"u{i}"}}"#))?;
        requests += 2;
    }
    let ran = t.elapsed();
    let total = began.elapsed();
    let s = |d: Duration| d.as_secs_f64();
    println!(
        "done 1 {requests} {:.3} {:.3} {:.3} {:.3} {} {:.2}",
        s(registered),
        s(declared),
        s(ran),
        s(total),
        proc_status(pid, "VmRSS"),
        cpu_secs(pid) - cpu
    );
    Ok(())
}
