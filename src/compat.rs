//! The `coder` personality. Invoked as `coder` (a symlink to this binary, as
//! busybox does it), unitsync answers `coder exp sync
//! ping|want|start|complete|status|list` the way Coder's CLI does, so that
//! template scripts written for Coder's workspace startup coordination run
//! unchanged against `unitsync serve`. Everything else `coder` is refused.
//!
//! Matched against coder/coder's own source (cli/sync.go, cli/sync_*.go,
//! cli/cliui/{log,table,output}.go, agent/agentsocket, agent/unit) and its
//! startup-coordination troubleshooting guide:
//! - flags: `--socket-path` on every subcommand, else
//!   `$CODER_AGENT_SOCKET_PATH` (then unitsync's own socket rules);
//!   `start --timeout` (5m by default, 0 waits forever); `status` and `list`
//!   take `-o/--output table|json`; `want UNIT DEP [DEP...]`.
//! - texts: `Success`; `Unit "x" is waiting for dependencies to be
//!   satisfied: [a, b]`, then `Unit "x" started with no dependencies`,
//!   `... started immediately, dependencies already satisfied: [a]` or
//!   `... finished waiting for dependencies: [a, b]`. An error prints
//!   `Encountered an error running "coder exp sync start", see "coder exp
//!   sync start --help" for more information` and `error: ` plus Coder's
//!   prefix (`connect to agent socket: `, `declare dependency failed: `,
//!   `get status failed: `, `start unit failed: `, `complete unit failed: `,
//!   `list units failed: `) or `timeout waiting for dependencies of unit
//!   'x'`, and exits 1, whatever went wrong.
//! - layouts: `status` is `Unit:`/`Status:`/`Ready:`, then `Dependencies:`
//!   and a DEPENDS ON / REQUIRED STATUS / CURRENT STATUS / SATISFIED table,
//!   or `No dependencies found`; `list` is a UNIT / STATUS / READY table of
//!   registered units only, or `No units registered`. JSON has Coder's
//!   fields (`unit_name`, `status`, `is_ready`, `dependencies` of
//!   `depends_on`, `required_status`, `current_status`, `is_satisfied`) and
//!   Go's values: a not-registered status is `""`, no dependencies `null`.
//!   Coder's statuses are ours (pending, started, completed) except
//!   `failed`, which only a native `unitsync fail` can cause and shows as is.
//!
//! Where we differ, on purpose: `start` checks every 50ms
//! (`$UNITSYNC_POLL`), not every second, and starts atomically; a timeout
//! adds a `unitsync: ` line naming what it still waited for. `want U A B`
//! adds its edges in one atomic call (Coder adds them one by one and may
//! stop half way), and a cycle names its path. `complete` registers a unit
//! nobody declared (Coder refuses it). Unit names follow unitsync's rules.
//! Lines end in `\n`, not cliui's `\r\n`, with no styling or trailing
//! blanks; `status` has no `History:` section and there is no `-c/--column`.
//! `ping` and `list` refuse stray arguments. `--timeout` also takes a bare
//! number of seconds. `$UNITSYNC_OPTIONAL=1` turns an unreachable server
//! into a warning and success, as for the native commands.

use std::env;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::cli;
use crate::client::{self, Client, Say};
use crate::duration;
use crate::exit;
use crate::protocol::{Body, DepView, Request, Status, UnitView};
use crate::render;
use crate::settings::Settings;

const HELP: &str = "\
coder exp sync, as provided by unitsync: startup scripts declare
dependencies on each other and wait for them.

Usage: coder exp sync COMMAND [ARGS] [--socket-path PATH]

Commands:
  ping                          check that the server answers
  want UNIT DEP [DEP...]        UNIT may start only once every DEP completed
  start UNIT [--timeout D]      wait until UNIT's dependencies completed, then
                                mark it started (D: 30s, 5m; 5m by default;
                                0 waits forever)
  complete UNIT                 mark UNIT completed
  status UNIT [-o table|json]   UNIT's status, readiness and dependencies
  list [-o table|json]          every registered unit

  --socket-path PATH   the server's socket [$CODER_AGENT_SOCKET_PATH, else
                       $UNITSYNC_SOCKET, else /tmp/unitsync-$UID/unitsync.sock]

