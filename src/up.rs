//! `unitsync up`: the entrypoint of a plain container. Hosts the server
//! in-process, runs every startup script at once with its output prefixed,
//! summarises, then optionally runs the main command while still serving.
//!
//! A script whose first comment lines carry `# unitsync: after=a,b
//! soft-after=c unit=NAME` is run as if by `unitsync run` (this binary runs
//! itself as the wrapper), so ordering needs no boilerplate; other scripts
//! just run and may call the CLI themselves.
//!
//! Processes: each script runs in a process group of its own, so that a
//! stop signal, a `--script-timeout` or the end of `up` reaches everything
//! it started. `up` is a child subreaper (and may be PID 1): it reaps every
//! orphan that lands on it, polling `waitpid(-1)`, which is also how it
//! learns that its own children ended. It never waits on a `Child` handle,
//! whose status the reaping loop would steal.

use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::client::{Client, Say};
use crate::duration::{human, human_secs};
use crate::exit;
use crate::protocol::{Body, Request, UnitView};
use crate::render;
use crate::server;
use crate::signals;

/// How long children get between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(10);
/// How often the supervising loop reaps and checks.
const TICK: Duration = Duration::from_millis(10);
/// How many leading lines may hold the `# unitsync:` header.
const HEADER_LINES: usize = 10;

pub struct Spec {
    pub dir: Option<PathBuf>,
    pub scripts: Vec<PathBuf>,
    /// `Duration::ZERO`: no limit.
    pub script_timeout: Duration,
    pub command: Vec<OsString>,
    /// Columns for the summary's timeline.
    pub width: usize,
}

#[derive(Debug)]
pub enum Error {
    Dir { path: PathBuf, err: io::Error },
    Script { path: PathBuf, problem: String },
    Server(server::Error),
    Spawn { what: String, err: io::Error },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Dir { path, err } => {
                write!(f, "up: cannot read --dir {}: {err}", path.display())
            }
            Error::Script { path, problem } => write!(f, "up: {}: {problem}", path.display()),
            Error::Server(e) => write!(f, "up: {e}"),
            Error::Spawn { what, err } => write!(f, "up: cannot start {what}: {err}"),
        }
    }
}

// Messages name their causes (they are written for a log), so no
// `source()`: an error reporter walking the chain would say each twice.
impl std::error::Error for Error {}

/// A startup script and what its header says.
#[derive(Debug, PartialEq)]
struct Script {
    path: PathBuf,
    /// The name its output lines carry: the file name.
    name: String,
    /// Set when a header asks for `run`-style ordering.
    unit: Option<Order>,
}

/// The ordering a `# unitsync:` header declares.
#[derive(Debug, PartialEq)]
struct Order {
    unit: String,
    after: Vec<String>,
    soft_after: Vec<String>,
}

/// A child being supervised.
struct Child {
    name: String,
    unit: Option<String>,
    pid: Pid,
    began: Instant,
    ended: Option<(i32, Duration)>,
    timed_out: bool,
}

/// Runs `up`. Returns the exit code.
pub fn up(spec: &Spec, config: &server::Config, say: Say) -> Result<u8, Error> {
    let scripts = collect(spec)?;
    signals::catch();
    // Orphans of our scripts come to us, not to init, so we can reap them.
    let _ = nix::sys::prctl::set_child_subreaper(true);
    let running =
        server::prepare(config).and_then(server::Prepared::launch).map_err(Error::Server)?;
    let outputs = Arc::new(AtomicUsize::new(0));
    let width = scripts.iter().map(|s| s.name.len()).max().unwrap_or(0);

    let mut children = Vec::new();
    for script in &scripts {
        let mut command = match &script.unit {
            Some(order) => {
                let mut command = Command::new(self_exe());
                // The server's log already tells the story: only errors.
                command.args(["-q", "run"]).arg(&order.unit);
                for dep in &order.after {
                    command.arg("--after").arg(dep);
                }
                for dep in &order.soft_after {
                    command.arg("--soft-after").arg(dep);
                }
                command.arg("--").arg(&script.path);
                command
            }
            None => Command::new(&script.path),
        };
        command.env("UNITSYNC_SOCKET", &config.socket);
        let pid = spawn(&mut command, true, Some((&script.name, width, &outputs)))
            .map_err(|err| Error::Spawn { what: script.path.display().to_string(), err })?;
        let unit = script.unit.as_ref().map(|o| o.unit.clone());
        children.push(Child {
            name: script.name.clone(),
            unit,
            pid,
            began: Instant::now(),
            ended: None,
            timed_out: false,
        });
    }

    supervise(&mut children, spec.script_timeout);
    // Let the output of scripts that ended drain (a background process that
    // still holds a pipe open is not waited for).
    let drained = Instant::now() + Duration::from_secs(1);
    while outputs.load(Ordering::SeqCst) > 0 && Instant::now() < drained {
        thread::sleep(TICK);
    }

    let stopped = signals::received();
    let failed = summarise(&children, &config.socket, spec.width);
    let code = if let Some(stopped) = stopped {
        say.line(&format!("up: stopped by {}", signals::name(stopped)));
        exit::signaled(stopped)
    } else if failed > 0 {
        Say::error(&format!(
            "up: {failed} of {} scripts failed; not running the main command",
            children.len()
        ));
        exit::ERROR
    } else if let Some((program, args)) = spec.command.split_first() {
        let mut command = Command::new(program);
        command.args(args).env("UNITSYNC_SOCKET", &config.socket);
        let pid = spawn(&mut command, false, None)
            .map_err(|err| Error::Spawn { what: program.to_string_lossy().into_owned(), err })?;
        let mut main = vec![Child {
            name: program.to_string_lossy().into_owned(),
            unit: None,
            pid,
            began: Instant::now(),
            ended: None,
            timed_out: false,
        }];
        supervise(&mut main, Duration::ZERO);
        main[0].ended.map_or(exit::ERROR, |(code, _)| code as u8)
    } else {
        exit::SUCCESS
    };
    // Whatever the scripts left running goes with us.
    for child in &children {
        let _ = killpg(child.pid, Signal::SIGKILL);
    }
    reap_all();
    running.stop("up: stopping");
    Ok(code)
}

