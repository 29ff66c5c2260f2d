//! The command line, parsed with lexopt into plain data. No environment, no
//! files: `main` resolves defaults from the environment after parsing.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use lexopt::Arg;
use lexopt::prelude::*;

use crate::duration;

/// Options every command takes.
#[derive(Debug, Default, PartialEq)]
pub struct Global {
    pub socket: Option<PathBuf>,
    pub quiet: bool,
    pub optional: bool,
    pub connect_timeout: Option<Duration>,
}

#[derive(Debug, PartialEq)]
pub struct Serve {
    pub detach: bool,
    pub pidfile: Option<PathBuf>,
    pub group: Option<String>,
    pub log: Option<PathBuf>,
    pub state: Option<PathBuf>,
    pub fsync: bool,
}

#[derive(Debug, PartialEq)]
pub enum ListFormat {
    Table,
    Json,
    Dot,
    /// A text Gantt chart, `width` columns wide (else the terminal's).
    Timeline {
        width: Option<usize>,
    },
    /// The chain of units that decided when the last one finished.
    Critical,
}

#[derive(Debug, PartialEq)]
pub enum Cmd {
    /// Print this text to stdout and succeed.
    Help(&'static str),
    Version,
    Serve(Serve),
    Ping,
    Want {
        unit: String,
        deps: Vec<String>,
        soft: bool,
    },
    Start {
        unit: String,
        timeout: Option<Duration>,
        poll: Option<Duration>,
    },
    Complete {
        unit: String,
    },
    Fail {
        unit: String,
        reason: Option<String>,
    },
    Status {
        unit: String,
        json: bool,
    },
    List {
        format: ListFormat,
    },
    Wait {
        units: Vec<String>,
        timeout: Option<Duration>,
        poll: Option<Duration>,
    },
    Run(Run),
    Up(Up),
}

#[derive(Debug, PartialEq)]
pub struct Up {
    pub dir: Option<PathBuf>,
    pub scripts: Vec<PathBuf>,
    pub script_timeout: Option<Duration>,
    pub command: Vec<OsString>,
}

#[derive(Debug, PartialEq)]
pub struct Run {
    pub unit: String,
    pub after: Vec<String>,
    pub soft_after: Vec<String>,
    pub timeout: Option<Duration>,
    pub poll: Option<Duration>,
    pub command: Vec<OsString>,
}

#[derive(Debug, PartialEq)]
pub struct Cli {
    pub global: Global,
    pub cmd: Cmd,
}

/// A usage error: the message, and the command whose help to point at.
#[derive(Debug, PartialEq)]
pub struct Error {
    pub message: String,
    pub command: Option<&'static str>,
}

/// Why a subcommand's parse ended early: its help was asked for, or a
/// usage error.
enum Stop {
    Help(&'static str),
    Usage(Error),
}

impl From<Error> for Stop {
    fn from(e: Error) -> Stop {
        Stop::Usage(e)
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.command {
            Some(cmd) => write!(f, "{}; see 'unitsync {cmd} --help'", self.message),
            None => write!(f, "{}; see 'unitsync --help'", self.message),
        }
    }
}

pub const HELP: &str = "\
unitsync: let startup scripts running in parallel wait for each other

Usage: unitsync [OPTIONS] COMMAND [ARGS]

Commands:
  serve      run the server
  ping       check that the server answers
  want       declare that a unit depends on others
  start      wait until a unit's dependencies are met, then mark it started
  complete   mark a unit completed
  fail       mark a unit failed
  status     show one unit
  list       show all units
  wait       wait until units are completed, without registering anything
  run        declare, wait, run a command, then complete or fail the unit
  up         an entrypoint: serve, run startup scripts at once, then a command

Options (on every command):
  --socket PATH           server socket [$UNITSYNC_SOCKET, else
                          /tmp/unitsync-$UID/unitsync.sock]
  --connect-timeout D     keep trying to connect for D [$UNITSYNC_CONNECT_TIMEOUT, 0]
  --optional              if the server cannot be reached, warn and succeed
                          [$UNITSYNC_OPTIONAL=1]
  -q, --quiet             no progress messages (errors are still printed)
  -h, --help              show help (also 'unitsync COMMAND --help')
  -V, --version           show the version

Durations: 250ms, 30s, 5m, 1h30m; a bare number is seconds; 0 is no deadline.

Exit codes:
  0  success
  1  refused by the server (cycle, bad name, already started, ...) or other error
  2  usage error
  3  server unreachable (no socket, connection refused, permission denied)
  4  timed out waiting
  5  a dependency failed
";

const SERVE_HELP: &str = "\
Usage: unitsync serve [--detach] [--pidfile FILE] [--log FILE] [--group GROUP]
                      [--state FILE [--fsync]]

Runs the server on the socket until SIGTERM or SIGINT, logging one line per
state change to stderr. State lives in memory: a new server starts empty,
unless --state is given.