This 'coder' is unitsync under another name: it provides only
'coder exp sync', serving it from 'unitsync serve'. Any error exits 1.
See 'unitsync --help' for the rest.
";

/// Whether this process was invoked as `coder`.
pub fn invoked_as_coder() -> bool {
    env::args_os()
        .next()
        .is_some_and(|argv0| Path::new(&argv0).file_name() == Some(OsStr::new("coder")))
}

/// Runs `coder ARGS` (the arguments after the program name); returns the
/// exit code.
pub fn main(args: impl IntoIterator<Item = OsString>) -> u8 {
    let invocation = match parse(args) {
        Ok(Parsed::Help) => {
            let _ = io::stdout().write_all(HELP.as_bytes());
            return exit::SUCCESS;
        }
        Ok(Parsed::Run(invocation)) => invocation,
        Err(ParseError::NotProvided(typed)) => {
            eprintln!(
                "error: '{typed}' is not available: this 'coder' is unitsync {}, which provides \
                 only 'coder exp sync' (ping, want, start, complete, status, list)",
                env!("CARGO_PKG_VERSION")
            );
            return exit::ERROR;
        }
        Err(ParseError::Usage { command, message }) => return failed(&command, &message, None),
    };
    let command = invocation.sub.command();
    let socket = invocation.socket_path.or_else(|| {
        env::var_os("CODER_AGENT_SOCKET_PATH").filter(|v| !v.is_empty()).map(PathBuf::from)
    });
    let settings = match Settings::resolve(&cli::Global { socket, ..Default::default() }) {
        Ok(settings) => settings,
        Err(message) => return failed(&command, &message, None),
    };
    match run(invocation.sub, &settings, &mut io::stdout().lock()) {
        Ok(()) => exit::SUCCESS,
        Err(Failure::Client { error: client::Error::Unreachable { path, reason }, .. })
            if settings.optional =>
        {
            Say { quiet: false }.line(&format!(
                "warning: cannot reach the server at {}: {reason}; continuing without \
                 coordination ($UNITSYNC_OPTIONAL=1)",
                path.display()
            ));
            exit::SUCCESS
        }
        Err(Failure::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => exit::SUCCESS,
        Err(failure) => {
            let detail = match &failure {
                Failure::TimedOut { detail, .. } => Some(detail.as_str()),
                _ => None,
            };
            failed(&command, &failure.to_string(), detail)
        }
    }
}

/// Coder's error report: a headline naming the command, then the cause.
/// Coder exits 1 whatever went wrong.
fn failed(command: &str, message: &str, detail: Option<&str>) -> u8 {
    eprintln!(
        "Encountered an error running {command:?}, see \"{command} --help\" for more information"
    );
    eprintln!("error: {message}");
    if let Some(detail) = detail {
        eprintln!("unitsync: {detail}");
    }
    exit::ERROR
}

#[derive(Debug, PartialEq)]
enum Sub {
    Ping,
    Want { unit: String, deps: Vec<String> },
    Start { unit: String, timeout: Option<Duration> },
    Complete { unit: String },
    Status { unit: String, json: bool },
    List { json: bool },
}

impl Sub {
    /// The command's full name, as Coder's errors spell it.
    fn command(&self) -> String {
        let name = match self {
            Sub::Ping => "ping",
            Sub::Want { .. } => "want",
            Sub::Start { .. } => "start",
            Sub::Complete { .. } => "complete",
            Sub::Status { .. } => "status",
            Sub::List { .. } => "list",
        };
        format!("coder exp sync {name}")
    }
}

#[derive(Debug, PartialEq)]
struct Invocation {
    socket_path: Option<PathBuf>,
    sub: Sub,
}

#[derive(Debug, PartialEq)]
enum Parsed {
    Help,
    Run(Invocation),
}

#[derive(Debug, PartialEq)]
enum ParseError {
    /// Not a `coder exp sync` command; holds it as typed.
    NotProvided(String),
    /// A mistake in a `coder exp sync` command.
    Usage { command: String, message: String },
}

/// Flags that take a value, in every spelling Coder's flag parser accepts:
/// `--timeout 5m`, `--timeout=5m`, `-o json`, `-ojson`, `-o=json`.
const VALUE_FLAGS: [&str; 4] = ["--socket-path", "--timeout", "--output", "-o"];

/// Parses `coder` arguments: flags may come anywhere, `--` ends them, and
/// `-h/--help` anywhere asks for help.
fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Parsed, ParseError> {
    let mut typed = vec!["coder".to_owned()];
    let mut words = Vec::new();
    let mut flags: Vec<(String, Option<String>)> = Vec::new();
    let mut help = false;
    let mut only_words = false;
    let mut args = args.into_iter().map(|a| a.to_string_lossy().into_owned());
    while let Some(arg) = args.next() {
        typed.push(arg.clone());
        if only_words || arg == "-" || !arg.starts_with('-') {
            words.push(arg);
            continue;
        }
        if arg == "--" {
            only_words = true;
            continue;
        }
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
            None if arg.starts_with("-o") && arg.len() > 2 => {
                ("-o".to_owned(), Some(arg[2..].to_owned()))
            }
            None => (arg.clone(), None),
        };
        if name == "-h" || name == "--help" {
            help = true;
        } else if VALUE_FLAGS.contains(&name.as_str()) {
            let value = inline.or_else(|| args.next().inspect(|v| typed.push(v.clone())));
            flags.push((name, value));
        } else {
            flags.push((name, inline));
        }
    }
    if help {
        return Ok(Parsed::Help);
    }
    if words.len() < 2 || words[0] != "exp" || words[1] != "sync" {
        return Err(ParseError::NotProvided(typed.join(" ")));
    }
    // `coder exp sync` alone prints its help, as Coder's does.
    let Some(name) = words.get(2) else { return Ok(Parsed::Help) };
    if !["ping", "want", "start", "complete", "status", "list"].contains(&name.as_str()) {
        return Err(ParseError::Usage {
            command: "coder exp sync".to_owned(),
            message: format!(
                "unknown command {name:?} for \"coder exp sync\"; \
                 try ping, want, start, complete, status or list"
            ),
        });
    }
    let command = format!("coder exp sync {name}");
    let usage = |message: String| ParseError::Usage { command: command.clone(), message };

    let (mut socket_path, mut timeout, mut json) = (None, None, false);
    for (flag, value) in flags {
        let takes = match flag.as_str() {
            "--socket-path" => true,
            "--timeout" => name == "start",
            "-o" | "--output" => name == "status" || name == "list",
            _ => false,
        };
        if !takes {
            return Err(usage(format!("unknown flag: {flag}")));
        }
        let Some(value) = value else {
            return Err(usage(format!("flag needs an argument: {flag}")));
        };
        let bad =
            |why: String| usage(format!("invalid argument {value:?} for \"{flag}\" flag: {why}"));
        match flag.as_str() {
            "--socket-path" => socket_path = Some(PathBuf::from(&value)),
            "--timeout" => timeout = Some(duration::parse(&value).map_err(bad)?),
            _ => {
                json = match value.as_str() {
                    "table" => false,
                    "json" => true,
                    _ => return Err(bad("must be one of \"table\", \"json\"".to_owned())),
                }
            }
        }
    }

    let args = &words[3..];
    let one_unit = || match args {
        [unit] => Ok(unit.clone()),
        _ => Err(usage("exactly one unit name is required".to_owned())),
    };
    let no_args = || match args.first() {
        Some(extra) => Err(usage(format!("unexpected argument {extra:?}"))),
        None => Ok(()),
    };
    let sub = match name.as_str() {
        "ping" => no_args().map(|()| Sub::Ping)?,
        "want" => match args {
            [unit, deps @ ..] if !deps.is_empty() => {
                Sub::Want { unit: unit.clone(), deps: deps.to_vec() }
            }
            _ => {
                return Err(usage(
                    "at least two arguments are required: unit and one or more depends-on"
                        .to_owned(),
                ));
            }
        },
        "start" => Sub::Start { unit: one_unit()?, timeout },
        "complete" => Sub::Complete { unit: one_unit()? },
        "status" => Sub::Status { unit: one_unit()?, json },
        _ => no_args().map(|()| Sub::List { json })?,
    };
    Ok(Parsed::Run(Invocation { socket_path, sub }))
}

