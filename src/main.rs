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
//! - `runner`   `run`: a unit's whole life around a command or a service, signals included.
//! - `readiness` a service's readiness conditions (`fd:`, `tcp:`, `unix:`, `file:`, `exec:`).
//! - `up`       the container entrypoint: in-process server, every script a unit (`up::plan`),
//!   processes and reaping (`up::procs`), the summary and the ordered shutdown.
//! - `signals`  stop signals for `run`, `up` and a waiting `start`: caught, forwarded, reset in children.
//! - `threads`  named threads with their stack sizes, all through one copy of std's spawn code.
//! - `settings` global options with the environment's defaults applied.
//! - `exit`     the exit codes below, named, and which outcome gets which.
//! - `duration` `250ms`/`5m` in and out.
//! - `journal`  the `--state` file: append accepted changes, replay them.
//!
//! docs/ARCHITECTURE.md draws the map and the invariants at more length.
//!
//! Invariants: only `state` changes units, and only under the server's one
//! lock; a refused request changes nothing; this file is the only place
//! that exits, with a code that `exit` decides:
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | success |
//! | 1 | refused by the server, or another error |
//! | 2 | usage error |
//! | 3 | server unreachable |
//! | 4 | timed out waiting (`wait --once`: not yet) |
//! | 5 | a dependency failed |
//! | 126, 127 | `run`: the command is not executable, or not found |
//! | 128+N | signal N stopped the wait, or killed `run`'s or `up`'s command |
//!
//! Once the command of `run` or `up` ran, they exit with its status, as a
//! shell would; the `coder` personality exits 1 on any error, as Coder's
//! CLI does.

mod cli;
mod client;
mod compat;
mod duration;
mod exit;
mod journal;
mod owner;
mod peer;
mod protocol;
mod readiness;
mod render;
#[cfg(test)]
mod rng;
mod runner;
mod server;
mod settings;
mod signals;
mod state;
mod threads;
mod up;

use std::env;
use std::io::{self, Write};
use std::process::ExitCode;

use cli::{Cmd, ListFormat};
use client::{Patience, Say};
use exit::Failure;
use protocol::{Body, Request};
use settings::Settings;

fn main() -> ExitCode {
    // Invoked as `coder` (a symlink): Coder's CLI, see compat.rs.
    if compat::invoked_as_coder() {
        return ExitCode::from(compat::main(env::args_os().skip(1)));
    }
    let parsed = cli::parse(env::args_os().skip(1));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => return fail(exit::USAGE, &e.to_string()),
    };
    let settings = match Settings::resolve(&cli.global) {
        Ok(settings) => settings,
        Err(message) => return fail(exit::USAGE, &message),
    };
    match run(cli.cmd, &settings) {
        Ok(code) => ExitCode::from(code),
        Err(Failure::Client(client::Error::Unreachable { path, reason })) if settings.optional => {
            let warning = format!(
                "warning: cannot reach the server at {}: {reason}; continuing without coordination (--optional)",
                path.display()
            );
            Say::error(&warning);
            ExitCode::from(exit::SUCCESS)
        }
        // Whoever read our output stopped reading (`| head`): not a failure.
        Err(Failure::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => {
            ExitCode::from(exit::SUCCESS)
        }
        Err(failure) => fail(failure.code(), &failure.to_string()),
    }
}

fn fail(code: u8, message: &str) -> ExitCode {
    client::Say::error(message);
    ExitCode::from(code)
}

/// The server's configuration: `serve`'s options and the global ones.
fn server_config(serve: cli::Serve, settings: &Settings) -> server::Config {
    let cli::Serve { detach, pidfile, group, log, state, fsync } = serve;
    let (socket, quiet) = (settings.socket.clone(), settings.quiet);
    server::Config { socket, detach, pidfile, group, log, state, fsync, quiet }
}