/// The scripts to run: executables in `--dir`, sorted, then the named ones.
fn collect(spec: &Spec) -> Result<Vec<Script>, Error> {
    let mut paths = Vec::new();
    if let Some(dir) = &spec.dir {
        let dir_err = |err| Error::Dir { path: dir.clone(), err };
        let mut found: Vec<PathBuf> = fs::read_dir(dir)
            .map_err(dir_err)?
            .filter_map(Result::ok)
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .map(|e| e.path())
            .filter(|p| {
                fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
            .collect();
        found.sort_unstable();
        paths.extend(found);
    }
    for path in &spec.scripts {
        match fs::metadata(path) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => paths.push(path.clone()),
            Ok(_) => {
                let problem = "is not an executable file; chmod +x it".to_owned();
                return Err(Error::Script { path: path.clone(), problem });
            }
            Err(e) => return Err(Error::Script { path: path.clone(), problem: e.to_string() }),
        }
    }
    let scripts: Vec<Script> = paths.into_iter().map(script).collect::<Result<_, _>>()?;
    for (i, a) in scripts.iter().enumerate() {
        let unit = |s: &Script| s.unit.as_ref().map(|o| o.unit.clone());
        if let Some(other) = scripts[..i].iter().find(|b| unit(b).is_some() && unit(b) == unit(a)) {
            let problem = format!(
                "declares unit {} like {}; give one of them another unit= in its header",
                unit(a).unwrap_or_default(),
                other.path.display()
            );
            return Err(Error::Script { path: a.path.clone(), problem });
        }
    }
    Ok(scripts)
}

/// Reads a script's `# unitsync:` header, if it has one.
fn script(path: PathBuf) -> Result<Script, Error> {
    let name = path
        .file_name()
        .map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
    let mut head = String::new();
    let file = fs::File::open(&path)
        .map_err(|e| Error::Script { path: path.clone(), problem: e.to_string() })?;
    // Only the start matters, and it may be a binary: read a little, lossily.
    let mut bytes = Vec::new();
    let _ = file.take(4096).read_to_end(&mut bytes);
    head.push_str(&String::from_utf8_lossy(&bytes));
    let unit =
        header(&head, &name).map_err(|problem| Error::Script { path: path.clone(), problem })?;
    Ok(Script { path, name, unit })
}

/// Parses the header out of the first lines of a script. `name` is the
/// file name, whose stem names the unit unless `unit=` does.
fn header(head: &str, name: &str) -> Result<Option<Order>, String> {
    let mut words = Vec::new();
    for line in head.lines().take(HEADER_LINES) {
        let line = line.trim();
        if line.is_empty() || line.starts_with("#!") {
            continue;
        }
        let Some(comment) = line.strip_prefix('#') else { break };
        if let Some(rest) = comment.trim().strip_prefix("unitsync:") {
            words.extend(rest.split_whitespace().map(str::to_owned));
        }
    }
    if words.is_empty() {
        return Ok(None);
    }
    let stem = name.split_once('.').map_or(name, |(stem, _)| stem);
    let mut order = Order { unit: stem.to_owned(), after: Vec::new(), soft_after: Vec::new() };
    let list =
        |v: &str| v.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect::<Vec<_>>();
    for word in words {
        match word.split_once('=') {
            Some(("after", v)) => order.after.extend(list(v)),
            Some(("soft-after", v)) => order.soft_after.extend(list(v)),
            Some(("unit", v)) if !v.is_empty() => order.unit = v.to_owned(),
            _ => {
                return Err(format!(
                    "unknown header word {word:?}; a '# unitsync:' line takes after=A,B soft-after=C unit=NAME"
                ));
            }
        }
    }
    Ok(Some(order))
}

/// Starts a child with our stop signals unblocked, optionally in a process
/// group of its own and with its output prefixed. Returns its pid.
fn spawn(
    command: &mut Command,
    own_group: bool,
    prefix: Option<(&str, usize, &Arc<AtomicUsize>)>,
) -> io::Result<Pid> {
    command.stdin(Stdio::null());
    if prefix.is_some() {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
    }
    signals::reset_in_child(command, own_group);
    let mut child = command.spawn()?;
    if let Some((name, width, live)) = prefix {
        let label = format!("{name:<width$} | ");
        if let Some(out) = child.stdout.take() {
            relay(out, label.clone(), false, live);
        }
        if let Some(err) = child.stderr.take() {
            relay(err, label, true, live);
        }
    }
    // The supervising loop reaps it with waitpid(-1); the handle is dropped.
    Ok(Pid::from_raw(child.id() as i32))
}

/// Copies a child's output line by line, each line prefixed and written in
/// one call, so lines of different scripts never interleave.
fn relay(
    stream: impl Read + Send + 'static,
    label: String,
    to_stderr: bool,
    live: &Arc<AtomicUsize>,
) {
    live.fetch_add(1, Ordering::SeqCst);
    let counter = live.clone();
    let spawned =
        thread::Builder::new().name("relay".into()).stack_size(64 * 1024).spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut line = Vec::new();
            while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                if !line.ends_with(b"\n") {
                    line.push(b'\n');
                }
                let mut out = label.clone().into_bytes();
                out.extend_from_slice(&line);
                let _ = match to_stderr {
                    true => io::stderr().lock().write_all(&out),
                    false => io::stdout().lock().write_all(&out),
                };
                line.clear();
            }
            counter.fetch_sub(1, Ordering::SeqCst);
        });
    if spawned.is_err() {
        live.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Waits until every child has ended, reaping orphans on the way,
/// forwarding stop signals and enforcing the timeout.
fn supervise(children: &mut [Child], timeout: Duration) {
    let mut forwarded: Option<Instant> = None;
    while children.iter().any(|c| c.ended.is_none()) {
        reap(children);
        let signal = signals::received();
        if let (Some(signal), None) = (signal, forwarded) {
            forwarded = Some(Instant::now());
            for child in children.iter().filter(|c| c.ended.is_none()) {
                terminate(child.pid, Signal::try_from(signal).unwrap_or(Signal::SIGTERM));
            }
        }
        if forwarded.is_some_and(|at| at.elapsed() >= GRACE) {
            for child in children.iter().filter(|c| c.ended.is_none()) {
                terminate(child.pid, Signal::SIGKILL);
            }
        }
        if !timeout.is_zero() {
            for child in children.iter_mut().filter(|c| c.ended.is_none()) {
                let over = child.began.elapsed().saturating_sub(timeout);
                if !over.is_zero() && !child.timed_out {
                    child.timed_out = true;
                    terminate(child.pid, Signal::SIGTERM);
                } else if over >= GRACE {
                    terminate(child.pid, Signal::SIGKILL);
                }
            }
        }
        thread::sleep(TICK);
    }
}

/// Signals a child's whole process group, or the child alone if it has none.
fn terminate(pid: Pid, signal: Signal) {
    if killpg(pid, signal).is_err() {
        let _ = kill(pid, signal);
    }
}

/// Reaps every process that has ended, without waiting, and records the
/// ends of `children`. Returns false once no child process is left at all.
fn reap(children: &mut [Child]) -> bool {
    loop {
        let (pid, code) = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => (pid, code),
            Ok(WaitStatus::Signaled(pid, signal, _)) => {
                (pid, i32::from(exit::signaled(signal as i32)))
            }
            Ok(WaitStatus::StillAlive) => return true,
            Err(_) => return false,
            Ok(_) => continue,
        };
        if let Some(child) = children.iter_mut().find(|c| c.pid == pid) {
            child.ended = Some((code, child.began.elapsed()));
        }
    }
}