#[derive(Debug)]
enum Failure {
    /// The client failed while doing something Coder names, such as
    /// "declare dependency failed".
    Client {
        doing: &'static str,
        error: client::Error,
    },
    /// `start` ran out of time; `detail` says what it still waited for.
    TimedOut {
        unit: String,
        detail: String,
    },
    Output(io::Error),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Client { error: error @ client::Error::Unreachable { .. }, .. } => {
                write!(f, "connect to agent socket: {error}")
            }
            Failure::Client { doing, error } => write!(f, "{doing}: {error}"),
            Failure::TimedOut { unit, .. } => {
                write!(f, "timeout waiting for dependencies of unit '{unit}'")
            }
            Failure::Output(e) => write!(f, "cannot write output: {e}"),
        }
    }
}

// Messages name their causes (they are written for a log), so no
// `source()`: an error reporter walking the chain would say each twice.
impl std::error::Error for Failure {}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Failure {
        Failure::Output(e)
    }
}

/// One request; a failure says what was being done, in Coder's words.
fn call(client: &mut Client, request: &Request, doing: &'static str) -> Result<Body, Failure> {
    client.call(request).map_err(|error| Failure::Client { doing, error })
}

fn run(sub: Sub, settings: &Settings, out: &mut impl Write) -> Result<(), Failure> {
    let mut client = settings.client();
    match sub {
        Sub::Ping => {
            call(&mut client, &Request::Ping, "ping failed")?;
            writeln!(out, "Success")?;
        }
        Sub::Want { unit, deps } => {
            let want = Request::Want { unit, deps, soft: false };
            call(&mut client, &want, "declare dependency failed")?;
            writeln!(out, "Success")?;
        }
        Sub::Start { unit, timeout } => {
            start(&mut client, &unit, settings.patience(timeout, None), out)?;
        }
        Sub::Complete { unit } => {
            call(&mut client, &Request::Complete { unit, note: None }, "complete unit failed")?;
            writeln!(out, "Success")?;
        }
        Sub::Status { unit, json } => {
            let doing = "get status failed";
            let Body::Status { unit, .. } = call(&mut client, &Request::Status { unit }, doing)?
            else {
                return Err(Failure::Client { doing, error: client.unexpected() });
            };
            let text = if json { render::json(&StatusJson::from(&unit)) } else { status(&unit) };
            out.write_all(text.as_bytes())?;
        }
        Sub::List { json } => {
            let doing = "list units failed";
            let Body::List { units, .. } = call(&mut client, &Request::List, doing)? else {
                return Err(Failure::Client { doing, error: client.unexpected() });
            };
            // Coder lists the units scripts registered, not placeholders.
            let units: Vec<&UnitView> =
                units.iter().filter(|u| u.status != Status::NotRegistered).collect();
            let text = if json { render::json(&list_json(&units)) } else { list(&units) };
            out.write_all(text.as_bytes())?;
        }
    }
    out.flush()?;
    Ok(())
}

