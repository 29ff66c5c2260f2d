//! The `coder` personality: invoked as `coder`, unitsync answers `coder exp
//! sync ping|want|start|complete|status|list` as Coder's CLI does (its
//! flags, texts, tables, JSON, errors and help pages; exit 1 on any error),
//! on top of the native client. What it matches and where it differs on
//! purpose: README.md, "Coder compatibility". The texts and layouts were
//! matched against coder/coder's cli/sync*.go and their golden files,
//! cli/cliui, and the serpent and pflag flag parsers; the tests below and
//! tests/it/coder_upstream.rs pin them.

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
use crate::protocol::{Body, DepView, ErrorKind, Owners, Request, Status, UnitView};
use crate::render;
use crate::settings::Settings;

/// `coder --help` (or any `coder` help outside `exp sync`): what this
/// `coder` is.
const HELP: &str = "\
coder exp sync, as provided by unitsync: startup scripts declare
dependencies on each other and wait for them.

Usage: coder exp sync COMMAND [ARGS] [--socket-path PATH]

Commands:
  ping                          check that the server answers
  want UNIT DEP [DEP...]        UNIT may start only once every DEP completed
  start UNIT [--timeout D]      wait until UNIT's dependencies completed, then
                                mark it started (D: 30s, 5m; 5m by default;
                                0 or less waits forever)
  complete UNIT                 mark UNIT completed
  status UNIT [-o table|json]   UNIT's status, readiness and dependencies
  list [-o table|json]          every registered unit

  --socket-path PATH   the server's socket [$CODER_AGENT_SOCKET_PATH, else
                       $UNITSYNC_SOCKET, else /tmp/unitsync-$UID/unitsync.sock]

'coder exp sync [COMMAND] --help' shows Coder's own page for a command.
This 'coder' is unitsync under another name: it provides only
'coder exp sync', serving it from 'unitsync serve'. Any error exits 1.
See 'unitsync --help' for the rest.
";

/// Coder's help pages (cli/testdata/coder_exp_sync_*--help.golden), after
/// the first line, which names the version.
const HELP_SYNC: &str = "
USAGE:
  coder exp sync [flags]

  Manage unit dependencies for coordinated startup

  Commands for orchestrating unit startup order in workspaces. Units are most
  commonly coder scripts. Use these commands to declare dependencies between
  units, coordinate their startup sequence, and ensure units start only after
  their dependencies are ready. This helps prevent race conditions and startup
  failures.

SUBCOMMANDS:
    complete    Mark a unit as complete
    list        List all registered units and their statuses
    ping        Test agent socket connectivity and health
    start       Wait until all unit dependencies are satisfied
    status      Show unit status and dependency state
    want        Declare that a unit depends on other units completing before it
                can start

OPTIONS:
      --socket-path string, $CODER_AGENT_SOCKET_PATH
          Specify the path for the agent socket.
";

const HELP_PING: &str = "
USAGE:
  coder exp sync ping

  Test agent socket connectivity and health

  Test connectivity to the local Coder agent socket to verify the agent is
  running and responsive. Useful for troubleshooting startup issues or verifying
  the agent is accessible before running other sync commands.
";

const HELP_WANT: &str = "
USAGE:
  coder exp sync want <unit> <depends-on> [depends-on...]

  Declare that a unit depends on other units completing before it can start

  Declare that a unit depends on one or more other units completing before it
  can start. The unit specified first will not start until all subsequent units
  have signaled that they have completed.
";

const HELP_START: &str = "
USAGE:
  coder exp sync start [flags] <unit>

  Wait until all unit dependencies are satisfied

  Wait until all dependencies are satisfied, consider the unit to have started,
  then allow it to proceed. This command polls until dependencies are ready,
  then marks the unit as started.

OPTIONS:
      --timeout duration (default: 5m)
          Maximum time to wait for dependencies (e.g., 30s, 5m). 5m by default.
";

const HELP_COMPLETE: &str = "
USAGE:
  coder exp sync complete <unit>

  Mark a unit as complete

  Mark a unit as complete. Indicating to other units that it has completed its
  work. This allows units that depend on it to proceed with their startup.
";

const HELP_STATUS: &str = "
USAGE:
  coder exp sync status [flags] <unit>

  Show unit status and dependency state

  Show the current status of a unit, whether it is ready to start, and lists its
  dependencies. Shows which dependencies are satisfied and which are still
  pending.

OPTIONS:
  -c, --column [depends on|required status|current status|satisfied] (default: depends on,required status,current status,satisfied)
          Columns to display in table output.

  -o, --output table|json (default: table)
          Output format.
";

const HELP_LIST: &str = "
USAGE:
  coder exp sync list [flags]

  List all registered units and their statuses

  List all units currently registered with the workspace agent. Shows each
  unit's name, status, and whether it is ready to start.