  --detach          run in the background; returns once the socket accepts
                    connections and prints the server's pid
  --pidfile FILE    write the server's pid to FILE
  --log FILE        append log lines to FILE instead of stderr; with
                    --detach, logs are discarded unless --log is given
  --state FILE      record every accepted change in FILE before answering,
                    and replay FILE at start: a server killed at any moment
                    and restarted loses nothing, and waiting clients carry
                    on. Put FILE on a tmpfs such as /run to reset on reboot
  --fsync           with --state, also sync FILE to disk after each change
                    (survives a power loss; slower)
  --group GROUP     also serve members of GROUP (a name from /etc/group or a
                    numeric gid); the socket becomes mode 0660 with that group

Refuses to start if a server already listens on the socket, if the path is
not a socket, or if its directory belongs to another user.
";

const PING_HELP: &str = "\
Usage: unitsync ping

Checks that the server answers and prints its version.
Exit 0 if it does, 3 if it cannot be reached.
";

const WANT_HELP: &str = "\
Usage: unitsync want [--soft] UNIT [DEP...]

Registers UNIT (pending) and declares that it depends on each DEP. A DEP
need not exist yet. The whole call is refused, adding nothing, if any edge
would close a cycle (the message shows it: cycle: a -> b -> a).

  --soft    ordering only: DEP satisfies UNIT once it completed or failed
";

const START_HELP: &str = "\
Usage: unitsync start UNIT [--timeout D] [--poll D]

Waits until every dependency of UNIT is met, then marks UNIT started.
Says what it waits for, then a progress line at most every 10s.

  --timeout D   give up after D [$UNITSYNC_TIMEOUT, 5m]; 0 waits forever
  --poll D      check every D [$UNITSYNC_POLL, 50ms]

Exit 0 once started, 4 on timeout (listing every unmet dependency), 5 as soon
as a hard dependency failed (UNIT is then marked failed too), 1 if UNIT is
already started.
";

const COMPLETE_HELP: &str = "\
Usage: unitsync complete UNIT

Marks UNIT completed, registering it if new; its dependents may start.
Refused (exit 1) if UNIT is already completed.
";

const FAIL_HELP: &str = "\
Usage: unitsync fail UNIT [--reason TEXT]

Marks UNIT failed; dependents that need it exit 5 at once.

  --reason TEXT   one line shown to dependents (at most 1024 bytes)
";

const STATUS_HELP: &str = "\
Usage: unitsync status UNIT [--json]

Shows UNIT's status, whether it is ready, each dependency with its status,
and its timings.

  --json    one JSON object (see README.md for its fields)
";

const LIST_HELP: &str = "\
Usage: unitsync list [--json | --dot | --timeline [--width N] | --critical]

Shows every unit, sorted by name, with its status, timings and
dependencies. Units that are only someone's dependency show as
'not registered'.

  --json    a JSON array of the objects 'status --json' prints
  --dot     a Graphviz graph (render with: unitsync list --dot | dot -Tsvg)
  --timeline
            a text Gantt chart: one row per unit, time left to right,
            waiting drawn apart from running
  --width N with --timeline: N columns [$COLUMNS, else 80]
  --critical
            the chain of units that decided when the last one finished,
            each wait blamed on the dependency that completed last
";

const WAIT_HELP: &str = "\
Usage: unitsync wait UNIT... [--timeout D] [--poll D]

Waits until every UNIT is completed, without registering anything.