/// Coder's `start`: looks at the unit's dependencies first, to say what it
/// waits for, then waits with the native loop (quietly: Coder's lines say
/// it all) and says how it started.
fn start(
    client: &mut Client,
    unit: &str,
    patience: client::Patience,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let doing = "get status failed";
    let Body::Status { unit: view, .. } =
        call(client, &Request::Status { unit: unit.to_owned() }, doing)?
    else {
        return Err(Failure::Client { doing, error: client.unexpected() });
    };
    let all: Vec<&str> = view.dependencies.iter().map(|d| d.unit.as_str()).collect();
    let unmet: Vec<&str> =
        view.dependencies.iter().filter(|d| !d.satisfied).map(|d| d.unit.as_str()).collect();
    if !view.startable {
        let waiting = unmet.join(", ");
        writeln!(out, "Unit {unit:?} is waiting for dependencies to be satisfied: [{waiting}]")?;
        out.flush()?;
    }
    client::start(client, unit, patience, Say { quiet: true }).map_err(|error| match error {
        client::Error::TimedOut(detail) => Failure::TimedOut { unit: unit.to_owned(), detail },
        error => Failure::Client { doing: "start unit failed", error },
    })?;
    if all.is_empty() {
        writeln!(out, "Unit {unit:?} started with no dependencies")?;
    } else if unmet.is_empty() {
        let all = all.join(", ");
        writeln!(
            out,
            "Unit {unit:?} started immediately, dependencies already satisfied: [{all}]"
        )?;
    } else {
        let unmet = unmet.join(", ");
        writeln!(out, "Unit {unit:?} finished waiting for dependencies: [{unmet}]")?;
    }
    Ok(())
}

