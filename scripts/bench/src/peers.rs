//! The peers' measures (`scripts/bench/peers.sh`): the same event timed for
//! unitsync and for each peer, interleaved round by round, each contender
//! described by a shell script so that the harness knows nothing of any of
//! them. Every measure prints one line per round and contender:
//! `round name microseconds`.

use std::fs;
use std::io::{self, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::{self, sleep};
use std::time::{Duration, Instant};

use crate::{Rng, fail};

/// How long any one awaited event may take before the round is an error.
const PATIENCE: Duration = Duration::from_secs(60);

/// A contender: its name and what it runs.
pub struct Contender<'a> {
    pub name: &'a str,
    pub trigger: &'a str,
    pub script: &'a str,
}

/// `poke FIFO`: the dependent's command, the same for every contender:
/// one byte into FIFO, which the harness reads the moment it comes.
pub fn poke(fifo: &Path) -> io::Result<()> {
    fs::OpenOptions::new().write(true).open(fifo)?.write_all(b"x")
}

fn mkfifo(path: &Path) -> io::Result<()> {
    let _ = fs::remove_file(path);
    let made = Command::new("mkfifo").arg(path).status()?;
    match made.success() {
        true => Ok(()),
        false => Err(fail(format!("mkfifo {} failed", path.display()))),
    }
}

fn sh(script: &str, dir: &Path) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(script).env("DIR", dir);
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    cmd
}

/// Waits for `child` to exit, at most [`PATIENCE`]; it must succeed.
fn reap(mut child: Child, what: &str) -> io::Result<()> {
    let until = Instant::now() + PATIENCE;
    loop {
        if let Some(status) = child.try_wait()? {
            return match status.success() {
                true => Ok(()),
                false => Err(fail(format!("{what}: its script ended with {status}"))),
            };
        }
        if Instant::now() >= until {
            let _ = child.kill();
            return Err(fail(format!("{what}: its script did not end")));
        }
        sleep(Duration::from_millis(1));
    }
}

/// `peer-ready ROUNDS DIR (NAME TRIGGER SCRIPT)...`: readiness to a
/// dependent running. SCRIPT starts a service and a dependent that waits
/// for it and then runs `poke $STAMP`; 100 to 600 ms after SCRIPT began,
/// the service becomes ready, as TRIGGER says: `fifo` (a byte into
/// `$TRIGGER`, which the service, the harness's `notify`, turns into its
/// readiness newline on fd 3), `file` (`$TRIGGER` is created) or `tcp`
/// (127.0.0.1:`$PORT` starts listening). The time runs from the moment it
/// is ready to the moment the dependent's poke arrives.
pub fn ready(rounds: usize, dir: &Path, contenders: &[Contender]) -> io::Result<()> {
    let mut rng = Rng::from_clock();
    let stamp = dir.join("stamp.fifo");
    for round in 0..rounds {
        // Each contender first and last in turn.
        for k in 0..contenders.len() {
            let c = &contenders[(round + k) % contenders.len()];
            mkfifo(&stamp)?;
            // Read-write, so that opening does not wait for the poker.
            let mut reader = fs::OpenOptions::new().read(true).write(true).open(&stamp)?;
            let (tx, rx) = mpsc::channel();
            thread::spawn(move || {
                let mut byte = [0u8; 1];
                let _ = tx.send(reader.read_exact(&mut byte).map(|()| Instant::now()));
            });
            let trigger = dir.join(format!("trigger-{round}"));
            let _ = fs::remove_file(&trigger);
            if c.trigger == "fifo" {
                mkfifo(&trigger)?;
            }
            let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            let mut cmd = sh(c.script, dir);
            cmd.env("STAMP", &stamp).env("TRIGGER", &trigger);
            cmd.env("PORT", port.to_string()).env("ROUND", round.to_string());
            let began = Instant::now();
            let child = cmd.spawn()?;
            let wait = Duration::from_millis(100) + rng.duration(Duration::from_millis(500));
            sleep(wait.saturating_sub(began.elapsed()));
            let _listener = match c.trigger {
                "fifo" => {
                    fs::OpenOptions::new().write(true).open(&trigger)?.write_all(b"x")?;
                    None
                }
                "file" => {
                    fs::File::create(&trigger)?;
                    None
                }
                "tcp" => Some(TcpListener::bind(("127.0.0.1", port))?),
                other => return Err(fail(format!("unknown trigger {other}"))),
            };
            let ready = Instant::now();
            let poked = rx
                .recv_timeout(PATIENCE)
                .map_err(|_| fail(format!("{}: the dependent never ran", c.name)))??;
            println!("{round} {} {}", c.name, poked.duration_since(ready).as_micros());
            reap(child, c.name)?;
            let _ = fs::remove_file(&trigger);
        }
    }
    Ok(())
}

/// `peer-time ROUNDS DIR (NAME SCRIPT)...`: SCRIPT from its start to its
/// exit.
pub fn time(rounds: usize, dir: &Path, contenders: &[Contender]) -> io::Result<()> {
    for round in 0..rounds {
        for k in 0..contenders.len() {
            let c = &contenders[(round + k) % contenders.len()];
            let began = Instant::now();
            let child = sh(c.script, dir).env("ROUND", round.to_string()).spawn()?;
            reap(child, c.name)?;
            println!("{round} {} {}", c.name, began.elapsed().as_micros());
        }
    }
    Ok(())
}

/// Whether `pid` is gone (a zombie is gone: it runs nothing).
fn gone(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        }
    }
}

/// `peer-stop ROUNDS DIR SERVICES (NAME SIGNAL SCRIPT)...`: SCRIPT execs a
/// supervisor of SERVICES services, each of which writes its pid into
/// `$PIDS/NAME` once it runs (and exits at once on SIGTERM); once all are
/// up and half a second has passed, SIGNAL goes to the supervisor, and the
/// time runs until the supervisor and every service are gone.
pub fn stop(
    rounds: usize,
    dir: &Path,
    services: usize,
    contenders: &[Contender],
) -> io::Result<()> {
    let pids = dir.join("pids");
    for round in 0..rounds {
        for k in 0..contenders.len() {
            let c = &contenders[(round + k) % contenders.len()];
            let _ = fs::remove_dir_all(&pids);
            fs::create_dir_all(&pids)?;
            let mut child = sh(c.script, dir).env("PIDS", &pids).spawn()?;
            let until = Instant::now() + PATIENCE;
            let running = loop {
                let found: Vec<u32> = fs::read_dir(&pids)?
                    .flatten()
                    .filter_map(|e| fs::read_to_string(e.path()).ok())
                    .filter_map(|s| s.trim().parse().ok())
                    .collect();
                if found.len() >= services {
                    break found;
                }
                if Instant::now() >= until || child.try_wait()?.is_some() {
                    let _ = child.kill();
                    return Err(fail(format!("{}: its services did not all start", c.name)));
                }
                sleep(Duration::from_millis(5));
            };
            // Let the supervisor see them up (readiness, its own checks).
            sleep(Duration::from_millis(500));
            let t0 = Instant::now();
            Command::new("kill").args([c.trigger, &child.id().to_string()]).status()?;
            loop {
                let exited = child.try_wait()?.is_some();
                if exited && running.iter().all(|&p| gone(p)) {
                    break;
                }
                if t0.elapsed() >= PATIENCE {
                    let _ = child.kill();
                    return Err(fail(format!("{}: did not stop", c.name)));
                }
                sleep(Duration::from_micros(200));
            }
            println!("{round} {} {}", c.name, t0.elapsed().as_micros());
        }
    }
    Ok(())
}