OPTIONS:
  -c, --column [unit|status|ready] (default: unit,status,ready)
          Columns to display in table output.

  -o, --output table|json (default: table)
          Output format.
";

const HELP_FOOTER: &str = "
———
Run `coder --help` for a list of global options.
";

/// The columns of `status`'s and `list`'s tables, as `-c` names them.
const STATUS_COLUMNS: [&str; 4] = ["depends on", "required status", "current status", "satisfied"];
const LIST_COLUMNS: [&str; 3] = ["unit", "status", "ready"];

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
        Ok(Parsed::Help(page)) => {
            let _ = io::stdout().write_all(help(page).as_bytes());
            return exit::SUCCESS;
        }
        Ok(Parsed::Run(invocation)) => invocation,
        Err(ParseError::NotProvided(typed)) => {
            stderr(&format!(
                "error: '{typed}' is not available: this 'coder' is unitsync {}, which provides \
                 only 'coder exp sync' (ping, want, start, complete, status, list)\n",
                env!("CARGO_PKG_VERSION")
            ));
            return exit::ERROR;
        }
        Err(ParseError::Usage { command, message }) => return failed(&command, &message, None),
        Err(ParseError::Flags { command, args, message }) => {
            // Serpent returns flag errors as they are, without the frame
            // Coder puts around a failed command.
            stderr(&format!("parsing flags ([{}]) for {command:?}: {message}\n", args.join(" ")));
            return exit::ERROR;
        }
    };
    let command = invocation.sub.command();
    // An empty --socket-path is Coder's default path, which is ours.
    let socket = match invocation.socket_path {
        Some(path) => Some(path).filter(|p| !p.as_os_str().is_empty()),
        None => env::var_os("CODER_AGENT_SOCKET_PATH").filter(|v| !v.is_empty()).map(PathBuf::from),
    };
    let settings = match Settings::resolve(&cli::Global { socket, ..Default::default() }) {
        Ok(settings) => settings,
        Err(message) => return failed(&command, &message, None),
    };
    match run(invocation.sub, &settings, &mut io::stdout().lock()) {
        Ok(()) => exit::SUCCESS,
        Err(Failure::Client { error: client::Error::Unreachable { path, reason }, .. })
            if settings.optional =>
        {
            Say::error(&format!(
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
    let mut text = format!(
        "Encountered an error running {command:?}, see \"{command} --help\" for more information\n\
         error: {message}\n"
    );
    if let Some(detail) = detail {
        text += &format!("unitsync: {detail}\n");
    }
    stderr(&text);
    exit::ERROR
}

/// Writes Coder's error text in one `write`; a closed stderr is no reason
/// to panic (README.md, "As a container's init").
fn stderr(text: &str) {
    let _ = io::stderr().lock().write_all(text.as_bytes());
}

/// Which help page to print.
#[derive(Debug, PartialEq, Clone, Copy)]
enum Page {
    /// What this `coder` is: asked outside `coder exp sync`.
    Ours,
    /// Coder's page for `coder exp sync` (`None`) or one subcommand.
    Coder(Option<Name>),
}

fn help(page: Page) -> String {
    let body = match page {
        Page::Ours => return HELP.to_owned(),
        Page::Coder(None) => HELP_SYNC,
        Page::Coder(Some(name)) => match name {
            Name::Ping => HELP_PING,
            Name::Want => HELP_WANT,
            Name::Start => HELP_START,
            Name::Complete => HELP_COMPLETE,
            Name::Status => HELP_STATUS,
            Name::List => HELP_LIST,
        },
    };
    format!("coder v{} (unitsync)\n{body}{HELP_FOOTER}", env!("CARGO_PKG_VERSION"))
}

/// The subcommands of `coder exp sync`.
#[derive(Debug, PartialEq, Clone, Copy)]
enum Name {
    Ping,
    Want,
    Start,
    Complete,
    Status,
    List,
}

impl Name {
    fn of(word: &str) -> Option<Name> {
        Some(match word {
            "ping" => Name::Ping,
            "want" => Name::Want,
            "start" => Name::Start,
            "complete" => Name::Complete,
            "status" => Name::Status,
            "list" => Name::List,
            _ => return None,
        })
    }

    /// The command's full name, as Coder's errors spell it.
    fn command(self) -> String {
        let name = match self {
            Name::Ping => "ping",
            Name::Want => "want",
            Name::Start => "start",
            Name::Complete => "complete",
            Name::Status => "status",
            Name::List => "list",
        };
        format!("coder exp sync {name}")
    }
}

#[derive(Debug, PartialEq)]
enum Sub {
    Ping,
    Want {
        unit: String,
        deps: Vec<String>,
    },
    /// `Some(Duration::ZERO)` waits forever.
    Start {
        unit: String,
        timeout: Option<Duration>,
    },
    Complete {
        unit: String,
    },
    Status {
        unit: String,
        view: View,
    },
    List {
        view: View,
    },
}

impl Sub {
    fn name(&self) -> Name {
        match self {
            Sub::Ping => Name::Ping,
            Sub::Want { .. } => Name::Want,
            Sub::Start { .. } => Name::Start,
            Sub::Complete { .. } => Name::Complete,
            Sub::Status { .. } => Name::Status,
            Sub::List { .. } => Name::List,
        }
    }

    fn command(&self) -> String {
        self.name().command()
    }
}

/// How `status` and `list` show what they show: `-o` and `-c`.
#[derive(Debug, PartialEq, Default)]
struct View {
    json: bool,
    /// The columns `-c` named, if any; no flag or an empty one shows all.
    columns: Option<Vec<String>>,
}

#[derive(Debug, PartialEq)]
struct Invocation {
    /// `--socket-path` as given; an empty one means the default.
    socket_path: Option<PathBuf>,
    sub: Sub,
}

#[derive(Debug, PartialEq)]
enum Parsed {
    Help(Page),
    Run(Invocation),
}

#[derive(Debug, PartialEq)]
enum ParseError {
    /// Not a `coder exp sync` command; holds it as typed.
    NotProvided(String),
    /// A mistake in a `coder exp sync` command's arguments.
    Usage { command: String, message: String },
    /// A mistake in its flags, reported with every argument, as serpent does.
    Flags { command: String, args: Vec<String>, message: String },
}

/// A flag as typed: `--timeout 5m`, `--timeout=5m`, `-o json`, `-ojson`,
/// `-o=json`. Serpent hands them to pflag, whose rules these are.
#[derive(Debug)]
struct Flag {
    /// `--name` for a long flag, `-x` for a shorthand.
    name: String,
    /// The argument it was typed in, for pflag's shorthand messages.
    typed: String,
    value: Option<String>,
}

/// The long flags that take a value, and their shorthands.
const VALUE_FLAGS: [(&str, Option<char>); 4] =
    [("socket-path", None), ("timeout", None), ("output", Some('o')), ("column", Some('c'))];

/// Parses `coder` arguments: flags may come anywhere, `--` ends them, and
/// `-h/--help` anywhere asks for help.
fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Parsed, ParseError> {
    let all: Vec<String> = args.into_iter().map(|a| a.to_string_lossy().into_owned()).collect();
    let Lexed { words, flags, help } = lex(&all);
    let typed = || ["coder".to_owned()].into_iter().chain(all.iter().cloned()).collect::<Vec<_>>();
    if words.len() < 2 || words[0] != "exp" || words[1] != "sync" {
        if help {
            return Ok(Parsed::Help(Page::Ours));
        }
        return Err(ParseError::NotProvided(typed().join(" ")));
    }
    let name = words.get(2).and_then(|word| Name::of(word));
    if help {
        return Ok(Parsed::Help(Page::Coder(name)));
    }
    let Some(name) = name else {
        // `coder exp sync` alone prints its help, as Coder's does.
        let Some(word) = words.get(2) else { return Ok(Parsed::Help(Page::Coder(None))) };
        return Err(ParseError::Usage {
            command: "coder exp sync".to_owned(),
            message: format!("unrecognized subcommand {word:?}"),
        });
    };
    let Flags { socket_path, timeout, view } = apply_flags(name, flags, &all)?;
    let sub = positionals(name, &words[3..], timeout, view)?;
    Ok(Parsed::Run(Invocation { socket_path, sub }))
}

/// The arguments sorted into words and flags, as pflag sorts them.
struct Lexed {
    words: Vec<String>,
    flags: Vec<Flag>,
    /// `-h` or `--help` came anywhere.
    help: bool,
}

/// Sorts arguments into words and flags: a flag that takes a value takes
/// the next argument unless its value is inline; `--` makes the rest words.
fn lex(all: &[String]) -> Lexed {
    let mut lexed = Lexed { words: Vec::new(), flags: Vec::new(), help: false };
    let mut only_words = false;
    let mut rest = all.iter();
    while let Some(arg) = rest.next() {
        if only_words || arg == "-" || !arg.starts_with('-') {
            lexed.words.push(arg.clone());
            continue;
        }
        if arg == "--" {
            only_words = true;
            continue;
        }
        let (name, inline, takes) = match arg.strip_prefix("--") {
            Some(long) => {
                let (name, inline) = match long.split_once('=') {
                    Some((name, value)) => (name, Some(value.to_owned())),
                    None => (long, None),
                };
                (format!("--{name}"), inline, VALUE_FLAGS.iter().any(|(n, _)| *n == name))
            }
            None => {
                // A shorthand takes the rest of its argument as its value,
                // after an optional `=`.
                let mut chars = arg[1..].chars();
                let short = chars.next().expect("a lone '-' is a word");
                let tail = chars.as_str();
                let inline = (!tail.is_empty()).then(|| tail.strip_prefix('=').unwrap_or(tail));
                let takes = VALUE_FLAGS.iter().any(|(_, s)| *s == Some(short));
                (format!("-{short}"), inline.filter(|_| takes).map(str::to_owned), takes)
            }
        };
        if name == "--help" || name == "-h" {
            lexed.help = true;
            continue;
        }
        let value = match (inline, takes) {
            (Some(value), _) => Some(value),
            (None, true) => rest.next().cloned(),
            (None, false) => None,
        };
        lexed.flags.push(Flag { name, typed: arg.clone(), value });
    }
    lexed
}

/// What the flags of a `coder exp sync` command set.
struct Flags {
    socket_path: Option<PathBuf>,
    timeout: Option<Duration>,
    view: View,
}

/// Checks each flag against what `name` accepts and reads its value;
/// errors are worded as pflag words them, with every argument (`all`).
fn apply_flags(name: Name, flags: Vec<Flag>, all: &[String]) -> Result<Flags, ParseError> {
    let flag_error = |message: String| ParseError::Flags {
        command: name.command(),
        args: all.to_vec(),
        message,
    };
    let mut set = Flags { socket_path: None, timeout: None, view: View::default() };
    for flag in flags {
        let long = match flag.name.strip_prefix("--") {
            Some(long) => Some(long),
            None => VALUE_FLAGS
                .iter()
                .find(|(_, short)| *short == flag.name[1..].chars().next())
                .map(|(long, _)| *long),
        };
        let known = match long {
            Some("socket-path") => true,
            Some("timeout") => name == Name::Start,
            Some("output" | "column") => name == Name::Status || name == Name::List,
            _ => false,
        };
        if !known {
            return Err(flag_error(match flag.name.strip_prefix("--") {
                Some(_) => format!("unknown flag: {}", flag.name),
                None => format!("unknown shorthand flag: '{}' in {}", &flag.name[1..], flag.typed),
            }));
        }
        let long = long.expect("known flags have a long name");
        let Some(value) = flag.value else {
            return Err(flag_error(match flag.name.strip_prefix("--") {
                Some(_) => format!("flag needs an argument: {}", flag.name),
                None => format!("flag needs an argument: '{}' in {}", &flag.name[1..], flag.typed),
            }));
        };
        // pflag names a flag with its shorthand, if it has one.
        let shown = match VALUE_FLAGS.iter().find(|(n, _)| *n == long) {
            Some((_, Some(short))) => format!("-{short}, --{long}"),
            _ => format!("--{long}"),
        };
        let bad = |why: String| {
            flag_error(format!("invalid argument {value:?} for {shown:?} flag: {why}"))
        };
        match long {
            "socket-path" => set.socket_path = Some(PathBuf::from(&value)),
            "timeout" => set.timeout = Some(go_duration(&value).map_err(bad)?),
            "output" => {
                set.view.json = match value.as_str() {
                    "table" => false,
                    "json" => true,
                    _ => return Err(bad(invalid_choice(&value, &["table", "json"]))),
                }
            }
            _ => {
                let choices: &[&str] =
                    if name == Name::Status { &STATUS_COLUMNS } else { &LIST_COLUMNS };
                // Serpent reads the value as one CSV record; an empty one
                // clears the list, which shows every column.
                let named: Vec<String> =
                    value.split(',').filter(|_| !value.is_empty()).map(str::to_owned).collect();
                if let Some(wrong) = named.iter().find(|c| !choices.contains(&c.as_str())) {
                    return Err(bad(invalid_choice(wrong, choices)));
                }
                set.view.columns.get_or_insert_with(Vec::new).extend(named);
            }
        }
    }
    Ok(set)
}

/// The subcommand `name` made of its positional arguments `args`.
fn positionals(
    name: Name,
    args: &[String],
    timeout: Option<Duration>,
    view: View,
) -> Result<Sub, ParseError> {
    let usage =
        |message: &str| ParseError::Usage { command: name.command(), message: message.to_owned() };
    let one_unit = || match args {
        [unit] => Ok(unit.clone()),
        _ => Err(usage("exactly one unit name is required")),
    };
    let no_args = || match args.first() {
        Some(extra) => Err(usage(&format!("unexpected argument {extra:?}"))),
        None => Ok(()),
    };
    Ok(match name {
        Name::Ping => no_args().map(|()| Sub::Ping)?,
        Name::Want => match args {
            [unit, deps @ ..] if !deps.is_empty() => {
                Sub::Want { unit: unit.clone(), deps: deps.to_vec() }
            }
            _ => {
                return Err(usage(
                    "at least two arguments are required: unit and one or more depends-on",
                ));
            }
        },
        Name::Start => Sub::Start { unit: one_unit()?, timeout },
        Name::Complete => Sub::Complete { unit: one_unit()? },
        Name::Status => Sub::Status { unit: one_unit()?, view },
        Name::List => no_args().map(|()| Sub::List { view })?,
    })
}

/// serpent's enum flags: `invalid choice: yaml, should be one of [table json]`.
fn invalid_choice(value: &str, choices: &[&str]) -> String {
    format!("invalid choice: {value}, should be one of [{}]", choices.join(" "))
}

/// `--timeout` as Go's `time.ParseDuration` reads it, in its words when
/// it cannot: a sign, then `500us`, `1.5s`, `1h2m3s`; a bare `0`. Zero or
/// less is `Duration::ZERO`: no deadline, as a Go context without one.
fn go_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("time: invalid duration {text:?}");
    let (negative, magnitude) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if magnitude == "0" {
        return Ok(Duration::ZERO);
    }
    if !magnitude.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        return Err(invalid());
    }
    let number = |c: char| c.is_ascii_digit() || c == '.';
    if magnitude.chars().all(number) {
        return Err(format!("time: missing unit in duration {text:?}"));
    }
    let parsed = duration::parse(magnitude).map_err(|_| {
        const UNITS: [&str; 8] = ["ns", "us", "\u{b5}s", "\u{3bc}s", "ms", "s", "m", "h"];
        match magnitude.split(number).find(|unit| !unit.is_empty() && !UNITS.contains(unit)) {
            Some(unit) => format!("time: unknown unit {unit:?} in duration {text:?}"),
            None => invalid(),
        }
    })?;
    Ok(if negative { Duration::ZERO } else { parsed })
}

#[derive(Debug)]
enum Failure {
    /// The client failed while doing something Coder names, such as
    /// "declare dependency failed".
    Client {
        doing: &'static str,
        error: client::Error,
    },
    /// Refused, in the words Coder's agent would have used.
    Coder {
        doing: &'static str,
        cause: String,
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
            Failure::Coder { doing, cause } => write!(f, "{doing}: {cause}"),
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

/// What Coder's agent says to an empty unit name (agent/agentsocket's
/// service wrapping agent/unit's manager errors), for each subcommand.
fn empty_name(sub: &Sub) -> Option<Failure> {
    let required = "unit name is required";
    let (doing, cause) = match sub {
        Sub::Status { unit, .. } | Sub::Start { unit, .. } if unit.is_empty() => (
            "get status failed",
            format!("cannot check readiness: unit ID cannot be empty: {required}"),
        ),
        Sub::Complete { unit } if unit.is_empty() => (
            "complete unit failed",
            format!("cannot complete unit \"\": updating status for unit \"\": {required}"),
        ),
        Sub::Want { unit, .. } if unit.is_empty() => (
            "declare dependency failed",
            format!("cannot add dependency: registering unit \"\": {required}"),
        ),
        Sub::Want { deps, .. } if deps.iter().any(String::is_empty) => (
            "declare dependency failed",
            format!("cannot add dependency: dependency name cannot be empty: {required}"),
        ),
        _ => return None,
    };
    Some(Failure::Coder { doing, cause })
}

/// Coder's words for a unit set to the status it has: its agent refuses
/// a second `start` of a started unit and a second `complete`.
fn same_status(verb: &str, unit: &str) -> String {
    format!(
        "cannot {verb} unit {unit:?}: checking status for unit {unit:?}: same status already set"
    )
}

fn run(sub: Sub, settings: &Settings, out: &mut impl Write) -> Result<(), Failure> {
    if let Some(failure) = empty_name(&sub) {
        return Err(failure);
    }
    let mut client = settings.client();
    match sub {
        Sub::Ping => {
            call(&mut client, &Request::Ping, "ping failed")?;
            writeln!(out, "Success")?;
        }
        Sub::Want { unit, deps } => {
            let declared = deps.join(", ");
            let want = Request::Want { unit: unit.clone(), deps, soft: false };
            call(&mut client, &want, "declare dependency failed")?;
            writeln!(out, "Unit {unit:?} declared dependencies: [{declared}]")?;
        }
        Sub::Start { unit, timeout } => {
            let owner = settings.owner(false, &unit);
            start(&mut client, &unit, owner, settings.patience(timeout, None), out)?;
        }
        Sub::Complete { unit } => {
            let doing = "complete unit failed";
            match client.call(&Request::Complete { unit: unit.clone(), note: None, instance: None })
            {
                Err(client::Error::Refused(body)) if body.kind == ErrorKind::AlreadyCompleted => {
                    return Err(Failure::Coder { doing, cause: same_status("complete", &unit) });
                }
                Err(error) => return Err(Failure::Client { doing, error }),
                Ok(_) => writeln!(out, "Success")?,
            }
        }
        Sub::Status { unit, view } => {
            let doing = "get status failed";
            let Body::Status { unit, .. } = call(&mut client, &Request::Status { unit }, doing)?
            else {
                return Err(Failure::Client { doing, error: client.unexpected() });
            };
            let text = if view.json {
                render::json(&StatusJson::from(&*unit))
            } else {
                status(&unit, &view)
            };
            out.write_all(text.as_bytes())?;
        }
        Sub::List { view } => {
            let doing = "list units failed";
            let Body::List { units, .. } = call(&mut client, &Request::List, doing)? else {
                return Err(Failure::Client { doing, error: client.unexpected() });
            };
            // Coder lists the units scripts registered, not placeholders.
            let mut units: Vec<&UnitView> =
                units.iter().filter(|u| u.status != Status::NotRegistered).collect();
            units.sort_by_key(|u| &u.unit);
            let text = match view.json {
                true => render::json(&list_json(&units)),
                false => list(&units, &view),
            };
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
    owner: Option<Owners>,
    patience: client::Patience,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let doing = "get status failed";
    let Body::Status { unit: view, .. } =
        call(client, &Request::Status { unit: unit.to_owned() }, doing)?
    else {
        return Err(Failure::Client { doing, error: client.unexpected() });
    };
    let mut all: Vec<&str> = view.dependencies.iter().map(|d| d.unit.as_str()).collect();
    let mut unmet: Vec<&str> =
        view.dependencies.iter().filter(|d| !d.satisfied).map(|d| d.unit.as_str()).collect();
    all.sort();
    unmet.sort();
    if !view.startable {
        let waiting = unmet.join(", ");
        writeln!(out, "Unit {unit:?} is waiting for dependencies to be satisfied: [{waiting}]")?;
        out.flush()?;
    }
    client::start(client, unit, owner, patience, Say { quiet: true }).map_err(
        |error| match error {
            client::Error::TimedOut(detail) => Failure::TimedOut { unit: unit.to_owned(), detail },
            client::Error::Refused(body) if body.kind == ErrorKind::AlreadyStarted => {
                Failure::Coder { doing: "start unit failed", cause: same_status("start", unit) }
            }
            error => Failure::Client { doing: "start unit failed", error },
        },
    )?;
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
fn status(unit: &UnitView, view: &View) -> String {
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
    let mut deps: Vec<&DepView> = unit.dependencies.iter().collect();
    deps.sort_by_key(|d| &d.unit);
    let rows = deps.iter().map(|d| {
        vec![
            d.unit.clone(),
            required(d).to_owned(),
            shown(d.status).to_owned(),
            d.satisfied.to_string(),
        ]
    });
    out + &table(&STATUS_COLUMNS, view, rows.collect())
}

/// `list` as a table, or Coder's note when there is nothing to list.
fn list(units: &[&UnitView], view: &View) -> String {
    if units.is_empty() {
        return "No units registered\n".to_owned();
    }
    let rows = units
        .iter()
        .map(|u| vec![u.unit.clone(), shown(u.status).to_owned(), u.startable.to_string()]);
    table(&LIST_COLUMNS, view, rows.collect())
}

/// The status a dependency must reach. Coder knows only `completed`; a soft
/// edge (native `want --soft`) accepts a failure too.
fn required(dep: &DepView) -> &'static str {
    if dep.soft { "completed or failed" } else { "completed" }
}

/// Coder's tables: the columns `-c` keeps, in their own order, under
/// upper-case headers, laid out by [`render::columns`].
fn table(columns: &[&str], view: &View, rows: Vec<Vec<String>>) -> String {
    let shown: Vec<usize> = (0..columns.len())
        .filter(|&i| match &view.columns {
            Some(named) if !named.is_empty() => named.iter().any(|c| c == columns[i]),
            _ => true,
        })
        .collect();
    // The names are ASCII: `to_uppercase` would bring Unicode's case
    // tables (some 17 KB) into the binary for nothing.
    let header = shown.iter().map(|&i| columns[i].to_ascii_uppercase()).collect();
    let mut all = vec![header];
    all.extend(rows.into_iter().map(|row| shown.iter().map(|&i| row[i].clone()).collect()));
    padded(all)
}

/// The most columns a Coder table has ([`STATUS_COLUMNS`]).
const MAX_COLUMNS: usize = 4;

/// [`render::columns`] with its trailing blanks put back: cliui pads every
/// cell, the last one included, so every line is as long as the longest
/// plus the two blanks after a cell. Every table is laid out as
/// [`MAX_COLUMNS`] wide, its missing cells blank: `render::columns` trims
/// each line's end, so they change nothing, and the binary holds one copy
/// of it for all tables instead of one per column count.
fn padded(rows: Vec<Vec<String>>) -> String {
    let rows: Vec<[String; MAX_COLUMNS]> = rows
        .into_iter()
        .map(|row| {
            let mut cells: [String; MAX_COLUMNS] = Default::default();
            for (cell, text) in cells.iter_mut().zip(row) {
                *cell = text;
            }
            cells
        })
        .collect();
    let text = render::columns(&rows);
    let width = text.lines().map(|line| line.chars().count()).max().unwrap_or(0) + 2;
    text.lines().map(|line| format!("{line:<width$}\n")).collect()
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

/// `list -o json`: Go marshals an empty list it never filled as `null`.
fn list_json<'a>(units: &[&'a UnitView]) -> Option<Vec<ListItemJson<'a>>> {
    let items: Vec<ListItemJson<'a>> = units
        .iter()
        .map(|u| ListItemJson {
            unit_name: &u.unit,
            status: coder_status(u.status),
            is_ready: u.startable,
        })
        .collect();
    (!items.is_empty()).then_some(items)
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

    /// The flag error `line` gets, after `parsing flags (...) for "...": `.
    fn flag_error(line: &str) -> (String, String) {
        match parse_str(line) {
            Err(ParseError::Flags { command, args, message }) => {
                assert_eq!(args.join(" "), line, "every argument is shown");
                (command, message)
            }
            other => panic!("{line:?} parsed as {other:?}"),
        }
    }

    fn json() -> View {
        View { json: true, columns: None }
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
        assert_eq!(
            sub("exp sync status a").1,
            Sub::Status { unit: "a".into(), view: View::default() }
        );
        assert_eq!(sub("exp sync list").1, Sub::List { view: View::default() });
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
            assert_eq!(sub(line).1, Sub::Status { unit: "a".into(), view: json() }, "{line}");
        }
        assert_eq!(sub("exp sync list -o table").1, Sub::List { view: View::default() });
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
        // An empty path is kept, to mean the default rather than the variable.
        assert_eq!(sub("exp sync ping --socket-path=").0, Some(PathBuf::new()));
        // After `--`, everything is an argument.
        assert_eq!(sub("exp sync complete -- -odd").1, Sub::Complete { unit: "-odd".into() });
    }

    #[test]
    fn columns_are_checked_accumulated_and_cleared() {
        let columns = |line: &str| match sub(line).1 {
            Sub::Status { view, .. } | Sub::List { view } => view.columns,
            other => panic!("{other:?}"),
        };
        assert_eq!(columns("exp sync list"), None);
        assert_eq!(columns("exp sync list -c unit"), Some(vec!["unit".to_owned()]));
        assert_eq!(
            columns("exp sync list -cready --column=unit,status"),
            Some(vec!["ready".into(), "unit".into(), "status".into()])
        );
        assert_eq!(columns("exp sync list -c="), Some(vec![]));
        assert_eq!(
            parse(["exp", "sync", "status", "a", "-c", "satisfied,depends on"].map(OsString::from)),
            Ok(Parsed::Run(Invocation {
                socket_path: None,
                sub: Sub::Status {
                    unit: "a".into(),
                    view: View {
                        json: false,
                        columns: Some(vec!["satisfied".into(), "depends on".into()])
                    }
                }
            }))
        );
        assert_eq!(
            flag_error("exp sync list -c unit,name").1,
            "invalid argument \"unit,name\" for \"-c, --column\" flag: invalid choice: name, \
             should be one of [unit status ready]"
        );
        assert_eq!(
            flag_error("exp sync status a --column READY").1,
            "invalid argument \"READY\" for \"-c, --column\" flag: invalid choice: READY, \
             should be one of [depends on required status current status satisfied]"
        );
    }

    #[test]
    fn timeouts_are_go_durations() {
        let ok = |s: &str| go_duration(s).unwrap();
        assert_eq!(ok("500us"), Duration::from_micros(500));
        assert_eq!(ok("1h2m3s"), Duration::from_secs(3723));
        assert_eq!(ok("1.5s"), Duration::from_millis(1500));
        assert_eq!(ok("+2m"), Duration::from_secs(120));
        // Zero or less: no deadline.
        for forever in ["0", "-0", "0s", "-1s", "-1h30m"] {
            assert_eq!(ok(forever), Duration::ZERO, "{forever}");
        }
        assert_eq!(go_duration("soon").unwrap_err(), "time: invalid duration \"soon\"");
        assert_eq!(go_duration("").unwrap_err(), "time: invalid duration \"\"");
        assert_eq!(go_duration("-").unwrap_err(), "time: invalid duration \"-\"");
        assert_eq!(go_duration("12").unwrap_err(), "time: missing unit in duration \"12\"");
        assert_eq!(go_duration("5x").unwrap_err(), "time: unknown unit \"x\" in duration \"5x\"");
        assert_eq!(
            flag_error("exp sync start a --timeout soon").1,
            "invalid argument \"soon\" for \"--timeout\" flag: time: invalid duration \"soon\""
        );
    }

    #[test]
    fn help_pages() {
        for (line, page) in [
            ("--help", Page::Ours),
            ("-h", Page::Ours),
            ("list --help", Page::Ours),
            ("exp sync", Page::Coder(None)),
            ("exp sync --help", Page::Coder(None)),
            ("exp sync frob -h", Page::Coder(None)),
            ("exp sync start -h", Page::Coder(Some(Name::Start))),
            ("-h exp sync list --bogus", Page::Coder(Some(Name::List))),
        ] {
            assert_eq!(parse_str(line), Ok(Parsed::Help(page)), "{line}");
        }
        let start = help(Page::Coder(Some(Name::Start)));
        assert!(start.starts_with("coder v"), "{start}");
        assert!(start.contains("\nUSAGE:\n  coder exp sync start [flags] <unit>\n"), "{start}");
        assert!(start.ends_with("———\nRun `coder --help` for a list of global options.\n"));
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
        assert_eq!(usage("exp sync list extra").1, "unexpected argument \"extra\"");
        assert_eq!(
            usage("exp sync frob"),
            ("coder exp sync".into(), "unrecognized subcommand \"frob\"".into())
        );
    }

    #[test]
    fn flag_errors_use_pflags_words() {
        assert_eq!(
            flag_error("exp sync start a --soft"),
            ("coder exp sync start".into(), "unknown flag: --soft".into())
        );
        assert_eq!(flag_error("exp sync start a --timeout").1, "flag needs an argument: --timeout");
        assert_eq!(flag_error("exp sync list -o").1, "flag needs an argument: 'o' in -o");
        assert_eq!(
            flag_error("exp sync list -o yaml").1,
            "invalid argument \"yaml\" for \"-o, --output\" flag: invalid choice: yaml, \
             should be one of [table json]"
        );
        assert_eq!(
            flag_error("exp sync list --output=").1,
            "invalid argument \"\" for \"-o, --output\" flag: invalid choice: , \
             should be one of [table json]"
        );
        assert_eq!(flag_error("exp sync ping --timeout 1s").1, "unknown flag: --timeout");
        assert_eq!(
            flag_error("exp sync start a -ojson").1,
            "unknown shorthand flag: 'o' in -ojson"
        );
        assert_eq!(flag_error("exp sync list -x").1, "unknown shorthand flag: 'x' in -x");
        // The first mistake in argument order is the one reported.
        assert_eq!(
            flag_error("exp sync list -o yaml --bogus").1.split(':').next(),
            Some("invalid argument \"yaml\" for \"-o, --output\" flag")
        );
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
            owner: None,
            restarts: 0,
            last_failure: None,
            restarted_at: Vec::new(),
        }
    }

    #[test]
    fn status_is_pinned() {
        let unit = view(
            "pip-install",
            Pending,
            &[("git-clone", NotRegistered, false), ("apt-install", Completed, true)],
        );
        assert_eq!(
            status(&unit, &View::default()),
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
        let some =
            View { json: false, columns: Some(vec!["satisfied".into(), "depends on".into()]) };
        assert!(
            status(&unit, &some).ends_with(
                "DEPENDS ON   SATISFIED  \napt-install  true       \ngit-clone    false      \n"
            ),
            "{}",
            status(&unit, &some)
        );
        assert_eq!(
            render::json(&StatusJson::from(&unit)),
            r#"{
  "unit_name": "pip-install",
  "status": "pending",
  "is_ready": false,
  "dependencies": [
    {
      "depends_on": "git-clone",
      "required_status": "completed",
      "current_status": "",
      "is_satisfied": false
    },
    {
      "depends_on": "apt-install",
      "required_status": "completed",
      "current_status": "completed",
      "is_satisfied": true
    }
  ]
}
"#
        );
        let nobody = view("doesnotexist", NotRegistered, &[]);
        assert_eq!(
            status(&nobody, &View::default()),
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
        let all = View::default();
        assert!(status(&db, &all).starts_with("Unit: db\nStatus: completed\nReady: true\n"));
        assert!(
            status(&app, &all)
                .contains("db          completed        completed       true       \n")
        );
        assert_eq!(
            list(&[&app, &db], &all),
            "UNIT  STATUS     READY  \napp   pending    true   \ndb    completed  true   \n"
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
            list(&units, &View::default()),
            "UNIT           STATUS     READY  \ngit-clone      completed  true   \nide-configure  pending    false  \n"
        );
        let ready = View { json: false, columns: Some(vec!["ready".into()]) };
        assert_eq!(list(&units, &ready), "READY  \ntrue   \nfalse  \n");
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
        assert_eq!(list(&[], &View::default()), "No units registered\n");
        assert_eq!(render::json(&list_json(&[])), "null\n");
    }
}
