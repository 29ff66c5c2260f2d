//! The command line, parsed with lexopt into plain data. No environment, no
//! files: `settings` resolves defaults from the environment after parsing.

use std::ffi::OsString;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Duration;

use lexopt::Arg;
use lexopt::prelude::*;

use crate::duration;
use crate::readiness::Cond;
use crate::restart::Policy;
use crate::signals::{self, Signal};
use crate::user;

/// Options every command takes.
#[derive(Debug, Default, PartialEq)]
pub struct Global {
    pub socket: Option<PathBuf>,
    pub quiet: bool,
    pub optional: bool,
    pub connect_timeout: Option<Duration>,
}

#[derive(Debug, Default, PartialEq)]
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
        /// `--detached`: nobody owns the unit, so it is never abandoned.
        detached: bool,
    },
    /// `ready [UNIT]`: UNIT is None when not given; `$UNITSYNC_UNIT` is
    /// resolved after parsing.
    Ready {
        unit: Option<String>,
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
        /// `--once`: check once, without waiting (a readiness probe).
        once: bool,
    },
    /// Boxed: many times the size of any other command.
    Run(Box<Run>),
    Up(Up),
}

#[derive(Debug, PartialEq)]
pub struct Up {
    /// `--dir DIR`, repeatable. With no SCRIPT either, `up` looks for
    /// its default directory (`up::default_dir`).
    pub dirs: Vec<PathBuf>,
    pub scripts: Vec<PathBuf>,
    /// `--env-file FILE`, repeatable.
    pub env_files: Vec<PathBuf>,
    pub script_timeout: Option<Duration>,
    pub stop_timeout: Option<Duration>,
    pub grace: Option<Duration>,
    pub command: Vec<OsString>,
}

#[derive(Debug, PartialEq)]
pub struct Run {
    pub unit: String,
    pub after: Vec<String>,
    pub soft_after: Vec<String>,
    pub timeout: Option<Duration>,
    pub poll: Option<Duration>,
    /// `--ready COND`: run CMD as a service, ready when COND holds.
    pub ready: Option<Cond>,
    /// `--ready-timeout D`: with `--ready`, fail if not ready by D.
    pub ready_timeout: Option<Duration>,
    /// `--stop-timeout D`: between the stop signal and SIGKILL.
    pub stop_timeout: Option<Duration>,
    /// `--probe-timeout D`: with `--ready exec:` or `http://`, how long one
    /// probe may run.
    pub probe_timeout: Option<Duration>,
    /// `--stop-signal SIG`: the first signal of CMD's stop [TERM].
    pub stop_signal: Option<Signal>,
    /// `--restart POLICY`: when CMD runs again [no].
    pub restart: Option<Policy>,
    /// `--health COND`: checked once ready, every `--health-interval`.
    pub health: Option<Cond>,
    pub health_interval: Option<Duration>,
    /// `--health-failures N`: how many failed checks in a row fail it.
    pub health_failures: Option<u32>,
    /// `--user NAME[:GROUP]`: the user CMD runs as.
    pub user: Option<user::Spec>,
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

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.command {
            Some(cmd) => write!(f, "{}; see 'unitsync {cmd} --help'", self.message),
            None => write!(f, "{}; see 'unitsync --help'", self.message),
        }
    }
}

impl std::error::Error for Error {}