/// Reaps what is left for a moment, so that nothing stays a zombie.
fn reap_all() {
    let deadline = Instant::now() + Duration::from_millis(200);
    while reap(&mut []) && Instant::now() < deadline {
        thread::sleep(TICK);
    }
}

/// Prints the summary: one row per script, then the units' timeline.
/// Returns how many scripts failed.
fn summarise(children: &[Child], socket: &Path, width: usize) -> usize {
    let mut client = Client::new(socket.to_owned(), Duration::ZERO);
    let (units, now): (Vec<UnitView>, f64) = match client.call(&Request::List) {
        Ok(Body::List { units, now }) => (units, now),
        _ => (Vec::new(), 0.0),
    };
    let mut rows = vec![["SCRIPT", "UNIT", "RESULT", "WAITED", "RAN"].map(String::from)];
    let mut failed = 0;
    for child in children {
        let view = child.unit.as_ref().and_then(|u| units.iter().find(|v| v.unit == *u));
        let (code, ran) = child.ended.unwrap_or((i32::from(exit::ERROR), Duration::ZERO));
        failed += usize::from(code != 0);
        let failed_by = view.and_then(|v| v.failed_by.as_deref());
        let result = match (code, view.and_then(|v| v.reason.as_deref())) {
            (0, _) => "ok".to_owned(),
            _ if child.timed_out => "timed out (--script-timeout)".to_owned(),
            // A dependency failed its unit before the script could run; the
            // reason says which and why.
            (_, Some(reason)) if failed_by.is_some() => format!("not run: {reason}"),
            (_, Some(reason)) => format!("failed: {reason}"),
            (code, None) => match exit::signal_in(code) {
                Some(signal) => format!("failed: killed by {}", signals::name(signal)),
                None => format!("failed: exit status {code}"),
            },
        };
        let waited = view.and_then(|v| v.waited).map_or("-".to_owned(), human_secs);
        let ran = view.and_then(|v| v.ran).map_or_else(|| human(ran), human_secs);
        let unit = child.unit.clone().unwrap_or_else(|| "-".to_owned());
        rows.push([child.name.clone(), unit, result, waited, ran]);
    }
    let mut text = String::from("\n");
    text += &render::columns(&rows);
    if !units.is_empty() {
        text.push('\n');
        text += &render::timeline(&units, now, width);
    }
    let _ = io::stdout().lock().write_all(text.as_bytes());
    failed
}

