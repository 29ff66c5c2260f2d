//! unitsync: startup scripts running in parallel declare dependencies on
//! each other and wait for them.
//!
//! Codemap:
//! - `cli`      parses arguments into plain data (`Cmd`); no env, no files.
//! - `state`    the pure state machine: units, edges, readiness, cycles.
//! - `protocol` the JSON-lines wire format and its line cap.
//! - `server`   socket hygiene, accept loop, one thread per connection.
//! - `client`   one request per line; the deadline-driven waiting loops.
//! - `compat`   the `coder` personality: Coder's `coder exp sync` CLI.
//! - `peer`     uids, peer credentials, groups (no NSS).
//! - `render`   table, JSON, DOT, timeline and critical-chain output.
//! - `runner`   `run`: a unit's whole life around a command, signals included.
//! - `up`       the container entrypoint: in-process server, scripts, reaping.
//! - `signals`  stop signals for `run` and `up`: caught, forwarded, reset in children.
//! - `duration` `250ms`/`5m` in and out.
//! - `journal`  the `--state` file: append accepted changes, replay them.
//!
//! Invariants: only `state` changes units, and only under the server's one
//! lock; a refused request changes nothing; this file is the only place
//! that decides an exit code:
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | success |
//! | 1 | refused by the server, or another error |
//! | 2 | usage error |
//! | 3 | server unreachable |
//! | 4 | timed out waiting |
//! | 5 | a dependency failed |

mod cli;
mod client;
mod compat;
mod duration;
mod journal;
mod peer;
mod protocol;
mod render;
#[cfg(test)]
mod rng;
mod runner;
mod server;
mod signals;
mod state;
mod up;

use std::env;
use std::ffi::OsString;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use cli::{Cmd, ListFormat};
use client::{Client, Patience, Say};
use protocol::{Body, Request};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
const DEFAULT_POLL: Duration = Duration::from_millis(50);

fn main() -> ExitCode {
    // Invoked as `coder` (a symlink): Coder's CLI, see compat.rs.
    if compat::invoked_as_coder() {
        return compat::main(env::args_os().skip(1));
    }
    let parsed = cli::parse(env::args_os().skip(1));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => return fail(2, &e.to_string()),
    };
    let settings = match Settings::resolve(&cli.global) {
        Ok(settings) => settings,
        Err(message) => return fail(2, &message),
    };
    match run(cli.cmd, &settings) {
        Ok(code) => ExitCode::from(code),
        Err(Failure::Client(client::Error::Unreachable { path, reason })) if settings.optional => {
            let warning = format!(
                "warning: cannot reach the server at {}: {reason}; continuing without coordination (--optional)",
                path.display()
            );
            Say { quiet: false }.line(&warning);
            ExitCode::SUCCESS
        }
        Err(Failure::Client(e)) => {
            let code = match e {
                client::Error::Unreachable { .. } => 3,
                client::Error::TimedOut(_) => 4,
                client::Error::DependencyFailed(_) => 5,
                client::Error::Interrupted { signal, .. } => 128 + signal as u8,
                client::Error::Refused(_)
                | client::Error::Protocol { .. }
                | client::Error::InstanceChanged { .. } => 1,
            };
            fail(code, &e.to_string())
        }
        Err(Failure::Server(e)) => fail(1, &e.to_string()),
        Err(Failure::Up(e)) => fail(1, &e.to_string()),
        Err(Failure::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(Failure::Output(e)) => fail(1, &format!("cannot write output: {e}")),
    }
}

fn fail(code: u8, message: &str) -> ExitCode {
    eprintln!("unitsync: {message}");
    ExitCode::from(code)
}

enum Failure {
    Client(client::Error),
    Server(server::Error),
    Up(up::Error),
    Output(io::Error),
}

impl From<client::Error> for Failure {
    fn from(e: client::Error) -> Failure {
        Failure::Client(e)
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Failure {
        Failure::Output(e)
    }
}

/// Global options with the environment's defaults applied.
struct Settings {
    socket: PathBuf,
    quiet: bool,
    optional: bool,
    connect_timeout: Duration,
    timeout: Duration,
    poll: Duration,
}

impl Settings {
    fn resolve(global: &cli::Global) -> Result<Settings, String> {
        let var = |name: &str| env::var_os(name).filter(|v| !v.is_empty());
        let duration = |name: &str, default: Duration| -> Result<Duration, String> {
            match var(name) {
                None => Ok(default),
                Some(v) => {
                    let text = v.to_string_lossy();
                    duration::parse(&text).map_err(|e| format!("${name}: {e}"))
                }
            }
        };
        let socket = match (&global.socket, var("UNITSYNC_SOCKET")) {
            (Some(path), _) => path.clone(),
            (None, Some(path)) => PathBuf::from(path),
            (None, None) => default_socket(),
        };
        let poll = duration("UNITSYNC_POLL", DEFAULT_POLL)?;
        if poll.is_zero() {
            return Err("$UNITSYNC_POLL must be more than 0".to_owned());
        }
        Ok(Settings {
            socket,
            quiet: global.quiet,
            optional: global.optional || var("UNITSYNC_OPTIONAL").is_some_and(|v| v == "1"),
            connect_timeout: match global.connect_timeout {
                Some(d) => d,
                None => duration("UNITSYNC_CONNECT_TIMEOUT", Duration::ZERO)?,
            },
            timeout: duration("UNITSYNC_TIMEOUT", DEFAULT_TIMEOUT)?,
            poll,
        })
    }