/// `status` as a table: Coder's header, then the dependencies.
fn status(unit: &UnitView) -> String {
    let mut out = format!(
        "Unit: {}\nStatus: {}\nReady: {}\n\nDependencies:\n",
        unit.unit,
        shown(unit.status),
        unit.startable
    );
    if unit.dependencies.is_empty() {
        out.push_str("No dependencies found\n");
        return out;
    }
    let rows = unit.dependencies.iter().map(|d| {
        [
            d.unit.clone(),
            required(d).to_owned(),
            shown(d.status).to_owned(),
            d.satisfied.to_string(),
        ]
    });
    out + &table(["DEPENDS ON", "REQUIRED STATUS", "CURRENT STATUS", "SATISFIED"], rows)
}

/// `list` as a table, or Coder's note when there is nothing to list.
fn list(units: &[&UnitView]) -> String {
    if units.is_empty() {
        return "No units registered\n".to_owned();
    }
    let rows =
        units.iter().map(|u| [u.unit.clone(), shown(u.status).to_owned(), u.startable.to_string()]);
    table(["UNIT", "STATUS", "READY"], rows)
}

/// The status a dependency must reach. Coder knows only `completed`; a soft
/// edge (native `want --soft`) accepts a failure too.
fn required(dep: &DepView) -> &'static str {
    if dep.soft { "completed or failed" } else { "completed" }
}

/// Coder's tables: upper-case headers, columns two blanks apart, as
/// [`render::columns`] lays them out.
fn table<const N: usize>(header: [&str; N], rows: impl Iterator<Item = [String; N]>) -> String {
    let mut all = vec![header.map(str::to_owned)];
    all.extend(rows);
    render::columns(&all)
}

/// `status -o json`, field for field as Coder marshals it.
#[derive(Serialize)]
struct StatusJson<'a> {
    unit_name: &'a str,
    status: &'a str,
    is_ready: bool,
    /// Go marshals an empty slice it never filled as `null`.
    dependencies: Option<Vec<DepJson<'a>>>,
}

#[derive(Serialize)]
struct DepJson<'a> {
    depends_on: &'a str,
    required_status: &'a str,
    current_status: &'a str,
    is_satisfied: bool,
}

#[derive(Serialize)]
struct ListItemJson<'a> {
    unit_name: &'a str,
    status: &'a str,
    is_ready: bool,
}

/// A status as Coder's tables show it: ours, but a native `ready` unit (a
/// service that runs and satisfies its dependents) is `completed`, since
/// Coder has no such status and its dependents proceed all the same.
fn shown(status: Status) -> &'static str {
    match status {
        Status::Ready => Status::Completed.as_str(),
        status => status.as_str(),
    }
}

/// A status as Coder's JSON spells it: a not-registered unit's status is
/// the empty string (its Go zero value), the rest as [`shown`].
fn coder_status(status: Status) -> &'static str {
    if status == Status::NotRegistered { "" } else { shown(status) }
}

impl<'a> From<&'a UnitView> for StatusJson<'a> {
    fn from(u: &'a UnitView) -> StatusJson<'a> {
        let dependencies = u
            .dependencies
            .iter()
            .map(|d| DepJson {
                depends_on: &d.unit,
                required_status: required(d),
                current_status: coder_status(d.status),
                is_satisfied: d.satisfied,
            })
            .collect::<Vec<_>>();
        StatusJson {
            unit_name: &u.unit,
            status: coder_status(u.status),
            is_ready: u.startable,
            dependencies: (!dependencies.is_empty()).then_some(dependencies),
        }
    }
}