/// This binary, to run a headered script through `unitsync run`. Falls
/// back to argv[0] where /proc is missing (a bare chroot).
fn self_exe() -> PathBuf {
    if let Ok(exe) = std::env::current_exe() {
        return exe;
    }
    let argv0 = PathBuf::from(std::env::args_os().next().unwrap_or_default());
    if argv0.components().count() > 1 {
        return argv0;
    }
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path).map(|dir| dir.join(&argv0)).find(|p| p.is_file())
        })
        .unwrap_or(argv0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_say_their_causes_once() {
        use std::error::Error as _;
        let io = io::Error::from(io::ErrorKind::NotFound);
        let found = io.to_string();
        let journal = crate::journal::Error::Io { path: PathBuf::from("state"), err: io };
        let up = Error::Server(server::Error::Journal(journal));
        assert_eq!(up.to_string(), format!("up: state file state: {found}"));
        assert!(up.source().is_none());
    }

    #[test]
    fn headers_declare_run_style_ordering() {
        let order = |unit: &str, after: &[&str], soft: &[&str]| Order {
            unit: unit.into(),
            after: after.iter().map(|s| s.to_string()).collect(),
            soft_after: soft.iter().map(|s| s.to_string()).collect(),
        };
        assert_eq!(header("#!/bin/sh\necho hi\n", "a.sh"), Ok(None));
        assert_eq!(
            header(
                "#!/bin/sh\n# unitsync: after=git-clone,apt-install\n# unitsync: soft-after=cache\n",
                "pip-install.sh"
            ),
            Ok(Some(order("pip-install", &["git-clone", "apt-install"], &["cache"])))
        );
        assert_eq!(
            header(
                "#!/bin/sh\n\n# set things up\n# unitsync: unit=org.setup after=a\nexit 0\n",
                "10-setup.sh"
            ),
            Ok(Some(order("org.setup", &["a"], &[])))
        );
        // Only the leading comments count.
        assert_eq!(header("#!/bin/sh\necho\n# unitsync: after=a\n", "x.sh"), Ok(None));
        assert_eq!(header("# unitsync:\n", "plain"), Ok(None));
        assert!(
            header("# unitsync: before=a\n", "x.sh")
                .unwrap_err()
                .contains("unknown header word \"before=a\"")
        );
    }
}