  --timeout D   give up after D [$UNITSYNC_TIMEOUT, 5m]; 0 waits forever
  --poll D      check every D [$UNITSYNC_POLL, 50ms]

Exit 0 once all are completed, 4 on timeout, 5 as soon as one is failed.
";

const RUN_HELP: &str = "\
Usage: unitsync run UNIT [--after DEP]... [--soft-after DEP]... [--timeout D]
                    [--poll D] -- CMD [ARG...]

Runs CMD as unit UNIT: declares UNIT's dependencies, waits until they are
met (like 'start'), runs CMD with this process's stdin, stdout and stderr,
then marks UNIT completed if CMD exits 0 and failed otherwise (the reason
is its exit status or signal). Replaces the trap boilerplate of a script.

  --after DEP        UNIT needs DEP completed (repeatable)
  --soft-after DEP   UNIT runs after DEP completed or failed (repeatable)
  --timeout D        give up waiting after D [$UNITSYNC_TIMEOUT, 5m]
  --poll D           check every D [$UNITSYNC_POLL, 50ms]

CMD sees $UNITSYNC_UNIT. SIGTERM, SIGINT and SIGHUP are forwarded to CMD;
one received while still waiting stops the wait. Whenever CMD does not run
to a successful end (timeout, signal, non-zero exit), UNIT is marked failed
so that its dependents stop waiting. With --optional and no server, CMD
runs without coordination.

Exit status: CMD's own once it ran (128+N if signal N killed it); else 4 on
timeout, 5 if a dependency failed, 128+N if signal N stopped the wait, and
the usual codes of 'unitsync --help'.
";

const UP_HELP: &str = "\
Usage: unitsync up [--dir DIR] [SCRIPT...] [--script-timeout D] [-- CMD [ARG...]]

The entrypoint of a container: starts the server in-process on the socket
(exported to every child as $UNITSYNC_SOCKET), runs every executable in DIR
(sorted) and every SCRIPT at the same time, each line of their output
prefixed with the script's name, and prints a summary when all have ended.

A script whose first comment lines say

    # unitsync: after=git-clone,apt-install soft-after=cache unit=NAME

runs as if by 'unitsync run NAME --after git-clone --after apt-install
--soft-after cache -- SCRIPT' (NAME defaults to the file name without its
extension). Other scripts just run, and may call unitsync themselves.

