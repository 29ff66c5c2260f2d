//! unitsync: startup scripts running in parallel declare dependencies on
//! each other and wait for them.
//!
//! The code map, the dependency rules and the invariants are in
//! docs/ARCHITECTURE.md.
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

mod bell;
mod cli;
mod client;
mod compat;
mod duration;
mod envfile;
mod exit;
mod journal;
mod owner;
mod peer;
mod procfs;
mod protocol;
mod readiness;
mod render;
mod restart;
#[cfg(test)]
mod rng;
mod runner;
mod server;
mod settings;
mod signals;
mod state;
mod suggest;
mod threads;
mod up;
mod user;

use std::env;
use std::fmt;
use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;

use cli::{Cmd, ListFormat};
use client::{Patience, Say};
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
            settings.client().call(&Request::Ready { unit, instance: None })?;
        }
        Cmd::Complete { unit } => {
            let said = format!("{unit}: completed");
            let body = settings.client().call(&Request::Complete {
                unit: unit.clone(),
                note: None,
                instance: None,
            })?;
            if let protocol::Body::Completed { abandoned: Some(reason), .. } = body {
                // Completed all the same, but late: README.md, "Abandoned units".
                client::Say::error(&format!(
                    "warning: {unit} had failed ({reason}); it is completed now, \
                     but its dependents may already have given up"
                ));
            }
            settings.say().line(&said);
        }
        Cmd::Fail { unit, reason } => {
            // The server cleans it too; cleaning here keeps a huge log
            // within the request line's cap.
            let reason = reason.as_deref().and_then(protocol::clean_reason);
            settings.client().call(&Request::Fail { unit, reason, instance: None })?;
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
            threads::one_arena();
            // In-process, the server a plain `serve` would run.
            let config = server_config(cli::Serve::default(), settings);
            let usage = |e: String| Failure::Usage(format!("up: {e}; see 'unitsync up --help'"));
            let dirs = match up.dirs.is_empty() && up.scripts.is_empty() {
                true => {
                    let has_command = !up.command.is_empty();
                    up::default_dir(settings.dir.as_deref(), Path::is_dir, has_command)
                        .map_err(usage)?
                        .into_iter()
                        .collect()
                }
                false => up.dirs,
            };
            // Read before anything runs: a bad line starts nothing.
            let mut env = Vec::new();
            for file in &up.env_files {
                env.extend(envfile::load(file).map_err(|e| usage(format!("--env-file {e}")))?);
            }
            let spec = up::Spec {
                dirs,
                env,
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
            threads::one_arena();
            // Before anything is declared: a user that cannot be switched
            // to changes nothing on the server.
            let user = run.user.as_ref().map(user::lookup).transpose();
            let user = user.map_err(|e| Failure::Usage(format!("--user: {e}")))?;
            let patience = settings.patience(run.timeout, run.poll);
            let owner = settings.run_owner(&run.unit);
            let spec = runner::Spec {
                unit: run.unit,
                after: run.after,
                soft_after: run.soft_after,
                ready: run.ready,
                ready_timeout: run.ready_timeout.unwrap_or_default(),
                stop_timeout: run.stop_timeout.unwrap_or(signals::STOP_TIMEOUT),
                probe_timeout: run.probe_timeout.unwrap_or(readiness::PROBE_TIMEOUT),
                stop_signal: run.stop_signal,
                restart: run.restart.unwrap_or_default(),
                health: run.health,
                health_interval: run.health_interval.unwrap_or(runner::HEALTH_INTERVAL),
                health_failures: run.health_failures.unwrap_or(runner::HEALTH_FAILURES),
                user,
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

/// The exit code for a client error.
fn client_code(e: &client::Error) -> u8 {
    match e {
        client::Error::Unreachable { .. } => exit::UNREACHABLE,
        client::Error::TimedOut(_) => exit::TIMED_OUT,
        client::Error::DependencyFailed(_) => exit::DEPENDENCY_FAILED,
        client::Error::Interrupted { signal, .. } => exit::signaled(*signal),
        client::Error::Refused(_)
        | client::Error::Protocol { .. }
        | client::Error::InstanceChanged { .. } => exit::ERROR,
    }
}

/// How a native command can fail.
#[derive(Debug)]
enum Failure {
    /// A usage error found after parsing (a default the environment lacks).
    Usage(String),
    Client(client::Error),
    Server(server::Error),
    Up(up::Error),
    Output(io::Error),
}

impl Failure {
    fn code(&self) -> u8 {
        match self {
            Failure::Usage(_) => exit::USAGE,
            Failure::Client(e) => client_code(e),
            Failure::Server(_) | Failure::Up(_) | Failure::Output(_) => exit::ERROR,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Usage(message) => f.write_str(message),
            Failure::Client(e) => e.fmt(f),
            Failure::Server(e) => e.fmt(f),
            Failure::Up(e) => e.fmt(f),
            Failure::Output(e) => write!(f, "cannot write output: {e}"),
        }
    }
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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn each_client_error_has_its_code() {
        let path = PathBuf::from("/s");
        let cases = [
            (client::Error::Unreachable { path: path.clone(), reason: "gone".into() }, 3),
            (client::Error::TimedOut("late".into()), 4),
            (client::Error::DependencyFailed("a failed".into()), 5),
            (client::Error::Interrupted { subject: "b".into(), signal: 15 }, 143),
            (client::Error::Protocol { path: path.clone(), detail: "?".into() }, 1),
            (client::Error::InstanceChanged { path, unit: "b".into() }, 1),
        ];
        for (e, code) in cases {
            assert_eq!(client_code(&e), code, "{e}");
            assert_eq!(Failure::from(e).code(), code);
        }
        let broken = io::Error::from(io::ErrorKind::BrokenPipe);
        assert_eq!(Failure::from(broken).code(), exit::ERROR);
    }

    /// docs/ARCHITECTURE.md stays true: every source file is in its code
    /// map, and its dependency list is what the `use crate::` lines say,
    /// each module importing only modules listed above it (so `state` and
    /// `exit` import nothing from the crate).
    #[test]
    fn the_code_map_is_true() {
        use std::collections::{BTreeMap, BTreeSet};
        use std::fs;
        use std::path::Path;

        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let map = fs::read_to_string(root.join("docs/ARCHITECTURE.md")).unwrap();
        // Every .rs file under src, as `dir/name.rs`, and what it imports.
        let mut files = Vec::new();
        let mut todo = vec![root.join("src")];
        while let Some(dir) = todo.pop() {
            for entry in fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    todo.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    files.push(path);
                }
            }
        }
        let mut imports: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for path in &files {
            let name = path.strip_prefix(root.join("src")).unwrap().to_str().unwrap().to_owned();
            assert!(map.contains(&format!("| `{name}` |")), "{name} is not in the code map");
            // Test-only files and inline test modules may use anything.
            if name.ends_with("tests.rs") || name == "protocol/fuzz.rs" {
                continue;
            }
            let text = fs::read_to_string(path).unwrap();
            let code = text.split("#[cfg(test)]\nmod tests").next().unwrap();
            let module = name.split(['/', '.']).next().unwrap().to_owned();
            let used = imports.entry(module.clone()).or_default();
            for line in code.lines().filter(|l| l.starts_with("use crate::")) {
                let dep = line["use crate::".len()..].split([':', ';', '{']).next().unwrap();
                if dep != module {
                    used.insert(dep.to_owned());
                }
            }
        }
        imports.remove("main");
        imports.remove("rng");
        // The list in the map, in order: "- `module` → a, b".
        let mut listed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let deps = map.split("## Dependencies").nth(1).unwrap().split("\n## ").next().unwrap();
        for line in deps.lines().filter(|l| l.starts_with("- `")) {
            let (module, rest) = line[3..].split_once('`').unwrap();
            let needs: BTreeSet<String> = match rest.split_once('→') {
                Some((_, list)) => list.split(',').map(|d| d.trim().to_owned()).collect(),
                None => BTreeSet::new(),
            };
            for dep in &needs {
                assert!(listed.contains_key(dep), "{module} imports {dep}, listed below it");
            }
            listed.insert(module.to_owned(), needs);
        }
        listed.remove("rng");
        assert_eq!(listed, imports, "docs/ARCHITECTURE.md's dependency list");
        assert!(imports["state"].is_empty() && imports["exit"].is_empty());
    }

    /// README.md's Benchmarks table is BENCHMARKS.md's Targets table, as
    /// the last run of scripts/bench.sh measured it (scripts/bench/readme.sh
    /// copies it): no figure in the README is typed by hand.
    #[test]
    fn the_readme_quotes_the_benchmarks_as_measured() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let read = |name: &str| std::fs::read_to_string(root.join(name)).unwrap();
        let (readme, bench) = (read("README.md"), read("BENCHMARKS.md"));
        let quoted = readme
            .split("<!-- bench:targets -->\n")
            .nth(1)
            .and_then(|rest| rest.split("<!-- /bench:targets -->").next())
            .expect("README.md has the bench:targets markers");
        let targets = bench.split("## Targets").nth(1).expect("BENCHMARKS.md has its Targets");
        let table: String = targets
            .lines()
            .skip_while(|l| !l.starts_with('|'))
            .take_while(|l| l.starts_with('|'))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(!table.is_empty(), "BENCHMARKS.md's Targets has no table");
        assert_eq!(quoted, table, "run scripts/bench/readme.sh (scripts/bench.sh does)");
    }
}