fn list_json<'a>(units: &[&'a UnitView]) -> Vec<ListItemJson<'a>> {
    units
        .iter()
        .map(|u| ListItemJson {
            unit_name: &u.unit,
            status: coder_status(u.status),
            is_ready: u.startable,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use Status::*;

    fn parse_str(line: &str) -> Result<Parsed, ParseError> {
        parse(line.split_whitespace().map(OsString::from))
    }

    fn sub(line: &str) -> (Option<PathBuf>, Sub) {
        match parse_str(line) {
            Ok(Parsed::Run(Invocation { socket_path, sub })) => (socket_path, sub),
            other => panic!("{line:?} parsed as {other:?}"),
        }
    }

    fn usage(line: &str) -> (String, String) {
        match parse_str(line) {
            Err(ParseError::Usage { command, message }) => (command, message),
            other => panic!("{line:?} parsed as {other:?}"),
        }
    }

    #[test]
    fn parses_every_subcommand() {
        assert_eq!(sub("exp sync ping").1, Sub::Ping);
        assert_eq!(
            sub("exp sync want pip-install git-clone apt-install").1,
            Sub::Want {
                unit: "pip-install".into(),
                deps: vec!["git-clone".into(), "apt-install".into()]
            }
        );
        assert_eq!(sub("exp sync start a").1, Sub::Start { unit: "a".into(), timeout: None });
        assert_eq!(
            sub("exp sync start long-operation --timeout 10m").1,
            Sub::Start { unit: "long-operation".into(), timeout: Some(Duration::from_secs(600)) }
        );
        assert_eq!(sub("exp sync complete a").1, Sub::Complete { unit: "a".into() });
        assert_eq!(sub("exp sync status a").1, Sub::Status { unit: "a".into(), json: false });
        assert_eq!(sub("exp sync list").1, Sub::List { json: false });
    }

    #[test]
    fn flags_go_anywhere_in_every_spelling() {
        for line in [
            "exp sync status a -o json",
            "exp sync status a -ojson",
            "exp sync status a -o=json",
            "exp sync status --output json a",
            "exp sync status a --output=json",
            "exp sync status -o table a --output json",
        ] {
            assert_eq!(sub(line).1, Sub::Status { unit: "a".into(), json: true }, "{line}");
        }
        assert_eq!(sub("exp sync list -o table").1, Sub::List { json: false });
        assert_eq!(
            sub("exp sync start --timeout=0 a").1,
            Sub::Start { unit: "a".into(), timeout: Some(Duration::ZERO) }
        );
        for line in [
            "exp sync --socket-path /s ping",
            "--socket-path /s exp sync ping",
            "exp sync ping --socket-path=/s",
        ] {
            assert_eq!(sub(line), (Some("/s".into()), Sub::Ping), "{line}");
        }
        // After `--`, everything is an argument.
        assert_eq!(sub("exp sync complete -- -odd").1, Sub::Complete { unit: "-odd".into() });
    }

    #[test]
    fn help_anywhere_and_bare_sync_print_help() {
        for line in
            ["--help", "-h", "exp sync", "exp sync --help", "exp sync start -h", "list --help"]
        {
            assert_eq!(parse_str(line), Ok(Parsed::Help), "{line}");
        }
    }

    #[test]
    fn other_coder_commands_are_not_provided() {
        for (line, typed) in [
            ("", "coder"),
            ("list", "coder list"),
            ("exp", "coder exp"),
            ("exp foo", "coder exp foo"),
            ("--verbose ssh dev", "coder --verbose ssh dev"),
        ] {
            assert_eq!(parse_str(line), Err(ParseError::NotProvided(typed.into())), "{line}");
        }
    }

    #[test]
    fn usage_errors_use_coders_words() {
        let start = "coder exp sync start".to_owned();
        assert_eq!(
            usage("exp sync start"),
            (start.clone(), "exactly one unit name is required".into())
        );
        assert_eq!(usage("exp sync start a b").1, "exactly one unit name is required");
        assert_eq!(
            usage("exp sync want a"),
            (
                "coder exp sync want".into(),
                "at least two arguments are required: unit and one or more depends-on".into()
            )
        );
        assert_eq!(
            usage("exp sync start a --timeout"),
            (start.clone(), "flag needs an argument: --timeout".into())
        );
        assert_eq!(
            usage("exp sync start a --timeout soon").1,
            "invalid argument \"soon\" for \"--timeout\" flag: invalid duration \"soon\": write it like 250ms, 30s, 5m or 1h30m"
        );
        assert_eq!(
            usage("exp sync list -o yaml").1,
            "invalid argument \"yaml\" for \"-o\" flag: must be one of \"table\", \"json\""
        );
        assert_eq!(usage("exp sync ping --timeout 1s").1, "unknown flag: --timeout");
        assert_eq!(usage("exp sync start a --soft").1, "unknown flag: --soft");
        assert_eq!(usage("exp sync list extra").1, "unexpected argument \"extra\"");
        assert_eq!(usage("exp sync frob").0, "coder exp sync");
        assert!(usage("exp sync frob").1.starts_with("unknown command \"frob\""));
    }

    fn view(unit: &str, status: Status, deps: &[(&str, Status, bool)]) -> UnitView {
        UnitView {
            unit: unit.into(),
            status,
            startable: deps.iter().all(|d| d.2),
            dependencies: deps
                .iter()
                .map(|&(u, s, satisfied)| DepView {
                    unit: u.into(),
                    status: s,
                    soft: false,
                    satisfied,
                    since: 0.0,
                })
                .collect(),
            reason: None,
            note: None,
            failed_by: None,
            since: 0.0,
            started_at: None,
            ready_at: None,
            finished_at: None,
            waited: None,
            ran: None,
            waiting_since: None,
        }
    }

    #[test]
    fn status_is_pinned() {
        let unit = view(
            "pip-install",
            Pending,
            &[("apt-install", Completed, true), ("git-clone", NotRegistered, false)],
        );
        assert_eq!(
            status(&unit),
            "\
Unit: pip-install
Status: pending
Ready: false

Dependencies:
DEPENDS ON   REQUIRED STATUS  CURRENT STATUS  SATISFIED
apt-install  completed        completed       true
git-clone    completed        not registered  false
"
        );
        assert_eq!(
            render::json(&StatusJson::from(&unit)),
            r#"{
  "unit_name": "pip-install",
  "status": "pending",
  "is_ready": false,
  "dependencies": [
    {
      "depends_on": "apt-install",
      "required_status": "completed",
      "current_status": "completed",
      "is_satisfied": true
    },
    {
      "depends_on": "git-clone",
      "required_status": "completed",
      "current_status": "",
      "is_satisfied": false
    }
  ]
}
"#
        );
        let nobody = view("doesnotexist", NotRegistered, &[]);
        assert_eq!(
            status(&nobody),
            "Unit: doesnotexist\nStatus: not registered\nReady: true\n\nDependencies:\nNo dependencies found\n"
        );
        assert_eq!(
            render::json(&StatusJson::from(&nobody)),
            "{\n  \"unit_name\": \"doesnotexist\",\n  \"status\": \"\",\n  \"is_ready\": true,\n  \"dependencies\": null\n}\n"
        );
    }

    #[test]
    fn a_ready_unit_shows_as_completed() {
        // Coder has no `ready`: a service that runs and satisfies its
        // dependents is, to Coder's scripts, a completed unit.
        let db = view("db", Ready, &[]);
        let app = view("app", Pending, &[("db", Ready, true)]);
        assert!(status(&db).starts_with("Unit: db\nStatus: completed\nReady: true\n"));
        assert!(status(&app).contains("db          completed        completed       true\n"));
        assert_eq!(
            list(&[&app, &db]),
            "UNIT  STATUS     READY\napp   pending    true\ndb    completed  true\n"
        );
        let json = render::json(&StatusJson::from(&app));
        assert!(json.contains(r#""current_status": "completed""#), "{json}");
        let json = render::json(&list_json(&[&db]));
        assert!(json.contains(r#""status": "completed""#), "{json}");
    }

    #[test]
    fn list_is_pinned() {
        let units = [
            view("git-clone", Completed, &[]),
            view("ide-configure", Pending, &[("x", Started, false)]),
        ];
        let units: Vec<&UnitView> = units.iter().collect();
        assert_eq!(
            list(&units),
            "UNIT           STATUS     READY\ngit-clone      completed  true\nide-configure  pending    false\n"
        );
        assert_eq!(
            render::json(&list_json(&units)),
            r#"[
  {
    "unit_name": "git-clone",
    "status": "completed",
    "is_ready": true
  },
  {
    "unit_name": "ide-configure",
    "status": "pending",
    "is_ready": false
  }
]
"#
        );
        assert_eq!(list(&[]), "No units registered\n");
        assert_eq!(render::json(&list_json(&[])), "[]\n");
    }
}