  --dir DIR             run the executables in DIR (hidden files skipped)
  --script-timeout D    stop a script (SIGTERM, then SIGKILL 10s later) that
                        runs longer than D
  -- CMD [ARG...]       once every script succeeded, run CMD while still
                        serving, and exit with its status

Exit status: 1 if a script failed (CMD is then not run); else CMD's, or 0.
SIGTERM, SIGINT and SIGHUP are forwarded to every script's process group
and to CMD; orphaned processes are reaped (up works as PID 1); whatever the
scripts leave running is killed when up exits.
";

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Cli, Error> {
    let mut parser = lexopt::Parser::from_args(args);
    let mut global = Global::default();
    let name = loop {
        match parser.next().map_err(|e| usage(e, None))? {
            Some(Value(v)) => break string(v, None)?,
            Some(Short('h') | Long("help")) => return Ok(Cli { global, cmd: Cmd::Help(HELP) }),
            Some(Short('V') | Long("version")) => return Ok(Cli { global, cmd: Cmd::Version }),
            Some(arg) => {
                let flag = flag_name(&arg);
                if !global_flag(&mut global, &flag, &mut parser, None)? {
                    return Err(unknown_flag(&flag, None));
                }
            }
            None => {
                return Err(Error { message: "missing command".into(), command: None });
            }
        }
    };
    let (p, g) = (&mut parser, &mut global);
    let parsed = match name.as_str() {
        "serve" => serve(p, g),
        "ping" => Command::new("ping", PING_HELP, p, g).finish(|_| Cmd::Ping, 0, Some(0)),
        "want" => want(p, g),
        "start" => start(p, g),
        "complete" => Command::new("complete", COMPLETE_HELP, p, g).finish(
            |mut v| Cmd::Complete { unit: v.remove(0) },
            1,
            Some(1),
        ),
        "fail" => fail(p, g),
        "status" => status(p, g),
        "list" => list(p, g),
        "wait" => wait(p, g),
        "run" => run(p, g).map_err(Stop::Usage),
        "up" => up(p, g).map_err(Stop::Usage),
        other => {
            return Err(Error { message: format!("unknown command {other:?}"), command: None });
        }
    };
    let cmd = match parsed {
        Ok(cmd) => cmd,
        Err(Stop::Help(text)) => Cmd::Help(text),
        Err(Stop::Usage(e)) => return Err(e),
    };
    Ok(Cli { global, cmd })
}

/// An option as typed, `--name` or `-n`, owned so the parser is free again.
fn flag_name(arg: &Arg<'_>) -> String {
    match arg {
        Short(c) => format!("-{c}"),
        Long(name) => format!("--{name}"),
        Value(v) => v.to_string_lossy().into_owned(),
    }
}

fn unknown_flag(flag: &str, command: Option<&'static str>) -> Error {
    Error { message: format!("unknown option {flag}"), command }
}

fn usage(e: lexopt::Error, command: Option<&'static str>) -> Error {
    Error { message: e.to_string(), command }
}

fn string(v: OsString, command: Option<&'static str>) -> Result<String, Error> {
    v.into_string().map_err(|v| Error { message: format!("{v:?} is not valid UTF-8"), command })
}

/// Handles a global option wherever it appears; returns false if `arg` is
/// not one.
fn global_flag(
    global: &mut Global,
    flag: &str,
    parser: &mut lexopt::Parser,
    command: Option<&'static str>,
) -> Result<bool, Error> {
    match flag {
        "--socket" => global.socket = Some(parser.value().map_err(|e| usage(e, command))?.into()),
        "-q" | "--quiet" => global.quiet = true,
        "--optional" => global.optional = true,
        "--connect-timeout" => {
            global.connect_timeout = Some(duration_value(parser, "--connect-timeout", command)?)
        }
        _ => return Ok(false),
    }
    Ok(true)
}

fn duration_value(
    parser: &mut lexopt::Parser,
    flag: &str,
    command: Option<&'static str>,
) -> Result<Duration, Error> {
    let value = string(parser.value().map_err(|e| usage(e, command))?, command)?;
    duration::parse(&value)
        .map_err(|message| Error { message: format!("{flag}: {message}"), command })
}

/// The shared shape of a subcommand parse: its own flags, global flags,
/// `--help`, and positional arguments counted at the end.
struct Command<'a> {
    name: &'static str,
    help: &'static str,
    parser: &'a mut lexopt::Parser,
    global: &'a mut Global,
}

impl<'a> Command<'a> {
    fn new(
        name: &'static str,
        help: &'static str,
        parser: &'a mut lexopt::Parser,
        global: &'a mut Global,
    ) -> Command<'a> {
        Command { name, help, parser, global }
    }

    /// Reads every argument, giving own flags to `own` (which returns
    /// false for a flag it does not know). Returns the positionals, or the
    /// help text if `--help` was given.
    fn args(
        &mut self,
        mut own: impl FnMut(&str, &mut lexopt::Parser) -> Result<bool, Error>,
    ) -> Result<Vec<String>, Stop> {
        let mut values = Vec::new();
        while let Some(arg) = self.parser.next().map_err(|e| usage(e, Some(self.name)))? {
            match arg {
                Value(v) => values.push(string(v, Some(self.name))?),
                Short('h') | Long("help") => return Err(Stop::Help(self.help)),
                arg => {
                    let flag = flag_name(&arg);
                    if !global_flag(self.global, &flag, self.parser, Some(self.name))?
                        && !own(&flag, self.parser)?
                    {
                        return Err(unknown_flag(&flag, Some(self.name)).into());
                    }
                }
            }
        }
        Ok(values)
    }

    /// Checks the positional count and builds the command.
    fn count(&self, values: &[String], min: usize, max: Option<usize>) -> Result<(), Error> {
        let what = match self.name {
            "want" | "start" | "complete" | "fail" | "status" => "UNIT",
            "wait" => "at least one UNIT",
            _ => "arguments",
        };
        if values.len() < min {
            return Err(Error { message: format!("missing {what}"), command: Some(self.name) });
        }
        if max.is_some_and(|max| values.len() > max) {
            let extra = &values[max.unwrap_or(0)];
            return Err(Error {
                message: format!("unexpected argument {extra:?}"),
                command: Some(self.name),
            });
        }
        Ok(())
    }

    /// For commands with no flags of their own.
    fn finish(
        mut self,
        build: impl FnOnce(Vec<String>) -> Cmd,
        min: usize,
        max: Option<usize>,
    ) -> Result<Cmd, Stop> {
        let values = self.args(|_, _| Ok(false))?;
        self.count(&values, min, max)?;
        Ok(build(values))
    }
}