impl Error {
    /// A parse error as a usage error of `command` (None: of no command).
    fn new(e: lexopt::Error, command: Option<&'static str>) -> Error {
        // Commands whose values are unit names, which may start with '-':
        // `want -dash` reads as options -d, -a, ...
        const UNITS: [&str; 6] = ["want", "start", "complete", "fail", "status", "wait"];
        let message = match e {
            lexopt::Error::UnexpectedOption(option)
                if !option.starts_with("--")
                    && command.is_some_and(|name| UNITS.contains(&name)) =>
            {
                format!(
                    "unknown option {option} (a unit name that starts with '-' goes after '--')"
                )
            }
            lexopt::Error::UnexpectedOption(option) => format!("unknown option {option}"),
            lexopt::Error::NonUnicodeValue(value) => format!("{value:?} is not valid UTF-8"),
            e => e.to_string(),
        };
        Error { message, command }
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
  ready      mark a started unit ready: its dependents may start while it runs
  complete   mark a unit completed
  fail       mark a unit failed
  status     show one unit
  list       show all units
  wait       wait until units are completed, without registering anything
  run        declare, wait, run a command or a service, then complete or fail
  up         an entrypoint: serve, run startup scripts at once, then a command

Options (on every command):
  --socket PATH           server socket [$UNITSYNC_SOCKET, else
                          /tmp/unitsync-$UID/unitsync.sock]
  --connect-timeout D     keep trying to connect for D [$UNITSYNC_CONNECT_TIMEOUT, 0]
  --optional              if the server cannot be reached, warn and succeed
                          [$UNITSYNC_OPTIONAL: 1/true/yes/on or 0/false/no/off]
  -q, --quiet             no progress messages (errors are still printed)
  -h, --help              show help (also 'unitsync COMMAND --help', or
                          'unitsync help [COMMAND]')
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
                    connections and prints the server's pid, or fails with
                    the server's error, leaving no server behind
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

Checks that the server answers and prints its version, its socket and its
process id.
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
Usage: unitsync start UNIT [--timeout D] [--poll D] [--detached]

Waits until every dependency of UNIT is met, then marks UNIT started.
Says what it waits for, then a progress line at most every 10s.
UNIT is owned by the script that called this (or by the 'run' or 'up'
that holds UNIT for it): if the owner exits while UNIT is started or
ready, UNIT fails as abandoned. A helper program that runs this and exits
before UNIT is done needs --detached.

  --timeout D   give up after D [$UNITSYNC_TIMEOUT, 5m]; 0 waits forever
  --poll D      longest sleep between checks [$UNITSYNC_POLL, 50ms]
  --detached    no owner: another process completes UNIT later
                [$UNITSYNC_DETACHED: 1/true/yes/on or 0/false/no/off]

Exit 0 once started, 4 on timeout (listing every unmet dependency), 5 as soon
as a hard dependency failed (UNIT is then marked failed too), 1 if UNIT is
already started, 128+N on stop signal N (SIGTERM, SIGINT, SIGHUP). On a
timeout or a signal it tells the server it no longer waits.
";

const READY_HELP: &str = "\
Usage: unitsync ready [UNIT]

Marks UNIT, which is started and keeps running (a service), ready: its
dependents may start now, as if it had completed. UNIT defaults to
$UNITSYNC_UNIT, which 'unitsync run' sets for its command. Repeating it
changes nothing. UNIT keeps the owner its start recorded.

Exit 0 once ready, 1 if UNIT is not started (pending, never registered,
already completed or failed: start it first), 2 if there is neither UNIT
nor $UNITSYNC_UNIT.
";

const COMPLETE_HELP: &str = "\
Usage: unitsync complete UNIT

Marks UNIT completed, registering it if new; its dependents may start.
Refused (exit 1) if UNIT is already completed.
";

const FAIL_HELP: &str = "\
Usage: unitsync fail UNIT [--reason TEXT]

Marks UNIT failed; dependents that need it exit 5 at once.

  --reason TEXT   shown to dependents; any text is accepted: line breaks
                  become ' / ', other control characters spaces, and past
                  1024 bytes it is cut short with '...'
";

const STATUS_HELP: &str = "\
Usage: unitsync status UNIT [--json]

Shows UNIT's status, whether it is startable, each dependency with its
status, and its timings (a service's too: when it became ready).

  --json    one JSON object: a unit object, whose fields PROTOCOL.md
            lists (section 'Responses')
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
            waiting, running and a service's ready phase drawn apart
  --width N with --timeline: N columns [$COLUMNS, else 80]
  --critical
            the chain of units that decided when the last one finished,
            each wait blamed on the dependency that let it go last (by
            completing or, a service, by becoming ready)
";

const WAIT_HELP: &str = "\
Usage: unitsync wait UNIT... [--timeout D] [--poll D]
       unitsync wait UNIT... --once

Waits until every UNIT is completed (or ready, for a service), without
registering anything.

  --timeout D   give up after D [$UNITSYNC_TIMEOUT, 5m]; 0 waits forever
  --poll D      longest sleep between checks [$UNITSYNC_POLL, 50ms]
  --once        check once and answer at once, without waiting: for a
                readiness or health probe (prints nothing when all are)

Exit 0 once all are completed or ready, 4 on timeout (with --once: one is
not yet), 5 as soon as one is failed, 3 if the server cannot be reached.
";

const RUN_HELP: &str = "\
Usage: unitsync run UNIT [--after DEP]... [--soft-after DEP]... [--timeout D]
                    [--poll D] [--ready COND [--ready-timeout D]]
                    [--probe-timeout D] [--stop-signal SIG] [--stop-timeout D]
                    [--restart POLICY] [--health COND [--health-interval D]
                    [--health-failures N]] [--user NAME[:GROUP]] -- CMD [ARG...]

Runs CMD as unit UNIT: declares UNIT's dependencies, waits until they are
met (like 'start'), runs CMD with this process's stdin, stdout and stderr,
then marks UNIT completed if CMD exits 0 and failed otherwise (the reason
is its exit status or signal). Replaces the trap boilerplate of a script.

  --after DEP          UNIT needs DEP completed (repeatable)
  --soft-after DEP     UNIT runs after DEP completed or failed (repeatable)
  --timeout D          give up waiting after D [$UNITSYNC_TIMEOUT, 5m]
  --poll D             longest sleep between checks [$UNITSYNC_POLL, 50ms]
  --ready COND         CMD is a service: UNIT becomes ready (its dependents
                       may start) when COND holds, while CMD keeps running
  --ready-timeout D    with --ready: fail UNIT and stop CMD if it is not
                       ready within D, then exit 4 [no deadline]
  --probe-timeout D    with --ready exec: or http://: a probe not answered
                       within D failed (an exec: one is killed with its
                       process group); the next one starts [10s; 0 no limit]
  --stop-signal SIG    the signal that stops CMD: TERM, INT (PostgreSQL's fast
                       shutdown), QUIT (nginx's graceful one), a name with
                       or without SIG in any case, or a number [TERM]
  --stop-timeout D     how long a stopped CMD gets between its stop signal
                       and SIGKILL [5s; 0 never sends SIGKILL]
  --restart POLICY     run CMD again when it ends: no, on-failure[:N] (after a
                       failure) or always[:N] (after exit 0 too); 1s later,
                       doubling to 30s, reset after 60s up; at most N in a
                       row. UNIT is 'started' meanwhile [no]
  --health COND        with --ready: once ready, check COND (not fd:) every
                       --health-interval [10s]; --health-failures [3]
                       failures in a row stop CMD, a failure for --restart
  --user NAME[:GROUP]  run CMD as that user (or UID[:GID]) with its groups
                       and HOME, USER, LOGNAME; names are read from
                       /etc/passwd and /etc/group. Needs root (or to be
                       that user already); refused before anything is
                       declared if the user or group does not exist.
                       Probes still run as run's own user

COND is checked at once, then every --poll, until it holds or CMD exits:
  fd:N             CMD writes a newline to descriptor N (N >= 3)
  tcp:[HOST:]PORT  a TCP connection is accepted (HOST: an IP, 127.0.0.1)
  unix:PATH        a connection to the Unix socket PATH is accepted
  file:PATH        PATH exists
  exec:COMMAND     sh -c COMMAND exits 0 (in a process group of its own,
                   killed with it after --probe-timeout or when run stops)
  http://HOST[:PORT][/PATH]
                   an HTTP/1.1 GET of PATH [/] is answered 2xx or 3xx
                   within --probe-timeout (HOST: an IP, [IPv6] or
                   localhost; PORT [80]; no https)
A service that exits before it is ready fails UNIT, whatever its status.
Without --ready, CMD may mark UNIT ready itself with 'unitsync ready'.

CMD sees $UNITSYNC_UNIT. SIGTERM and SIGINT stop CMD with --stop-signal
(to its whole process group when stdin is not a terminal), then SIGKILL
follows after --stop-timeout (to CMD and everything it started); every
other signal is forwarded as it came; one received while still waiting stops the
wait. Whenever CMD does not run to a successful end (timeout, signal,
non-zero exit), UNIT is marked failed so that its dependents stop waiting;
but a service (or a CMD that marked itself ready) ended by a forwarded
stop signal is completed with the note 'stopped'. With --optional and no
server, CMD runs without coordination.

Exit status: CMD's own once it ran (128+N if signal N killed it); else 4 on
timeout (waiting, or --ready-timeout), 5 if a dependency failed, 128+N if
signal N stopped the wait, 1 if CMD closed fd:N without a newline, and the
usual codes of 'unitsync --help'.
";

const UP_HELP: &str = "\
Usage: unitsync up [--dir DIR]... [SCRIPT...] [--env-file FILE]...
                   [--stop-timeout D] [--grace D] [--script-timeout D]
                   [-- CMD [ARG...]]

The entrypoint of a container: starts the server in-process on the socket
(exported to every child as $UNITSYNC_SOCKET), runs every executable in DIR
(sorted) and every SCRIPT at the same time, each line of their output
prefixed with the script's name, and prints a summary once every unit is
completed or ready.

Every script is a unit, named after its file without its last extension
(app.v2.sh is app.v2). One whose leading comments say

    # unitsync: after=git-clone,apt-install soft-after=cache unit=NAME
    # unitsync: ready=tcp:5432 ready-timeout=30s stop-timeout=10s

(and probe-timeout=D, stop-signal=SIG, restart=POLICY, health=COND,
health-interval=D, health-failures=N, user=NAME[:GROUP], as run's flags
of those names; stop-signal=INT for PostgreSQL, QUIT for nginx;
env-file=PATH, beside the script) runs as if by
'unitsync run NAME --after git-clone ... -- SCRIPT'. Others
coordinate themselves ($UNITSYNC_UNIT is their unit); up completes or fails
their unit from their exit status unless they ended it themselves. An
unknown key, a key given twice, '# UNITSYNC:' in another case, a header
after a command, two scripts with one unit, or a cycle is refused before
anything runs. A script with on=stop is a stop script: it runs at
shutdown, once CMD ended, and the units it names (after=) are stopped only
once it ended; killed at its stop-timeout; a failed one makes up exit 1.

  --dir DIR             run the executables in DIR (repeatable; hidden files
                        and non-executable *.env skipped; a file that is not
                        executable, a dangling symlink or a symlink loop
                        counts as failed); with no --dir and no SCRIPT:
                        $UNITSYNC_DIR, else /etc/unitsync.d if it exists
  --env-file FILE       KEY=VALUE lines (# comments, optional quotes, no
                        expansion) for every script and CMD (repeatable)
  --stop-timeout D      SIGKILL a unit this long after SIGTERM [5s]
  --grace D             the most the whole shutdown may take [8s; 0: none,
                        everything is killed at once]
  --script-timeout D    stop a script that has neither ended nor become
                        ready within D
  -- CMD [ARG...]       once every unit is completed or ready, run CMD while
                        services keep running, and exit with its status

On SIGTERM or SIGINT (SIGHUP too without CMD), when CMD exits, or when a
script fails after startup (with no restart= left), up stops CMD, then the running units in
reverse dependency order (their stop signal, SIGKILL to the whole tree
after their stop timeout), then every process left, setsid daemons
included; a second SIGTERM/SIGINT kills everything at once. Every other
signal is forwarded: to CMD while it runs, else to every running unit.
Orphans are reaped (up works as PID 1).

Exit status: CMD's once it ran (127 not found, 126 not executable); 1 if a
script failed (CMD is then not run) or failed after startup; without CMD,
0 if every unit succeeded or was stopped, else 1; 128+N if signal N came
before startup finished, or ended a shutdown at once.
";

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Cli, Error> {
    // As a `Vec`, as `help` and `up` give theirs: lexopt's generic
    // constructor is compiled once (BENCHMARKS.md, "Footprint").
    let args: Vec<OsString> = args.into_iter().collect();
    let mut parser = lexopt::Parser::from_args(args);
    let mut global = Global::default();
    let name = match leading(&mut parser, &mut global) {
        Ok(ControlFlow::Continue(name)) => name,
        Ok(ControlFlow::Break(cmd)) => return Ok(Cli { global, cmd }),
        Err(e) => return Err(Error::new(e, None)),
    };
    if name == "help" {
        return Ok(Cli { global, cmd: help(&mut parser)? });
    }
    let Some(&(name, command)) = COMMANDS.iter().find(|(known, _)| *known == name) else {
        return Err(Error { message: format!("unknown command {name:?}"), command: None });
    };
    let cmd = command(&mut parser, &mut global).map_err(|e| Error::new(e, Some(name)))?;
    Ok(Cli { global, cmd })
}

/// `help [COMMAND]`: what `--help` or `COMMAND --help` shows.
fn help(parser: &mut lexopt::Parser) -> Result<Cmd, Error> {
    let usage = |message: String| Error { message, command: None };
    let topics: Vec<OsString> = parser.raw_args().map(Iterator::collect).unwrap_or_default();
    let name = match topics.as_slice() {
        [] => return Ok(Cmd::Help(HELP)),
        [name] => name.to_string_lossy(),
        _ => return Err(usage("help takes one COMMAND at most".to_owned())),
    };
    let Some(&(name, command)) = COMMANDS.iter().find(|(known, _)| *known == name) else {
        return Err(usage(format!("unknown command {name:?}")));
    };
    let mut asked = lexopt::Parser::from_args(vec![OsString::from("--help")]);
    command(&mut asked, &mut Global::default()).map_err(|e| Error::new(e, Some(name)))
}

/// A command's own parse: one loop over the arguments after its name.
/// Errors are lexopt's, or ours carried in `lexopt::Error::Custom`; `parse`
/// turns them into usage errors that point at the command's help.
type Parse = fn(&mut lexopt::Parser, &mut Global) -> Result<Cmd, lexopt::Error>;

/// Every command, by name.
const COMMANDS: [(&str, Parse); 12] = [
    ("serve", serve),
    ("ping", ping),
    ("want", want),
    ("start", start),
    ("ready", ready),
    ("complete", complete),
    ("fail", fail),
    ("status", status),
    ("list", list),
    ("wait", wait),
    ("run", run),
    ("up", up),
];

/// The global options before the command; then its name, unless the
/// general help or the version was asked for.
fn leading(
    parser: &mut lexopt::Parser,
    global: &mut Global,
) -> Result<ControlFlow<Cmd, String>, lexopt::Error> {
    while let Some(arg) = parser.next()? {
        match arg {
            Value(v) => return Ok(ControlFlow::Continue(v.string()?)),
            Short('h') | Long("help") => return Ok(ControlFlow::Break(Cmd::Help(HELP))),
            Short('V') | Long("version") => return Ok(ControlFlow::Break(Cmd::Version)),
            arg => global.set(GlobalOption::of(arg)?, parser)?,
        }
    }
    Err("missing command".into())
}

/// An option every command takes, wherever it appears. Told apart from the
/// `Arg` before its value is read, because the `Arg` borrows the parser.
#[derive(Clone, Copy)]
enum GlobalOption {
    Socket,
    Quiet,
    Optional,
    ConnectTimeout,
}

impl GlobalOption {
    /// Which global option `arg` is; anything else is unknown to the
    /// command whose loop got this far.
    fn of(arg: Arg<'_>) -> Result<GlobalOption, lexopt::Error> {
        Ok(match arg {
            Long("socket") => GlobalOption::Socket,
            Short('q') | Long("quiet") => GlobalOption::Quiet,
            Long("optional") => GlobalOption::Optional,
            Long("connect-timeout") => GlobalOption::ConnectTimeout,
            arg => return Err(arg.unexpected()),
        })
    }
}

impl Global {
    fn set(
        &mut self,
        option: GlobalOption,
        parser: &mut lexopt::Parser,
    ) -> Result<(), lexopt::Error> {
        match option {
            GlobalOption::Socket => {
                let path = parser.value()?;
                if path.is_empty() {
                    return Err("--socket needs a path, not an empty string".into());
                }
                self.socket = Some(path.into());
            }
            GlobalOption::Quiet => self.quiet = true,
            GlobalOption::Optional => self.optional = true,
            GlobalOption::ConnectTimeout => {
                self.connect_timeout = Some(duration_value(parser, "--connect-timeout")?)
            }
        }
        Ok(())
    }
}

/// A duration option's value; `flag` names the option in the error.
fn duration_value(parser: &mut lexopt::Parser, flag: &str) -> Result<Duration, lexopt::Error> {
    let value = parser.value()?.string()?;
    duration::parse(&value).map_err(|message| format!("{flag}: {message}").into())
}

/// `--poll D`: never 0, which would spin.
fn poll_value(parser: &mut lexopt::Parser) -> Result<Duration, lexopt::Error> {
    let poll = duration_value(parser, "--poll")?;
    if poll.is_zero() {
        return Err("--poll must be more than 0".into());
    }
    Ok(poll)
}

/// Refuses the positional arguments a command has no place for.
fn no_more(extra: &[String]) -> Result<(), lexopt::Error> {
    match extra.first() {
        Some(extra) => Err(format!("unexpected argument {extra:?}").into()),
        None => Ok(()),
    }
}

/// The single UNIT of a command.
fn one_unit(mut values: Vec<String>) -> Result<String, lexopt::Error> {
    if values.is_empty() {
        return Err("missing UNIT".into());
    }
    no_more(&values[1..])?;
    Ok(values.remove(0))
}

/// The positional arguments of a command with no options of its own, or
/// None if its help was asked for.
fn positionals(
    parser: &mut lexopt::Parser,
    global: &mut Global,
) -> Result<Option<Vec<String>>, lexopt::Error> {
    let mut values = Vec::new();
    while let Some(arg) = parser.next()? {
        match arg {
            Value(v) => values.push(v.string()?),
            Short('h') | Long("help") => return Ok(None),
            arg => global.set(GlobalOption::of(arg)?, parser)?,
        }
    }
    Ok(Some(values))
}

fn ping(parser: &mut lexopt::Parser, global: &mut Global) -> Result<Cmd, lexopt::Error> {
    let Some(values) = positionals(parser, global)? else { return Ok(Cmd::Help(PING_HELP)) };
    no_more(&values)?;
    Ok(Cmd::Ping)
}

fn complete(parser: &mut lexopt::Parser, global: &mut Global) -> Result<Cmd, lexopt::Error> {
    let Some(values) = positionals(parser, global)? else { return Ok(Cmd::Help(COMPLETE_HELP)) };
    Ok(Cmd::Complete { unit: one_unit(values)? })
}

fn serve(parser: &mut lexopt::Parser, global: &mut Global) -> Result<Cmd, lexopt::Error> {
    let (mut serve, mut values) = (Serve::default(), Vec::new());
    while let Some(arg) = parser.next()? {
        match arg {
            Value(v) => values.push(v.string()?),
            Long("detach") => serve.detach = true,
            Long("pidfile") => serve.pidfile = Some(parser.value()?.into()),
            Long("log") => serve.log = Some(parser.value()?.into()),
            Long("state") => serve.state = Some(parser.value()?.into()),
            Long("fsync") => serve.fsync = true,
            Long("group") => serve.group = Some(parser.value()?.string()?),
            Short('h') | Long("help") => return Ok(Cmd::Help(SERVE_HELP)),
            arg => global.set(GlobalOption::of(arg)?, parser)?,
        }
    }
    no_more(&values)?;
    if serve.fsync && serve.state.is_none() {
        return Err("--fsync needs --state FILE".into());
    }
    Ok(Cmd::Serve(serve))
}

fn want(parser: &mut lexopt::Parser, global: &mut Global) -> Result<Cmd, lexopt::Error> {
    let (mut unit, mut deps, mut soft) = (None, Vec::new(), false);
    while let Some(arg) = parser.next()? {
        match arg {
            Value(v) if unit.is_none() => unit = Some(v.string()?),
            Value(v) => deps.push(v.string()?),
            Long("soft") => soft = true,
            Short('h') | Long("help") => return Ok(Cmd::Help(WANT_HELP)),
            arg => global.set(GlobalOption::of(arg)?, parser)?,
        }
    }
    Ok(Cmd::Want { unit: unit.ok_or("missing UNIT")?, deps, soft })
}

fn start(parser: &mut lexopt::Parser, global: &mut Global) -> Result<Cmd, lexopt::Error> {
    waiting(parser, global, Waiter::Start)
}

fn wait(parser: &mut lexopt::Parser, global: &mut Global) -> Result<Cmd, lexopt::Error> {
    waiting(parser, global, Waiter::Wait)
}

/// Which of the two waiting commands [`waiting`] parses.
#[derive(Clone, Copy, PartialEq)]
enum Waiter {
    /// `start UNIT`: one unit, `--detached`.
    Start,
    /// `wait UNIT...`: many units, `--once`.
    Wait,
}

/// `start UNIT` and `wait UNIT...`: one set of options, how long to wait
/// and how often to check.
fn waiting(
    parser: &mut lexopt::Parser,
    global: &mut Global,
    waiter: Waiter,
) -> Result<Cmd, lexopt::Error> {
    let (mut values, mut timeout, mut poll, mut once) = (Vec::new(), None, None, false);
    let mut detached = false;
    while let Some(arg) = parser.next()? {
        match arg {
            Value(v) => values.push(v.string()?),
            Long("timeout") => timeout = Some(duration_value(parser, "--timeout")?),
            Long("poll") => poll = Some(poll_value(parser)?),
            Long("once") if waiter == Waiter::Wait => once = true,
            Long("detached") if waiter == Waiter::Start => detached = true,
            Short('h') | Long("help") => {
                return Ok(Cmd::Help(match waiter {
                    Waiter::Start => START_HELP,
                    Waiter::Wait => WAIT_HELP,
                }));
            }
            arg => global.set(GlobalOption::of(arg)?, parser)?,
        }
    }
    if waiter == Waiter::Start {
        return Ok(Cmd::Start { unit: one_unit(values)?, timeout, poll, detached });
    }
    if values.is_empty() {
        return Err("missing at least one UNIT".into());
    }
    if once && (timeout.is_some() || poll.is_some()) {
        return Err("--once checks without waiting: it takes no --timeout or --poll".into());
    }
    Ok(Cmd::Wait { units: values, timeout, poll, once })
}

fn run(parser: &mut lexopt::Parser, global: &mut Global) -> Result<Cmd, lexopt::Error> {
    let (mut unit, mut after, mut soft_after) = (None, Vec::new(), Vec::new());
    let (mut timeout, mut poll, mut command) = (None, None, Vec::new());
    let (mut ready, mut ready_timeout, mut stop_timeout) = (None, None, None);
    let (mut probe_timeout, mut stop_signal, mut user) = (None, None, None);
    let (mut restart, mut health, mut health_interval, mut health_failures) =
        (None, None, None, None);
    loop {
        // lexopt hides `--`: look for it, or `run -- CMD` would take CMD's
        // name for the unit's.
        if unit.is_none()
            && parser.try_raw_args().is_some_and(|raw| raw.peek() == Some("--".as_ref()))
        {
            return Err("missing UNIT before --".into());
        }
        let Some(arg) = parser.next()? else { break };
        match arg {
            Value(v) if unit.is_none() => unit = Some(v.string()?),
            // The command starts here; its own options are not ours.
            Value(v) => {
                command.push(v);
                command.extend(parser.raw_args()?);
                break;
            }
            Long("after") => after.push(parser.value()?.string()?),
            Long("soft-after") => soft_after.push(parser.value()?.string()?),
            Long("timeout") => timeout = Some(duration_value(parser, "--timeout")?),
            Long("poll") => poll = Some(poll_value(parser)?),
            Long("ready") => {
                let text = parser.value()?.string()?;
                ready = Some(Cond::parse(&text).map_err(|e| format!("--ready: {e}"))?);
            }
            Long("ready-timeout") => {
                ready_timeout = Some(duration_value(parser, "--ready-timeout")?)
            }
            Long("stop-timeout") => stop_timeout = Some(duration_value(parser, "--stop-timeout")?),
            Long("probe-timeout") => {
                probe_timeout = Some(duration_value(parser, "--probe-timeout")?)
            }
            Long("stop-signal") => {
                let text = parser.value()?.string()?;
                stop_signal =
                    Some(signals::parse(&text).map_err(|e| format!("--stop-signal: {e}"))?);
            }
            Long("restart") => {
                let text = parser.value()?.string()?;
                restart = Some(Policy::parse(&text).map_err(|e| format!("--restart: {e}"))?);
            }
            Long("health") => {
                let text = parser.value()?.string()?;
                health = Some(health_cond(&text).map_err(|e| format!("--health: {e}"))?);
            }
            Long("health-interval") => {
                health_interval = Some(interval_value(parser, "--health-interval")?)
            }
            Long("health-failures") => {
                let text = parser.value()?.string()?;
                health_failures =
                    Some(failures_value(&text).map_err(|e| format!("--health-failures: {e}"))?);
            }
            Long("user") => {
                let text = parser.value()?.string()?;
                user = Some(user::Spec::parse(&text).map_err(|e| format!("--user: {e}"))?);
            }
            Short('h') | Long("help") => return Ok(Cmd::Help(RUN_HELP)),
            arg => global.set(GlobalOption::of(arg)?, parser)?,
        }
    }
    let unit = unit.ok_or("missing UNIT")?;
    if command.is_empty() {
        return Err("missing the command to run after --".into());
    }
    if ready_timeout.is_some() && ready.is_none() {
        return Err("--ready-timeout needs --ready COND".into());
    }
    let probed = [&ready, &health].iter().any(|c| matches!(c, Some(Cond::Exec(_) | Cond::Http(_))));
    if probe_timeout.is_some() && !probed {
        return Err("--probe-timeout needs --ready or --health of exec:COMMAND or http://... \
             (the probe it limits)"
            .into());
    }
    if health.is_some() && ready.is_none() {
        return Err(
            "--health needs --ready COND (health is checked once the service is ready)".into()
        );
    }
    if (health_interval.is_some() || health_failures.is_some()) && health.is_none() {
        return Err("--health-interval and --health-failures need --health COND".into());
    }
    Ok(Cmd::Run(Box::new(Run {
        unit,
        after,
        soft_after,
        timeout,
        poll,
        ready,
        ready_timeout,
        stop_timeout,
        probe_timeout,
        stop_signal,
        restart,
        health,
        health_interval,
        health_failures,
        user,
        command,
    })))
}

/// A health check's condition: any readiness condition but `fd:N`, which
/// speaks once.
pub fn health_cond(text: &str) -> Result<Cond, String> {
    match Cond::parse(text)? {
        Cond::Fd(_) => Err(format!(
            "{text:?} cannot be checked again: a descriptor speaks once; use tcp:, unix:, \
             file: or exec:"
        )),
        cond => Ok(cond),
    }
}

/// `--health-failures N` and `health-failures=N`: a number of 1 or more.
pub fn failures_value(text: &str) -> Result<u32, String> {
    text.parse::<u32>()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("{text:?} is not a number of 1 or more"))
}

/// A duration that must not be zero (an interval).
fn interval_value(parser: &mut lexopt::Parser, flag: &str) -> Result<Duration, lexopt::Error> {
    let d = duration_value(parser, flag)?;
    if d.is_zero() {
        return Err(format!("{flag} must be more than 0").into());
    }
    Ok(d)
}

fn up(parser: &mut lexopt::Parser, global: &mut Global) -> Result<Cmd, lexopt::Error> {
    // Split at the first `--` ourselves: lexopt hides it, and what comes
    // before it (scripts) must be told apart from what comes after (CMD).
    let raw: Vec<OsString> = parser.raw_args()?.collect();
    let (ours, command) = match raw.iter().position(|a| a == "--") {
        Some(i) => (raw[..i].to_vec(), raw[i + 1..].to_vec()),
        None => (raw, Vec::new()),
    };
    let mut parser = lexopt::Parser::from_args(ours);
    let (mut dirs, mut scripts, mut script_timeout) = (Vec::new(), Vec::new(), None);
    let (mut stop_timeout, mut grace, mut env_files) = (None, None, Vec::new());
    while let Some(arg) = parser.next()? {
        match arg {
            Value(v) => scripts.push(PathBuf::from(v)),
            Long("dir") => dirs.push(parser.value()?.into()),
            Long("env-file") => env_files.push(parser.value()?.into()),
            Long("script-timeout") => {
                script_timeout = Some(duration_value(&mut parser, "--script-timeout")?)
            }
            Long("stop-timeout") => {
                stop_timeout = Some(duration_value(&mut parser, "--stop-timeout")?)
            }
            Long("grace") => grace = Some(duration_value(&mut parser, "--grace")?),
            Short('h') | Long("help") => return Ok(Cmd::Help(UP_HELP)),
            arg => global.set(GlobalOption::of(arg)?, &mut parser)?,
        }
    }
    Ok(Cmd::Up(Up { dirs, scripts, env_files, script_timeout, stop_timeout, grace, command }))
}

fn ready(parser: &mut lexopt::Parser, global: &mut Global) -> Result<Cmd, lexopt::Error> {
    let mut values = Vec::new();
    while let Some(arg) = parser.next()? {
        match arg {
            Value(v) => values.push(v.string()?),
            Short('h') | Long("help") => return Ok(Cmd::Help(READY_HELP)),
            arg => global.set(GlobalOption::of(arg)?, parser)?,
        }
    }
    no_more(values.get(1..).unwrap_or_default())?;
    Ok(Cmd::Ready { unit: values.into_iter().next() })
}

fn fail(parser: &mut lexopt::Parser, global: &mut Global) -> Result<Cmd, lexopt::Error> {
    let (mut reason, mut values) = (None, Vec::new());
    while let Some(arg) = parser.next()? {
        match arg {
            Value(v) => values.push(v.string()?),
            // Whatever a failing command printed: never refused, not even
            // for invalid UTF-8.
            Long("reason") => reason = Some(parser.value()?.to_string_lossy().into_owned()),
            Short('h') | Long("help") => return Ok(Cmd::Help(FAIL_HELP)),
            arg => global.set(GlobalOption::of(arg)?, parser)?,
        }
    }
    Ok(Cmd::Fail { unit: one_unit(values)?, reason })
}

fn status(parser: &mut lexopt::Parser, global: &mut Global) -> Result<Cmd, lexopt::Error> {
    let (mut json, mut values) = (false, Vec::new());
    while let Some(arg) = parser.next()? {
        match arg {
            Value(v) => values.push(v.string()?),
            Long("json") => json = true,
            Short('h') | Long("help") => return Ok(Cmd::Help(STATUS_HELP)),
            arg => global.set(GlobalOption::of(arg)?, parser)?,
        }
    }
    Ok(Cmd::Status { unit: one_unit(values)?, json })
}

fn list(parser: &mut lexopt::Parser, global: &mut Global) -> Result<Cmd, lexopt::Error> {
    let (mut format, mut width, mut values) = (ListFormat::Table, None, Vec::new());
    while let Some(arg) = parser.next()? {
        match arg {
            Value(v) => values.push(v.string()?),
            Long("json") => choose(&mut format, ListFormat::Json)?,
            Long("dot") => choose(&mut format, ListFormat::Dot)?,
            Long("timeline") => choose(&mut format, ListFormat::Timeline { width: None })?,
            Long("critical") => choose(&mut format, ListFormat::Critical)?,
            Long("width") => width = Some(columns(parser.value()?.string()?)?),
            Short('h') | Long("help") => return Ok(Cmd::Help(LIST_HELP)),
            arg => global.set(GlobalOption::of(arg)?, parser)?,
        }
    }
    if let Some(n) = width {
        match &mut format {
            ListFormat::Timeline { width } => *width = Some(n),
            _ => return Err("--width only applies to --timeline".into()),
        }
    }
    no_more(&values)?;
    Ok(Cmd::List { format })
}

/// Sets `list`'s format, of which one at most may be asked for.
fn choose(format: &mut ListFormat, chosen: ListFormat) -> Result<(), lexopt::Error> {
    let flag = |format: &ListFormat| match format {
        ListFormat::Table => "",
        ListFormat::Json => "--json",
        ListFormat::Dot => "--dot",
        ListFormat::Timeline { .. } => "--timeline",
        ListFormat::Critical => "--critical",
    };
    if *format != ListFormat::Table && *format != chosen {
        return Err(
            format!("{} and {} cannot be used together", flag(format), flag(&chosen)).into()
        );
    }
    *format = chosen;
    Ok(())
}

/// `--width N`: a number of columns a chart can use.
fn columns(value: String) -> Result<usize, lexopt::Error> {
    match value.parse::<usize>() {
        Ok(n) if (20..=1000).contains(&n) => Ok(n),
        _ => Err(format!("--width: {value:?} is not a number of columns from 20 to 1000").into()),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::ffi::OsStringExt;

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
                poll: Some(Duration::from_millis(1)),
                detached: false,
            }
        );
        assert!(matches!(cmd("start b --detached"), Cmd::Start { detached: true, .. }));
        assert_eq!(
            cmd("fail a --reason=disk"),
            Cmd::Fail { unit: "a".into(), reason: Some("disk".into()) }
        );
        assert_eq!(cmd("status a --json"), Cmd::Status { unit: "a".into(), json: true });
        assert_eq!(cmd("ready db"), Cmd::Ready { unit: Some("db".into()) });
        assert_eq!(cmd("ready -q"), Cmd::Ready { unit: None });
        assert_eq!(err("ready a b"), "unexpected argument \"b\"; see 'unitsync ready --help'");
        assert_eq!(cmd("list --dot"), Cmd::List { format: ListFormat::Dot });
        assert_eq!(
            cmd("list --timeline --width 60"),
            Cmd::List { format: ListFormat::Timeline { width: Some(60) } }
        );
        assert_eq!(cmd("list --critical"), Cmd::List { format: ListFormat::Critical });
        assert_eq!(cmd("list --json --json"), Cmd::List { format: ListFormat::Json });
        assert_eq!(
            err("list --json --dot"),
            "--json and --dot cannot be used together; see 'unitsync list --help'"
        );
        assert_eq!(
            err("list --critical --timeline --width 50"),
            "--critical and --timeline cannot be used together; see 'unitsync list --help'"
        );
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
                poll: None,
                once: false,
            }
        );
        assert_eq!(
            cmd("wait a --once"),
            Cmd::Wait { units: vec!["a".into()], timeout: None, poll: None, once: true }
        );
        assert_eq!(
            err("wait a --once --timeout 0"),
            "--once checks without waiting: it takes no --timeout or --poll; \
             see 'unitsync wait --help'"
        );
        assert_eq!(err("start a --once"), "unknown option --once; see 'unitsync start --help'");
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
            Cmd::Run(Box::new(Run {
                unit: "b".into(),
                after: vec!["a".into()],
                soft_after: vec!["c".into()],
                timeout: Some(Duration::from_secs(1)),
                poll: None,
                ready: None,
                ready_timeout: None,
                stop_timeout: None,
                probe_timeout: None,
                stop_signal: None,
                restart: None,
                health: None,
                health_interval: None,
                health_failures: None,
                user: None,
                command: vec!["sh".into(), "-c".into(), "--after".into()],
            }))
        );
        assert_eq!(
            cmd("run b ls -l"),
            Cmd::Run(Box::new(Run {
                unit: "b".into(),
                after: vec![],
                soft_after: vec![],
                timeout: None,
                poll: None,
                ready: None,
                ready_timeout: None,
                stop_timeout: None,
                probe_timeout: None,
                stop_signal: None,
                restart: None,
                health: None,
                health_interval: None,
                health_failures: None,
                user: None,
                command: vec!["ls".into(), "-l".into()],
            }))
        );
        assert_eq!(err("run b"), "missing the command to run after --; see 'unitsync run --help'");
        assert_eq!(err("run --after a"), "missing UNIT; see 'unitsync run --help'");
        for line in ["run -- echo hi", "run --after a -- echo hi", "-q run -q -- b true"] {
            assert_eq!(err(line), "missing UNIT before --; see 'unitsync run --help'", "{line}");
        }
        assert_eq!(
            err("run b --ready tcp:1 --probe-timeout 1s -- true"),
            "--probe-timeout needs --ready or --health of exec:COMMAND or http://... (the probe it limits); see 'unitsync run --help'"
        );
        assert_eq!(
            err("run b --later x -- true"),
            "unknown option --later; see 'unitsync run --help'"
        );
    }

    #[test]
    fn run_takes_a_readiness_condition_and_its_timeouts() {
        let Cmd::Run(run) =
            cmd("run db --ready tcp:5432 --ready-timeout 30s --stop-timeout 2s -- postgres")
        else {
            panic!("not a run");
        };
        assert_eq!(run.ready, Some(Cond::parse("tcp:127.0.0.1:5432").unwrap()));
        assert_eq!(run.ready_timeout, Some(Duration::from_secs(30)));
        assert_eq!(run.stop_timeout, Some(Duration::from_secs(2)));
        assert_eq!(run.command, vec![OsString::from("postgres")]);
        let Cmd::Run(run) = cmd("run db --ready=fd:3 -- sh -c x") else { panic!("not a run") };
        assert_eq!(
            (run.ready, run.ready_timeout, run.stop_timeout),
            (Some(Cond::Fd(3)), None, None)
        );
        assert_eq!(
            err("run db --ready ftp:80 -- true"),
            "--ready: invalid readiness condition \"ftp:80\": unknown kind 'ftp'; write it as \
             fd:N, tcp:[HOST:]PORT, unix:PATH, file:PATH, exec:COMMAND or http://HOST:PORT/PATH; \
             see 'unitsync run --help'"
        );
        let Cmd::Run(run) =
            cmd("run web --ready http://127.0.0.1:8080/healthz --probe-timeout 2s -- nginx")
        else {
            panic!("not a run");
        };
        assert_eq!(run.ready.unwrap().to_string(), "http://127.0.0.1:8080/healthz");
        assert_eq!(run.probe_timeout, Some(Duration::from_secs(2)));
        let Cmd::Run(run) = cmd("run db --user postgres:ssl-cert -- postgres") else {
            panic!("not a run");
        };
        assert_eq!(run.user.unwrap().to_string(), "postgres:ssl-cert");
        assert_eq!(
            err("run db --user postgres: -- true"),
            "--user: invalid user \"postgres:\": the group is empty, or holds a space, ',' or ':'; \
             write it as NAME[:GROUP] or UID[:GID]; see 'unitsync run --help'"
        );
        assert_eq!(
            err("run db --ready-timeout 1s -- true"),
            "--ready-timeout needs --ready COND; see 'unitsync run --help'"
        );
        assert_eq!(
            err("run db --stop-timeout soon -- true"),
            "--stop-timeout: invalid duration \"soon\": write it like 250ms, 30s, 5m or 1h30m; \
             see 'unitsync run --help'"
        );
    }

    #[test]
    fn up_splits_scripts_from_the_command() {
        assert_eq!(
            cmd(
                "up --dir d a.sh --script-timeout 2m -q b.sh --stop-timeout 1s --grace 3s --dir e --env-file x.env --env-file y.env -- sh -c --dir"
            ),
            Cmd::Up(Up {
                dirs: vec!["d".into(), "e".into()],
                scripts: vec!["a.sh".into(), "b.sh".into()],
                env_files: vec!["x.env".into(), "y.env".into()],
                script_timeout: Some(Duration::from_secs(120)),
                stop_timeout: Some(Duration::from_secs(1)),
                grace: Some(Duration::from_secs(3)),
                command: vec!["sh".into(), "-c".into(), "--dir".into()],
            })
        );
        // Nothing given: `up` looks for its default directory.
        assert!(matches!(cmd("up"), Cmd::Up(Up { dirs, .. }) if dirs.is_empty()));
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
        // Every command, `run` and `up` included, with either spelling and
        // after other arguments: its own help, which names it.
        for (name, _) in COMMANDS {
            for flag in ["--help", "-h"] {
                for line in [format!("{name} {flag}"), format!("-q {name} x --optional {flag}")] {
                    let Cmd::Help(text) = cmd(&line) else { panic!("{line:?} is not help") };
                    let usage: Vec<&str> = text.split_whitespace().take(3).collect();
                    assert_eq!(usage, ["Usage:", "unitsync", name], "{line:?}");
                }
            }
        }
        assert_eq!(cmd("run -h"), Cmd::Help(RUN_HELP));
        assert_eq!(cmd("help"), Cmd::Help(HELP));
        assert_eq!(cmd("-q help run"), Cmd::Help(RUN_HELP));
        for (name, _) in COMMANDS {
            let Cmd::Help(text) = cmd(&format!("help {name}")) else { panic!("help {name}") };
            assert_eq!(Cmd::Help(text), cmd(&format!("{name} --help")));
        }
        assert_eq!(err("help frob"), "unknown command \"frob\"; see 'unitsync --help'");
        assert_eq!(err("help run up"), "help takes one COMMAND at most; see 'unitsync --help'");
        assert_eq!(cmd("ready -h"), Cmd::Help(READY_HELP));
        assert_eq!(cmd("up -h"), Cmd::Help(UP_HELP));
    }

    #[test]
    fn usage_errors_are_std_errors() {
        let e: Box<dyn std::error::Error> = Box::new(parse_str("frob").unwrap_err());
        assert_eq!(e.to_string(), "unknown command \"frob\"; see 'unitsync --help'");
        assert!(e.source().is_none());
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
        assert_eq!(
            err("want -dash"),
            "unknown option -d (a unit name that starts with '-' goes after '--'); \
             see 'unitsync want --help'"
        );
        assert_eq!(
            cmd("want -- -dash -x"),
            Cmd::Want { unit: "-dash".into(), deps: vec!["-x".into()], soft: false }
        );
        assert_eq!(err("wait"), "missing at least one UNIT; see 'unitsync wait --help'");
        assert_eq!(err("list extra"), "unexpected argument \"extra\"; see 'unitsync list --help'");
        assert_eq!(
            err("status a --timeout"),
            "unknown option --timeout; see 'unitsync status --help'"
        );
        // lexopt finds these; they read like the rest.
        for (line, message) in [
            ("-x", "unknown option -x; see 'unitsync --help'"),
            ("list -qz", "unknown option -z; see 'unitsync list --help'"),
            ("run b --after", "missing argument for option '--after'; see 'unitsync run --help'"),
            (
                "status --json=x a",
                "unexpected argument for option '--json': \"x\"; see 'unitsync status --help'",
            ),
        ] {
            assert_eq!(err(line), message);
        }
        let empty = parse(["--socket", "", "ping"].map(OsString::from));
        assert_eq!(
            empty.unwrap_err().to_string(),
            "--socket needs a path, not an empty string; see 'unitsync --help'"
        );
        let empty = parse(["ping", "--socket="].map(OsString::from));
        assert_eq!(
            empty.unwrap_err().to_string(),
            "--socket needs a path, not an empty string; see 'unitsync ping --help'"
        );
        let not_utf8 = parse([OsString::from("start"), OsString::from_vec(b"a\xff".to_vec())]);
        assert_eq!(
            not_utf8.unwrap_err().to_string(),
            "\"a\\xFF\" is not valid UTF-8; see 'unitsync start --help'"
        );
    }
}