/// Runs one command; returns its exit code when it succeeded on its own terms.
fn run(cmd: Cmd, settings: &Settings) -> Result<u8, Failure> {
    let mut out = io::stdout().lock();
    match cmd {
        Cmd::Help(text) => out.write_all(text.as_bytes())?,
        Cmd::Version => writeln!(out, "unitsync {}", env!("CARGO_PKG_VERSION"))?,
        Cmd::Serve(serve) => {
            let config = server_config(serve, settings);
            drop(out);
            server::serve(&config).map_err(Failure::Server)?;
            return Ok(exit::SUCCESS);
        }
        Cmd::Ping => {
            let mut client = settings.client();
            let Body::Pong { version, protocol, pid } = client.call(&Request::Ping)? else {
                return Err(client.unexpected().into());
            };
            let pid = pid.map(|pid| format!(", server pid {pid}")).unwrap_or_default();
            writeln!(
                out,
                "unitsync {version} (protocol {protocol}) at {}{pid}",
                settings.socket.display()
            )?;
        }
        Cmd::Want { unit, deps, soft } => {
            let said = match (deps.is_empty(), soft) {
                (true, _) => format!("{unit}: registered"),
                (false, false) => format!("{unit}: wants {}", deps.join(", ")),
                (false, true) => format!("{unit}: softly wants {}", deps.join(", ")),
            };
            settings.client().call(&Request::Want { unit, deps, soft })?;
            settings.say().line(&said);
        }
        Cmd::Start { unit, timeout, poll, detached } => {
            // A stop signal ends the wait cleanly, so the server hears that
            // nobody waits any more (exit 128+N, as for `run`).
            signals::catch();
            let patience =
                Patience { cancel: Some(&signals::RECEIVED), ..settings.patience(timeout, poll) };
            let owner = settings.owner(detached, &unit);
            client::start(&mut settings.client(), &unit, owner, patience, settings.say())?;
        }
        Cmd::Ready { unit } => {
            let unit = settings
                .own_unit(unit)
                .map_err(|e| Failure::Usage(format!("{e}; see 'unitsync ready --help'")))?;
            settings.client().call(&Request::Ready { unit })?;
        }
        Cmd::Complete { unit } => {
            let said = format!("{unit}: completed");
            settings.client().call(&Request::Complete { unit, note: None })?;
            settings.say().line(&said);
        }
        Cmd::Fail { unit, reason } => {
            // The server cleans it too; cleaning here keeps a huge log
            // within the request line's cap.
            let reason = reason.as_deref().and_then(protocol::clean_reason);
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
                    render::timeline(&units, now, width.unwrap_or(settings.columns))
                }
                ListFormat::Critical => render::critical(&units, now),
            };
            out.write_all(text.as_bytes())?;
        }
        Cmd::Up(up) => {
            // In-process, the server a plain `serve` would run.
            let config = server_config(cli::Serve::default(), settings);
            let spec = up::Spec {
                dir: up.dir,
                scripts: up.scripts,
                script_timeout: up.script_timeout.unwrap_or_default(),
                stop_timeout: up.stop_timeout.unwrap_or(up::STOP_TIMEOUT),
                grace: up.grace.unwrap_or(up::GRACE),
                command: up.command,
                width: settings.columns,
            };
            drop(out);
            return up::up(&spec, &config, settings.say()).map_err(Failure::Up);
        }
        Cmd::Run(run) => {
            let patience = settings.patience(run.timeout, run.poll);
            let owner = settings.run_owner(&run.unit);
            let spec = runner::Spec {
                unit: run.unit,
                after: run.after,
                soft_after: run.soft_after,
                ready: run.ready,
                ready_timeout: run.ready_timeout.unwrap_or_default(),
                stop_timeout: run.stop_timeout.unwrap_or(signals::STOP_TIMEOUT),
                owner,
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
        Cmd::Wait { units, once: true, .. } => client::check(&mut settings.client(), &units)?,
        Cmd::Wait { units, timeout, poll, once: false } => {
            let patience = settings.patience(timeout, poll);
            client::wait(&mut settings.client(), &units, patience, settings.say())?;
        }
    }
    out.flush()?;
    Ok(exit::SUCCESS)
}