fn serve(parser: &mut lexopt::Parser, global: &mut Global) -> Result<Cmd, Stop> {
    let (mut detach, mut pidfile, mut group, mut log) = (false, None, None, None);
    let (mut state, mut fsync) = (None, false);
    let mut c = Command::new("serve", SERVE_HELP, parser, global);
    let values = c.args(|flag, p| {
        match flag {
            "--detach" => detach = true,
            "--pidfile" => pidfile = Some(p.value().map_err(|e| usage(e, Some("serve")))?.into()),
            "--log" => log = Some(p.value().map_err(|e| usage(e, Some("serve")))?.into()),
            "--state" => state = Some(p.value().map_err(|e| usage(e, Some("serve")))?.into()),
            "--fsync" => fsync = true,
            "--group" => {
                group =
                    Some(string(p.value().map_err(|e| usage(e, Some("serve")))?, Some("serve"))?)
            }
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    c.count(&values, 0, Some(0))?;
    if fsync && state.is_none() {
        let message = "--fsync needs --state FILE".into();
        return Err(Error { message, command: Some("serve") }.into());
    }
    Ok(Cmd::Serve(Serve { detach, pidfile, group, log, state, fsync }))
}

fn want(parser: &mut lexopt::Parser, global: &mut Global) -> Result<Cmd, Stop> {
    let mut soft = false;
    let mut c = Command::new("want", WANT_HELP, parser, global);
    let mut values = c.args(|flag, _| {
        match flag {
            "--soft" => soft = true,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    c.count(&values, 1, None)?;
    let unit = values.remove(0);
    Ok(Cmd::Want { unit, deps: values, soft })
}

/// The flags of the waiting commands.
fn patience_flag(
    flag: &str,
    parser: &mut lexopt::Parser,
    command: &'static str,
    timeout: &mut Option<Duration>,
    poll: &mut Option<Duration>,
) -> Result<bool, Error> {
    match flag {
        "--timeout" => *timeout = Some(duration_value(parser, "--timeout", Some(command))?),
        "--poll" => {
            let d = duration_value(parser, "--poll", Some(command))?;
            if d.is_zero() {
                return Err(Error {
                    message: "--poll must be more than 0".into(),
                    command: Some(command),
                });
            }
            *poll = Some(d);
        }
        _ => return Ok(false),
    }
    Ok(true)
}

fn start(parser: &mut lexopt::Parser, global: &mut Global) -> Result<Cmd, Stop> {
    let (mut timeout, mut poll) = (None, None);
    let mut c = Command::new("start", START_HELP, parser, global);
    let mut values = c.args(|flag, p| patience_flag(flag, p, "start", &mut timeout, &mut poll))?;
    c.count(&values, 1, Some(1))?;
    Ok(Cmd::Start { unit: values.remove(0), timeout, poll })
}

fn wait(parser: &mut lexopt::Parser, global: &mut Global) -> Result<Cmd, Stop> {
    let (mut timeout, mut poll) = (None, None);
    let mut c = Command::new("wait", WAIT_HELP, parser, global);
    let values = c.args(|flag, p| patience_flag(flag, p, "wait", &mut timeout, &mut poll))?;
    c.count(&values, 1, None)?;
    Ok(Cmd::Wait { units: values, timeout, poll })
}

fn run(parser: &mut lexopt::Parser, global: &mut Global) -> Result<Cmd, Error> {
    let name = Some("run");
    let (mut timeout, mut poll) = (None, None);
    let (mut unit, mut after, mut soft_after) = (None, Vec::new(), Vec::new());
    let mut command = Vec::new();
    while let Some(arg) = parser.next().map_err(|e| usage(e, name))? {
        let flag = match arg {
            Value(v) if unit.is_none() => {
                unit = Some(string(v, name)?);
                continue;
            }
            // The command starts here; its own options are not ours.
            Value(v) => {
                command.push(v);
                command.extend(parser.raw_args().map_err(|e| usage(e, name))?);
                break;
            }
            Short('h') | Long("help") => return Ok(Cmd::Help(RUN_HELP)),
            arg => flag_name(&arg),
        };
        match flag.as_str() {
            "--after" => after.push(string(parser.value().map_err(|e| usage(e, name))?, name)?),
            "--soft-after" => {
                soft_after.push(string(parser.value().map_err(|e| usage(e, name))?, name)?)
            }
            _ => {
                if !global_flag(global, &flag, parser, name)?
                    && !patience_flag(&flag, parser, "run", &mut timeout, &mut poll)?
                {
                    return Err(unknown_flag(&flag, name));
                }
            }
        }
    }
    let unit = unit.ok_or_else(|| Error { message: "missing UNIT".into(), command: name })?;
    if command.is_empty() {
        return Err(Error { message: "missing the command to run after --".into(), command: name });
    }
    Ok(Cmd::Run(Run { unit, after, soft_after, timeout, poll, command }))
}

fn up(parser: &mut lexopt::Parser, global: &mut Global) -> Result<Cmd, Error> {
    let name = Some("up");
    // Split at the first `--` ourselves: lexopt hides it, and what comes
    // before it (scripts) must be told apart from what comes after (CMD).
    let raw: Vec<OsString> = parser.raw_args().map_err(|e| usage(e, name))?.collect();
    let (ours, command) = match raw.iter().position(|a| a == "--") {
        Some(i) => (raw[..i].to_vec(), raw[i + 1..].to_vec()),
        None => (raw, Vec::new()),
    };
    let mut parser = lexopt::Parser::from_args(ours);
    let (mut dir, mut scripts, mut script_timeout) = (None, Vec::new(), None);
    while let Some(arg) = parser.next().map_err(|e| usage(e, name))? {
        let flag = match arg {
            Value(v) => {
                scripts.push(PathBuf::from(v));
                continue;
            }
            Short('h') | Long("help") => return Ok(Cmd::Help(UP_HELP)),
            arg => flag_name(&arg),
        };
        match flag.as_str() {
            "--dir" => dir = Some(parser.value().map_err(|e| usage(e, name))?.into()),
            "--script-timeout" => {
                script_timeout = Some(duration_value(&mut parser, "--script-timeout", name)?)
            }
            _ => {
                if !global_flag(global, &flag, &mut parser, name)? {
                    return Err(unknown_flag(&flag, name));
                }
            }
        }
    }
    if dir.is_none() && scripts.is_empty() && command.is_empty() {
        let message = "nothing to run: give --dir DIR, scripts, or -- CMD".to_owned();
        return Err(Error { message, command: name });
    }
    Ok(Cmd::Up(Up { dir, scripts, script_timeout, command }))
}

fn fail(parser: &mut lexopt::Parser, global: &mut Global) -> Result<Cmd, Stop> {
    let mut reason = None;
    let mut c = Command::new("fail", FAIL_HELP, parser, global);
    let mut values = c.args(|flag, p| {
        match flag {
            "--reason" => {
                reason = Some(string(p.value().map_err(|e| usage(e, Some("fail")))?, Some("fail"))?)
            }
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    c.count(&values, 1, Some(1))?;
    Ok(Cmd::Fail { unit: values.remove(0), reason })
}

fn status(parser: &mut lexopt::Parser, global: &mut Global) -> Result<Cmd, Stop> {
    let mut json = false;
    let mut c = Command::new("status", STATUS_HELP, parser, global);
    let mut values = c.args(|flag, _| {
        match flag {
            "--json" => json = true,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    c.count(&values, 1, Some(1))?;
    Ok(Cmd::Status { unit: values.remove(0), json })
}

fn list(parser: &mut lexopt::Parser, global: &mut Global) -> Result<Cmd, Stop> {
    let mut format = ListFormat::Table;
    let mut c = Command::new("list", LIST_HELP, parser, global);
    let mut width = None;
    let values = c.args(|flag, p| {
        match flag {
            "--json" => format = ListFormat::Json,
            "--dot" => format = ListFormat::Dot,
            "--timeline" => format = ListFormat::Timeline { width: None },
            "--critical" => format = ListFormat::Critical,
            "--width" => {
                let value = string(p.value().map_err(|e| usage(e, Some("list")))?, Some("list"))?;
                match value.parse::<usize>() {
                    Ok(n) if (20..=1000).contains(&n) => width = Some(n),
                    _ => {
                        let message = format!(
                            "--width: {value:?} is not a number of columns from 20 to 1000"
                        );
                        return Err(Error { message, command: Some("list") });
                    }
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    if let Some(n) = width {
        match &mut format {
            ListFormat::Timeline { width } => *width = Some(n),
            _ => {
                let message = "--width only applies to --timeline".to_owned();
                return Err(Error { message, command: Some("list") }.into());
            }
        }
    }
    c.count(&values, 0, Some(0))?;
    Ok(Cmd::List { format })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(line: &str) -> Result<Cli, Error> {
        parse(line.split_whitespace().map(OsString::from))
    }

    fn cmd(line: &str) -> Cmd {
        parse_str(line).unwrap().cmd
    }

    fn err(line: &str) -> String {
        parse_str(line).unwrap_err().to_string()
    }

    #[test]
    fn commands_parse_into_plain_data() {
        assert_eq!(
            cmd("want --soft b a c"),
            Cmd::Want { unit: "b".into(), deps: vec!["a".into(), "c".into()], soft: true }
        );
        assert_eq!(cmd("want b"), Cmd::Want { unit: "b".into(), deps: vec![], soft: false });
        assert_eq!(
            cmd("start b --timeout 1m30s --poll 1ms"),
            Cmd::Start {
                unit: "b".into(),
                timeout: Some(Duration::from_secs(90)),
                poll: Some(Duration::from_millis(1))
            }
        );
        assert_eq!(
            cmd("fail a --reason=disk"),
            Cmd::Fail { unit: "a".into(), reason: Some("disk".into()) }
        );
        assert_eq!(cmd("status a --json"), Cmd::Status { unit: "a".into(), json: true });
        assert_eq!(cmd("list --dot"), Cmd::List { format: ListFormat::Dot });
        assert_eq!(
            cmd("list --timeline --width 60"),
            Cmd::List { format: ListFormat::Timeline { width: Some(60) } }
        );
        assert_eq!(cmd("list --critical"), Cmd::List { format: ListFormat::Critical });
        assert_eq!(
            err("list --width 5 --timeline"),
            "--width: \"5\" is not a number of columns from 20 to 1000; see 'unitsync list --help'"
        );
        assert_eq!(
            err("list --width 50"),
            "--width only applies to --timeline; see 'unitsync list --help'"
        );
        assert_eq!(
            cmd("wait a b --timeout 0"),
            Cmd::Wait {
                units: vec!["a".into(), "b".into()],
                timeout: Some(Duration::ZERO),
                poll: None
            }
        );
        assert_eq!(
            cmd("serve --detach --pidfile p --group 100 --log l"),
            Cmd::Serve(Serve {
                detach: true,
                pidfile: Some("p".into()),
                group: Some("100".into()),
                log: Some("l".into()),
                state: None,
                fsync: false,
            })
        );
    }

    #[test]
    fn run_stops_parsing_at_the_command() {
        assert_eq!(
            cmd("run b --after a --soft-after c -q --timeout 1s -- sh -c --after"),
            Cmd::Run(Run {
                unit: "b".into(),
                after: vec!["a".into()],
                soft_after: vec!["c".into()],
                timeout: Some(Duration::from_secs(1)),
                poll: None,
                command: vec!["sh".into(), "-c".into(), "--after".into()],
            })
        );
        assert_eq!(
            cmd("run b ls -l"),
            Cmd::Run(Run {
                unit: "b".into(),
                after: vec![],
                soft_after: vec![],
                timeout: None,
                poll: None,
                command: vec!["ls".into(), "-l".into()],
            })
        );
        assert_eq!(err("run b"), "missing the command to run after --; see 'unitsync run --help'");
        assert_eq!(err("run --after a"), "missing UNIT; see 'unitsync run --help'");
        assert_eq!(
            err("run b --later x -- true"),
            "unknown option --later; see 'unitsync run --help'"
        );
    }

    #[test]
    fn up_splits_scripts_from_the_command() {
        assert_eq!(
            cmd("up --dir d a.sh --script-timeout 2m -q b.sh -- sh -c --dir"),
            Cmd::Up(Up {
                dir: Some("d".into()),
                scripts: vec!["a.sh".into(), "b.sh".into()],
                script_timeout: Some(Duration::from_secs(120)),
                command: vec!["sh".into(), "-c".into(), "--dir".into()],
            })
        );
        assert_eq!(
            err("up"),
            "nothing to run: give --dir DIR, scripts, or -- CMD; see 'unitsync up --help'"
        );
        assert_eq!(cmd("up --help -- x"), Cmd::Help(UP_HELP));
    }

    #[test]
    fn global_flags_go_anywhere() {
        let cli = parse_str("--socket /s -q start a --optional --connect-timeout 2s").unwrap();
        assert_eq!(
            cli.global,
            Global {
                socket: Some("/s".into()),
                quiet: true,
                optional: true,
                connect_timeout: Some(Duration::from_secs(2))
            }
        );
    }

    #[test]
    fn help_is_everywhere() {
        assert_eq!(cmd("--help"), Cmd::Help(HELP));
        assert_eq!(cmd("-h"), Cmd::Help(HELP));
        assert_eq!(cmd("start --help"), Cmd::Help(START_HELP));
        assert_eq!(cmd("list -h"), Cmd::Help(LIST_HELP));
        assert_eq!(cmd("-V"), Cmd::Version);
        for name in ["serve", "ping", "want", "start", "complete", "fail", "status", "list", "wait"]
        {
            assert!(matches!(cmd(&format!("{name} --help")), Cmd::Help(h) if h.contains(name)));
        }
    }

    #[test]
    fn usage_errors_name_the_flag_and_the_help() {
        assert_eq!(err(""), "missing command; see 'unitsync --help'");
        assert_eq!(err("frob"), "unknown command \"frob\"; see 'unitsync --help'");
        assert_eq!(err("start"), "missing UNIT; see 'unitsync start --help'");
        assert_eq!(err("start a b"), "unexpected argument \"b\"; see 'unitsync start --help'");
        assert_eq!(
            err("start a --timeout 5x"),
            "--timeout: invalid duration \"5x\": write it like 250ms, 30s, 5m or 1h30m; see 'unitsync start --help'"
        );
        assert_eq!(
            err("start a --poll 0"),
            "--poll must be more than 0; see 'unitsync start --help'"
        );
        assert_eq!(err("want --bogus a"), "unknown option --bogus; see 'unitsync want --help'");
        assert_eq!(err("wait"), "missing at least one UNIT; see 'unitsync wait --help'");
        assert_eq!(err("list extra"), "unexpected argument \"extra\"; see 'unitsync list --help'");
        assert_eq!(
            err("status a --timeout"),
            "unknown option --timeout; see 'unitsync status --help'"
        );
    }
}