    fn client(&self) -> Client {
        Client::new(self.socket.clone(), self.connect_timeout)
    }

    fn say(&self) -> Say {
        Say { quiet: self.quiet }
    }

    fn patience(&self, timeout: Option<Duration>, poll: Option<Duration>) -> Patience {
        Patience {
            timeout: timeout.unwrap_or(self.timeout),
            poll: poll.unwrap_or(self.poll),
            cancel: None,
        }
    }
}

/// `$COLUMNS` when it is set (shells set it for interactive use), else 80.
fn terminal_width() -> usize {
    env::var("COLUMNS").ok().and_then(|c| c.parse().ok()).filter(|&c| c >= 20).unwrap_or(80)
}

/// `/tmp/unitsync-$UID/unitsync.sock`
fn default_socket() -> PathBuf {
    let mut path = OsString::from(format!("/tmp/unitsync-{}", peer::current_uid()));
    path.push("/unitsync.sock");
    PathBuf::from(path)
}

/// Runs one command; returns its exit code when it succeeded on its own terms.
fn run(cmd: Cmd, settings: &Settings) -> Result<u8, Failure> {
    let mut out = io::stdout().lock();
    match cmd {
        Cmd::Help(text) => out.write_all(text.as_bytes())?,
        Cmd::Version => writeln!(out, "unitsync {}", env!("CARGO_PKG_VERSION"))?,
        Cmd::Serve(serve) => {
            let config = server::Config {
                socket: settings.socket.clone(),
                detach: serve.detach,
                pidfile: serve.pidfile,
                group: serve.group,
                log: serve.log,
                state: serve.state,
                fsync: serve.fsync,
                quiet: settings.quiet,
            };
            drop(out);
            server::serve(&config).map_err(Failure::Server)?;
            return Ok(0);
        }
        Cmd::Ping => {
            let mut client = settings.client();
            let Body::Pong { version, protocol } = client.call(&Request::Ping)? else {
                return Err(client.unexpected().into());
            };
            writeln!(
                out,
                "unitsync {version} (protocol {protocol}) at {}",
                settings.socket.display()
            )?;
        }
        Cmd::Want { unit, deps, soft } => {
            settings.client().call(&Request::Want { unit, deps, soft })?;
        }
        Cmd::Start { unit, timeout, poll } => {
            let patience = settings.patience(timeout, poll);
            client::start(&mut settings.client(), &unit, patience, settings.say())?;
        }
        Cmd::Complete { unit } => {
            settings.client().call(&Request::Complete { unit })?;
        }
        Cmd::Fail { unit, reason } => {
            settings.client().call(&Request::Fail { unit, reason })?;
        }
        Cmd::Status { unit, json } => {
            let mut client = settings.client();
            let Body::Status { now, unit } = client.call(&Request::Status { unit })? else {
                return Err(client.unexpected().into());
            };
            match json {
                true => out.write_all(render::json(&unit).as_bytes())?,
                false => out.write_all(render::status(&unit, now).as_bytes())?,
            }
        }
        Cmd::List { format } => {
            let mut client = settings.client();
            let Body::List { units, now } = client.call(&Request::List)? else {
                return Err(client.unexpected().into());
            };
            let text = match format {
                ListFormat::Table => render::table(&units),
                ListFormat::Json => render::json(&units),
                ListFormat::Dot => render::dot(&units),
                ListFormat::Timeline { width } => {
                    render::timeline(&units, now, width.unwrap_or_else(terminal_width))
                }
                ListFormat::Critical => render::critical(&units, now),
            };
            out.write_all(text.as_bytes())?;
        }
        Cmd::Up(up) => {
            let config = server::Config {
                socket: settings.socket.clone(),
                detach: false,
                pidfile: None,
                group: None,
                log: None,
                state: None,
                fsync: false,
                quiet: settings.quiet,
            };
            let spec = up::Spec {
                dir: up.dir,
                scripts: up.scripts,
                script_timeout: up.script_timeout.unwrap_or_default(),
                command: up.command,
                width: terminal_width(),
            };
            drop(out);
            return up::up(&spec, &config, settings.say()).map_err(Failure::Up);
        }
        Cmd::Run(run) => {
            let patience = settings.patience(run.timeout, run.poll);
            let spec = runner::Spec {
                unit: run.unit,
                after: run.after,
                soft_after: run.soft_after,
                command: run.command,
            };
            let mut client = settings.client();
            return Ok(runner::run(
                &mut client,
                &spec,
                patience,
                settings.say(),
                settings.optional,
            )?);
        }
        Cmd::Wait { units, timeout, poll } => {
            let patience = settings.patience(timeout, poll);
            client::wait(&mut settings.client(), &units, patience, settings.say())?;
        }
    }
    out.flush()?;
    Ok(0)
}
