//! The pure state machine: units, "wants" edges, statuses, readiness, cycles.
//!
//! No I/O, no locks, no clock, no serde: time arrives as `now` (time since the
//! server started) and every transition either refuses with an [`Error`] and
//! leaves the state untouched, or commits and returns what happened.
//!
//! Invariants, kept by every method and checked by the randomized test:
//! - the graph of edges is acyclic (self-edges included), and every
//!   dependency's `ord` is below its dependent's (a topological order);
//! - `dependents` is exactly the reverse of `deps`, and `edges` counts them;
//! - a unit is startable iff every hard dependency is completed or ready
//!   and every soft dependency is completed, ready or failed;
//! - a unit has a `ready_at` only if it became ready since its last start.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

/// Longest unit name, in bytes.
pub const MAX_NAME_LEN: usize = 255;
/// Most units (registered or placeholders) one server holds.
pub const MAX_UNITS: usize = 250_000;
/// Most edges one server holds.
pub const MAX_EDGES: usize = 1_000_000;
/// Longest failure reason or completion note, in bytes.
pub const MAX_REASON_LEN: usize = 1024;
/// A wait whose client has not polled for this long, or for three of the
/// poll intervals it announced if that is longer, has lapsed: its client
/// is gone without a word (SIGKILL). README.md, "How waiting ends".
pub const WAIT_LAPSES_AFTER: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Status {
    /// Known only as someone's dependency.
    NotRegistered,
    Pending,
    Started,
    /// Started, still running, and ready: it satisfies its dependents.
    Ready,
    Completed,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::NotRegistered => "not registered",
            Status::Pending => "pending",
            Status::Started => "started",
            Status::Ready => "ready",
            Status::Completed => "completed",
            Status::Failed => "failed",
        }
    }

    /// Whether a dependency in this status lets its dependent start.
    fn satisfies(self, soft: bool) -> bool {
        match self {
            Status::Completed | Status::Ready => true,
            Status::Failed => soft,
            _ => false,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request the state machine refuses. The state is unchanged. The
/// protocol gives each a machine-readable kind.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Error {
    BadName {
        name: String,
        rule: &'static str,
    },
    SelfDependency {
        unit: String,
    },
    Cycle {
        path: Vec<String>,
    },
    AlreadyStarted {
        unit: String,
    },
    AlreadyCompleted {
        unit: String,
    },
    /// `ready` of a unit that is not running: `status` says where it is.
    NotRunning {
        unit: String,
        status: Status,
    },
    BadNote {
        unit: String,
        rule: &'static str,
    },
    TooManyUnits,
    TooManyEdges,
    /// `restart` of a unit that is not running: only a started or ready
    /// unit's command can be run again.
    CannotRestart {
        unit: String,
        status: Status,
    },
    /// `restart` from another process than the one that started it.
    NotOwner {
        unit: String,
        owner: u32,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadName { name, rule } => {
                write!(f, "invalid unit name {}: {rule}", quote(name))
            }
            Error::SelfDependency { unit } => {
                write!(f, "cycle: {unit} -> {unit} (a unit cannot depend on itself)")
            }
            Error::Cycle { path } => write!(f, "cycle: {}", path.join(" -> ")),
            Error::AlreadyStarted { unit } => {
                write!(f, "{unit} is already started; complete or fail it before starting it again")
            }
            Error::AlreadyCompleted { unit } => write!(f, "{unit} is already completed"),
            Error::NotRunning { unit, status } => match status {
                Status::Completed | Status::Failed => write!(
                    f,
                    "{unit} already {status}, so it cannot become ready: start it again first"
                ),
                _ => write!(f, "{unit} is {status}: start it first, then mark it ready"),
            },
            Error::BadNote { unit, rule } => write!(f, "invalid note for {unit}: a note is {rule}"),
            Error::TooManyUnits => {
                write!(f, "too many units: this server holds at most {MAX_UNITS}")
            }
            Error::TooManyEdges => {
                write!(f, "too many dependencies: this server holds at most {MAX_EDGES} edges")
            }
            Error::CannotRestart { unit, status } => write!(
                f,
                "{unit} is {status}, so it cannot be restarted: only a started or ready unit is \
                 (start it again instead)"
            ),
            Error::NotOwner { unit, owner } => write!(
                f,
                "{unit} was started by pid {owner}; only the process that started it restarts it"
            ),
        }
    }
}

impl std::error::Error for Error {}

/// Quotes a possibly hostile name for an error message: escaped, and cut short.
pub fn quote(name: &str) -> String {
    const SHOWN: usize = 64;
    match name.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{:?}...", &name[..cut]),
        None => format!("{name:?}"),
    }
}

/// What is wrong with a failure reason or a completion note, if anything:
/// one line, at most [`MAX_REASON_LEN`] bytes.
fn line_rule(text: &str) -> Option<&'static str> {
    if text.len() > MAX_REASON_LEN {
        Some("at most 1024 bytes")
    } else if text.chars().any(char::is_control) {
        Some("one line without control characters")
    } else {
        None
    }
}

/// Checks the unit-name rule (PROTOCOL.md, "Requests").
pub fn check_name(name: &str) -> Result<(), Error> {
    let rule = if name.is_empty() || name.len() > MAX_NAME_LEN {
        "a name is 1 to 255 bytes long"
    } else if name.chars().any(char::is_whitespace) {
        "a name may not contain whitespace"
    } else if name.chars().any(char::is_control) {
        "a name may not contain control characters"
    } else {
        return Ok(());
    };
    Err(Error::BadName { name: name.to_owned(), rule })
}

/// A failure reason as the state keeps it: one line, no control
/// characters, at most [`MAX_REASON_LEN`] bytes (README.md, "Limits").
/// A failure must never be lost to its wording, so any text is accepted
/// and cleaned: line breaks become ` / ` (blank lines dropped), other
/// control characters spaces, and a reason that is still too long is cut
/// at a character boundary and ends with `...`. None if nothing is left.
pub fn clean_reason(reason: &str) -> Option<String> {
    const CUT: &str = "...";
    let mut clean = String::with_capacity(reason.len().min(MAX_REASON_LEN));
    for line in reason.lines() {
        let line: String = line.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if !clean.is_empty() {
            clean.push_str(" / ");
        }
        clean.push_str(line);
        if clean.len() > MAX_REASON_LEN {
            break;
        }
    }
    if clean.len() > MAX_REASON_LEN {
        let mut end = MAX_REASON_LEN - CUT.len();
        while !clean.is_char_boundary(end) {
            end -= 1;
        }
        clean.truncate(end);
        clean.push_str(CUT);
    }
    (!clean.is_empty()).then_some(clean)
}

/// How many restart times a unit keeps, the latest, for the timeline.
pub const RESTARTS_KEPT: usize = 32;

/// What `restart` did.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Restarted {
    /// How many times it was restarted since its start, this one included.
    pub count: u32,
    /// How long its command ran, since its start or its last restart.
    pub ran: Duration,
    /// Whether it had been ready: its dependents saw it go back to started.
    pub was_ready: bool,
}

/// What `want` changed.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Wanted {
    /// Edges added, or turned from soft to hard.
    pub added: usize,
    /// Whether this call registered the unit.
    pub registered: bool,
}

impl Wanted {
    /// Whether the state changed: a repeated declaration changes nothing.
    pub fn changed(&self) -> bool {
        self.added > 0 || self.registered
    }
}

/// The answer to `start`. Every answer but a repeated `Blocked` that
/// records no poll is a change of state.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Start {
    /// The unit is now started. `waited_for` are the dependencies that were
    /// unmet at its first refused attempt.
    Started { waited: Duration, waited_for: Vec<String> },
    /// Not startable: the unmet dependencies, sorted by name. The first refusal
    /// of a wait records when it began, which changes the state
    /// (`began_waiting`); the refusals after it change nothing, but for one
    /// every half lapse window, which records that its client still polls
    /// (`polled`).
    Blocked { unmet: Vec<Dep>, began_waiting: bool, polled: bool },
    /// A hard dependency failed; the unit is now failed too, so that its own
    /// dependents fail fast instead of waiting for a script that gave up.
    DependencyFailed { dep: String, reason: Option<String> },
}

/// The answer to `ready`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Readied {
    /// The unit is now ready, `after` its start.
    Now { after: Duration },
    /// It already was, since `after` its start: nothing changed.
    Already { after: Duration },
}

impl Readied {
    /// Whether the state changed: a repeated `ready` changes nothing.
    /// (Dispatch tells the two apart by their variants.)
    #[cfg(test)]
    pub fn changed(&self) -> bool {
        matches!(self, Readied::Now { .. })
    }
}

/// The answer to `stop_waiting`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum StopWaiting {
    /// Its wait is over; `waited` is kept as how long it lasted.
    Stopped { waited: Duration },
    /// It was not waiting: nothing changed.
    NotWaiting,
}

/// The answer to `complete` and `fail`, which always change the state.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Finished {
    /// How long it ran, if it had been started.
    pub ran: Option<Duration>,
    /// The failure reason as kept, once cleaned by [`clean_reason`].
    pub reason: Option<String>,
    /// The reason it had failed with, if it had been failed as abandoned:
    /// its dependents may have given up already.
    pub was_abandoned: Option<String>,
}

/// How the reason of a unit failed as abandoned begins.
pub const ABANDONED: &str = "abandoned: ";

/// The process that started a unit and must finish it: a pid with its
/// start time (clock ticks since boot), so that a reused pid is not taken
/// for it. README.md, "Abandoned units".
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Owner {
    pub pid: u32,
    pub start: u64,
}

/// Who holds a started unit: its owner (the script), what it is called,
/// and the processes the client's walk went through below it (a subshell,
/// `timeout`...), from the client's parent up. The unit is abandoned only
/// when none of them exists. README.md, "Abandoned units".
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Owners {
    pub owner: Owner,
    pub name: Option<String>,
    pub via: Vec<Owner>,
}

impl Owners {
    /// Every process that holds the unit, the owner last.
    pub fn all(&self) -> impl Iterator<Item = Owner> + '_ {
        self.via.iter().copied().chain([self.owner])
    }
}

impl From<Owner> for Owners {
    fn from(owner: Owner) -> Owners {
        Owners { owner, name: None, via: Vec::new() }
    }
}

/// One dependency edge as seen from its dependent.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Dep {
    pub unit: String,
    pub status: Status,
    pub soft: bool,
    pub satisfied: bool,
    /// When the dependency entered its current status.
    pub since: Duration,
}

/// Everything known about one unit, for `status` and `list`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct UnitInfo {
    pub unit: String,
    pub status: Status,
    /// Whether every dependency is satisfied, so that `start` would start it.
    pub startable: bool,
    /// Sorted by name.
    pub deps: Vec<Dep>,
    pub reason: Option<String>,
    /// How it completed, when it says (`stopped`).
    pub note: Option<String>,
    /// The hard dependency whose failure failed it, if that is why it is
    /// failed (its `reason` then says so in words).
    pub failed_by: Option<String>,
    /// When the unit entered its current status.
    pub since: Duration,
    pub started_at: Option<Duration>,
    /// When it became ready after its last start, if it did.
    pub ready_at: Option<Duration>,
    pub finished_at: Option<Duration>,
    /// How long its last wait for dependencies lasted, whether it ended in
    /// a start or not (a dependency failed, it finished otherwise, its
    /// client stopped waiting, or the wait lapsed).
    pub waited: Option<Duration>,
    /// Since when a refused `start` has been waiting, if one is.
    pub waiting_since: Option<Duration>,
    /// The process that started it, while it is started or ready and one
    /// was recorded.
    pub owner: Option<Owner>,
    /// How many times its command was restarted since it started.
    pub restarts: u32,
    /// Why its command was last restarted.
    pub last_failure: Option<String>,
    /// When it was restarted, the latest [`RESTARTS_KEPT`], oldest first.
    pub restarted_at: Vec<Duration>,
}

type Id = usize;

/// Where a new unit goes in the topological order.
#[derive(Clone, Copy)]
enum Place {
    First,
    Last,
}

#[derive(Clone, PartialEq, Eq, Debug)]
struct Unit {
    name: String,
    status: Status,
    /// Dependency id -> soft.
    deps: BTreeMap<Id, bool>,
    dependents: Vec<Id>,
    reason: Option<String>,
    note: Option<String>,
    /// The dependency whose failure failed it, while that is why it is failed.
    failed_by: Option<Id>,
    since: Duration,
    started_at: Option<Duration>,
    ready_at: Option<Duration>,
    finished_at: Option<Duration>,
    waited: Option<Duration>,
    /// The current wait, while a refused `start` waits.
    blocked: Option<Wait>,
    /// Who started it, from its last start; kept only while it runs.
    owner: Option<Owners>,
    /// When the server last looked for its owner (see [`State::owners`]).
    owner_checked: Option<Duration>,
    restarts: u32,
    last_failure: Option<String>,
    restarted_at: Vec<Duration>,
    /// Position in a topological order kept up to date as edges arrive:
    /// a dependency's `ord` is always below its dependent's.
    ord: i64,
}

/// A wait: refused `start`s of one unit, polled until it may start.
#[derive(Clone, PartialEq, Eq, Debug)]
struct Wait {
    /// The first refused `start`.
    since: Duration,
    /// What was unmet then.
    ids: Vec<Id>,
    /// The last poll recorded: a refused `start` records one when half
    /// the lapse window has passed since, so that the journal, which holds
    /// every recorded poll, rebuilds the same lapses.
    polled: Duration,
    /// How often its client said it polls.
    poll: Duration,
}

impl Wait {
    fn window(&self) -> Duration {
        WAIT_LAPSES_AFTER.max(self.poll.saturating_mul(3))
    }

    /// Whether its client has been silent too long at `now`: it is gone.
    fn lapsed(&self, now: Duration) -> bool {
        now.saturating_sub(self.polled) > self.window()
    }

    /// Whether a poll at `now` is to be recorded.
    fn refresh_due(&self, now: Duration, poll: Duration) -> bool {
        poll != self.poll || now.saturating_sub(self.polled) >= self.window() / 2
    }

    /// When it ended, if it ends at `now`: a lapsed one at its last poll.
    fn end(&self, now: Duration) -> Duration {
        if self.lapsed(now) { self.polled } else { now }
    }
}

impl Unit {
    fn new(name: &str, status: Status, now: Duration, ord: i64) -> Unit {
        Unit {
            name: name.to_owned(),
            status,
            deps: BTreeMap::new(),
            dependents: Vec::new(),
            reason: None,
            note: None,
            failed_by: None,
            since: now,
            started_at: None,
            ready_at: None,
            finished_at: None,
            waited: None,
            blocked: None,
            owner: None,
            owner_checked: None,
            restarts: 0,
            last_failure: None,
            restarted_at: Vec::new(),
            ord,
        }
    }
}

/// The whole graph. See the module docs for its invariants.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct State {
    units: Vec<Unit>,
    /// A B-tree rather than a hash map: the binary then holds no hashing
    /// at all (SipHash, random keys, hashbrown's tables), for a lookup
    /// that stays logarithmic.
    index: BTreeMap<String, Id>,
    edges: usize,
    /// The lowest and highest `ord` handed out so far.
    lowest: i64,
    highest: i64,
}

impl State {
    pub fn new() -> State {
        State::default()
    }

    /// Number of units, placeholders included.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.units.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.units.is_empty()
    }

    /// `want unit deps...`: registers `unit` and adds an edge to each dep, or
    /// nothing at all if any of them is refused. A soft edge redeclared hard
    /// becomes hard; a hard edge redeclared soft stays hard (the stronger
    /// requirement wins, whoever declared it).
    pub fn want(
        &mut self,
        unit: &str,
        deps: &[String],
        soft: bool,
        now: Duration,
    ) -> Result<Wanted, Error> {
        check_name(unit)?;
        for dep in deps {
            check_name(dep)?;
            if dep == unit {
                return Err(Error::SelfDependency { unit: unit.to_owned() });
            }
        }
        // Each dep once, where it first appears.
        let mut seen = BTreeSet::new();
        let deps: Vec<&str> = deps.iter().map(String::as_str).filter(|d| seen.insert(*d)).collect();

        // Check everything first. Every new edge leaves `unit`, and a simple
        // cycle uses one edge out of `unit`, so the new edges cannot form a
        // cycle together that none of them forms alone with the old graph:
        // checking each against the old graph is exact.
        let uid = self.index.get(unit).copied();
        let mut new_units = usize::from(uid.is_none());
        let mut new_edges = 0;
        let mut changed = 0;
        for &dep in &deps {
            let Some(did) = self.index.get(dep).copied() else {
                new_units += 1;
                new_edges += 1;
                changed += 1;
                continue;
            };
            let Some(uid) = uid else {
                new_edges += 1;
                changed += 1;
                continue;
            };
            match self.units[uid].deps.get(&did) {
                Some(&was_soft) => changed += usize::from(was_soft && !soft),
                None => {
                    if self.closes_cycle(uid, did) {
                        return Err(Error::Cycle { path: self.cycle_path(uid, did) });
                    }
                    new_edges += 1;
                    changed += 1;
                }
            }
        }
        if self.units.len() + new_units > MAX_UNITS {
            return Err(Error::TooManyUnits);
        }
        if self.edges + new_edges > MAX_EDGES {
            return Err(Error::TooManyEdges);
        }

        // Commit.
        let uid = self.intern(unit, now, Place::Last);
        let registered = self.units[uid].status == Status::NotRegistered;
        if registered {
            self.set_status(uid, Status::Pending, now);
        }
        for dep in deps {
            let did = self.intern(dep, now, Place::First);
            match self.units[uid].deps.insert(did, soft) {
                None => {
                    self.units[did].dependents.push(uid);
                    self.edges += 1;
                    self.keep_order(uid, did);
                }
                // Keep a hard edge hard.
                Some(was_soft) => {
                    self.units[uid].deps.insert(did, was_soft && soft);
                }
            }
        }
        Ok(Wanted { added: changed, registered })
    }

    /// `start unit`: the one atomic check-and-start, from a client that
    /// polls every `poll` while it waits, by `owner`, who is recorded if
    /// the unit starts (None: nobody, as for `--detached`).
    pub fn start(
        &mut self,
        unit: &str,
        poll: Duration,
        owner: Option<Owners>,
        now: Duration,
    ) -> Result<Start, Error> {
        check_name(unit)?;
        let Some(&uid) = self.index.get(unit) else {
            // Nobody mentioned it, so nothing can hold it back.
            self.ensure_capacity(1)?;
            let uid = self.intern(unit, now, Place::Last);
            return Ok(self.mark_started(uid, owner, now));
        };
        if matches!(self.units[uid].status, Status::Started | Status::Ready) {
            return Err(Error::AlreadyStarted { unit: unit.to_owned() });
        }
        // A lapsed wait is over: this start is someone else's, or a new try.
        if self.units[uid].blocked.as_ref().is_some_and(|w| w.lapsed(now)) {
            self.end_wait(uid, now);
        }

        let deps = self.deps_of(uid);
        if let Some(failed) = deps.iter().find(|d| d.status == Status::Failed && !d.soft) {
            let did = self.index[&failed.unit];
            let reason = self.units[did].reason.clone();
            let own = match &reason {
                Some(r) => format!("dependency {} failed: {r}", failed.unit),
                None => format!("dependency {} failed", failed.unit),
            };
            let u = &mut self.units[uid];
            // Within the limit however long the chain of failures grows.
            u.reason = clean_reason(&own);
            u.failed_by = Some(did);
            u.finished_at = Some(now);
            self.end_wait(uid, now);
            self.set_status(uid, Status::Failed, now);
            return Ok(Start::DependencyFailed { dep: failed.unit.clone(), reason });
        }
        let unmet: Vec<Dep> = deps.into_iter().filter(|d| !d.satisfied).collect();
        if unmet.is_empty() {
            return Ok(self.mark_started(uid, owner, now));
        }
        let (began_waiting, polled) = match &mut self.units[uid].blocked {
            Some(wait) if wait.refresh_due(now, poll) => {
                (wait.polled, wait.poll) = (now, poll);
                (false, true)
            }
            Some(_) => (false, false),
            blocked @ None => {
                let ids = unmet.iter().map(|d| self.index[&d.unit]).collect();
                *blocked = Some(Wait { since: now, ids, polled: now, poll });
                (true, false)
            }
        };
        Ok(Start::Blocked { unmet, began_waiting, polled })
    }

    /// `ready unit`: a started unit is now ready, and satisfies its
    /// dependents while it keeps running. Repeating it changes nothing.
    /// It keeps the owner its start recorded: whoever says ready (the
    /// service, a helper, the script that started it detached) may exit
    /// long before the unit ends.
    pub fn ready(&mut self, unit: &str, now: Duration) -> Result<Readied, Error> {
        check_name(unit)?;
        let Some(&id) = self.index.get(unit) else {
            return Err(Error::NotRunning { unit: unit.to_owned(), status: Status::NotRegistered });
        };
        let u = &self.units[id];
        // A started or ready unit always has its start time; after a
        // restart, readiness is counted from the restart.
        let began = u.restarted_at.last().copied().or(u.started_at);
        let after = |at: Duration| at.saturating_sub(began.unwrap_or(at));
        match u.status {
            // A ready unit's status began when it became ready.
            Status::Ready => Ok(Readied::Already { after: after(u.since) }),
            Status::Started => {
                let after = after(now);
                self.units[id].ready_at = Some(now);
                self.set_status(id, Status::Ready, now);
                Ok(Readied::Now { after })
            }
            status => Err(Error::NotRunning { unit: unit.to_owned(), status }),
        }
    }

    /// `complete unit [note]`, from any status but completed. The note
    /// (`stopped`) says how it completed, until it starts again.
    pub fn complete(
        &mut self,
        unit: &str,
        note: Option<&str>,
        now: Duration,
    ) -> Result<Finished, Error> {
        check_name(unit)?;
        if let Some(rule) = note.and_then(line_rule) {
            return Err(Error::BadNote { unit: unit.to_owned(), rule });
        }
        let existing = self.index.get(unit).copied();
        if existing.is_some_and(|id| self.units[id].status == Status::Completed) {
            return Err(Error::AlreadyCompleted { unit: unit.to_owned() });
        }
        let finished = self.finish(unit, existing, Status::Completed, None, now)?;
        let id = self.index[unit];
        self.units[id].note = note.filter(|n| !n.is_empty()).map(str::to_owned);
        Ok(finished)
    }

    /// `fail unit [reason]`, from any status. Failing a failed unit again
    /// replaces its reason: a script's error path may report twice. Any
    /// reason is accepted, cleaned by [`clean_reason`].
    pub fn fail(
        &mut self,
        unit: &str,
        reason: Option<&str>,
        now: Duration,
    ) -> Result<Finished, Error> {
        check_name(unit)?;
        let existing = self.index.get(unit).copied();
        let reason = reason.and_then(clean_reason);
        self.finish(unit, existing, Status::Failed, reason, now)
    }

    /// `restart unit [reason]`: the started or ready unit's command failed
    /// (`reason`) and its owner runs it again (README.md, "Supervision").
    /// The unit is `started` until it is ready again: its waiting
    /// dependents keep waiting, running ones are left alone. Only the
    /// owner its start recorded may (`owner`), when it recorded one.
    pub fn restart(
        &mut self,
        unit: &str,
        owner: Option<Owner>,
        reason: Option<&str>,
        now: Duration,
    ) -> Result<Restarted, Error> {
        check_name(unit)?;
        let Some(&id) = self.index.get(unit) else {
            return Err(Error::CannotRestart {
                unit: unit.to_owned(),
                status: Status::NotRegistered,
            });
        };
        let u = &mut self.units[id];
        if !matches!(u.status, Status::Started | Status::Ready) {
            return Err(Error::CannotRestart { unit: unit.to_owned(), status: u.status });
        }
        if let Some(recorded) = u.owner.as_ref().map(|o| o.owner)
            && owner != Some(recorded)
        {
            return Err(Error::NotOwner { unit: unit.to_owned(), owner: recorded.pid });
        }
        let began = u.restarted_at.last().copied().or(u.started_at).unwrap_or(now);
        let was_ready = u.status == Status::Ready;
        u.restarts = u.restarts.saturating_add(1);
        u.last_failure = reason.and_then(clean_reason);
        if u.restarted_at.len() == RESTARTS_KEPT {
            u.restarted_at.remove(0);
        }
        u.restarted_at.push(now);
        u.ready_at = None;
        let restarted = Restarted { count: u.restarts, ran: now.saturating_sub(began), was_ready };
        if was_ready {
            self.set_status(id, Status::Started, now);
        }
        Ok(restarted)
    }

    /// `stop_waiting unit`: the client waiting in `start` for `unit` gave
    /// up (a timeout, a signal). Its wait ends, and is kept as `waited`.
    pub fn stop_waiting(&mut self, unit: &str, now: Duration) -> Result<StopWaiting, Error> {
        check_name(unit)?;
        let waited = self.index.get(unit).copied().and_then(|id| self.end_wait(id, now));
        Ok(waited.map_or(StopWaiting::NotWaiting, |waited| StopWaiting::Stopped { waited }))
    }

    /// One unit at `now`; a unit nobody mentioned is reported as not
    /// registered.
    pub fn status(&self, unit: &str, now: Duration) -> Result<UnitInfo, Error> {
        check_name(unit)?;
        Ok(match self.index.get(unit) {
            Some(&id) => self.info(id, now),
            None => UnitInfo {
                unit: unit.to_owned(),
                status: Status::NotRegistered,
                startable: true,
                deps: Vec::new(),
                reason: None,
                note: None,
                failed_by: None,
                since: Duration::ZERO,
                started_at: None,
                ready_at: None,
                finished_at: None,
                waited: None,
                waiting_since: None,
                owner: None,
                restarts: 0,
                last_failure: None,
                restarted_at: Vec::new(),
            },
        })
    }

    /// Every unit, placeholders included, sorted by name.
    pub fn list(&self, now: Duration) -> Vec<UnitInfo> {
        let mut all: Vec<UnitInfo> = (0..self.units.len()).map(|id| self.info(id, now)).collect();
        all.sort_by(|a, b| a.unit.cmp(&b.unit));
        all
    }

    /// What is known of `id` at `now`: a lapsed wait reads as over,
    /// ended at its last poll.
    fn info(&self, id: Id, now: Duration) -> UnitInfo {
        let u = &self.units[id];
        let deps = self.deps_of(id);
        let wait = u.blocked.as_ref().filter(|w| !w.lapsed(now));
        let lapsed = u.blocked.as_ref().filter(|w| w.lapsed(now));
        UnitInfo {
            unit: u.name.clone(),
            status: u.status,
            startable: deps.iter().all(|d| d.satisfied),
            deps,
            reason: u.reason.clone(),
            note: u.note.clone(),
            failed_by: u.failed_by.map(|d| self.units[d].name.clone()),
            since: u.since,
            started_at: u.started_at,
            ready_at: u.ready_at,
            finished_at: u.finished_at,
            waited: lapsed.map(|w| w.polled.saturating_sub(w.since)).or(u.waited),
            waiting_since: wait.map(|w| w.since),
            owner: u.owner.as_ref().map(|o| o.owner),
            restarts: u.restarts,
            last_failure: u.last_failure.clone(),
            restarted_at: u.restarted_at.clone(),
        }
    }

    /// The owners the server is to check for abandoned units: of the
    /// running units among `unit` and its dependencies (its own too: a
    /// script that died with it started may run it again at once), or of every running unit (`unit` None), leaving out
    /// those looked at less than `fresh` ago. Those returned count as
    /// looked at `now`: many dependents polling one unit cost one look
    /// per `fresh`.
    pub fn owners(
        &mut self,
        unit: Option<&str>,
        now: Duration,
        fresh: Duration,
    ) -> Vec<(String, Owners)> {
        let ids: Vec<Id> = match unit {
            None => (0..self.units.len()).collect(),
            Some(name) => match self.index.get(name) {
                None => Vec::new(),
                Some(&id) => self.units[id].deps.keys().copied().chain([id]).collect(),
            },
        };
        let mut owners = Vec::new();
        for id in ids {
            let u = &mut self.units[id];
            let running = matches!(u.status, Status::Started | Status::Ready);
            let due = u.owner_checked.is_none_or(|at| now.saturating_sub(at) >= fresh);
            if let Some(owner) = u.owner.as_ref().filter(|_| running && due) {
                owners.push((u.name.clone(), owner.clone()));
                u.owner_checked = Some(now);
            }
        }
        owners
    }

    /// The names of the units somebody declared or ran (for the
    /// did-you-mean), in no order.
    pub fn registered_names(&self) -> impl Iterator<Item = &str> {
        self.units.iter().filter(|u| u.status != Status::NotRegistered).map(|u| u.name.as_str())
    }

    /// Whether `unit` runs, started by `owner`: still abandoned, if that
    /// owner is gone.
    pub fn is_owned_by(&self, unit: &str, owner: &Owners) -> bool {
        self.index.get(unit).is_some_and(|&id| {
            let u = &self.units[id];
            matches!(u.status, Status::Started | Status::Ready) && u.owner.as_ref() == Some(owner)
        })
    }

    /// The dependencies of `id`, sorted by name.
    fn deps_of(&self, id: Id) -> Vec<Dep> {
        let mut deps: Vec<Dep> = self.units[id]
            .deps
            .iter()
            .map(|(&did, &soft)| {
                let d = &self.units[did];
                Dep {
                    unit: d.name.clone(),
                    status: d.status,
                    soft,
                    satisfied: d.status.satisfies(soft),
                    since: d.since,
                }
            })
            .collect();
        deps.sort_by(|a, b| a.unit.cmp(&b.unit));
        deps
    }

    fn finish(
        &mut self,
        unit: &str,
        existing: Option<Id>,
        status: Status,
        reason: Option<String>,
        now: Duration,
    ) -> Result<Finished, Error> {
        if existing.is_none() {
            self.ensure_capacity(1)?;
        }
        let id = self.intern(unit, now, Place::Last);
        let u = &mut self.units[id];
        let ran = match u.status {
            Status::Started | Status::Ready => u.started_at.map(|at| now.saturating_sub(at)),
            _ => None,
        };
        let was_abandoned = match u.status {
            Status::Failed => u.reason.clone().filter(|r| r.starts_with(ABANDONED)),
            _ => None,
        };
        u.reason.clone_from(&reason);
        u.note = None;
        u.failed_by = None;
        u.owner = None;
        u.owner_checked = None;
        u.finished_at = Some(now);
        self.end_wait(id, now);
        self.set_status(id, status, now);
        Ok(Finished { ran, reason, was_abandoned })
    }

    /// Ends the current wait of a unit that will not start from it (a
    /// dependency failed, it finished otherwise, its client gave up),
    /// keeping how long it waited. Nothing if it was not waiting.
    fn end_wait(&mut self, id: Id, now: Duration) -> Option<Duration> {
        let u = &mut self.units[id];
        let wait = u.blocked.take()?;
        let waited = wait.end(now).saturating_sub(wait.since);
        u.waited = Some(waited);
        Some(waited)
    }

    fn mark_started(&mut self, id: Id, owner: Option<Owners>, now: Duration) -> Start {
        let blocked = self.units[id].blocked.take();
        let (waited, waited_for) = match blocked {
            Some(Wait { since, ids, .. }) => {
                let mut names: Vec<String> =
                    ids.iter().map(|&d| self.units[d].name.clone()).collect();
                names.sort();
                (now.saturating_sub(since), names)
            }
            None => (Duration::ZERO, Vec::new()),
        };
        let u = &mut self.units[id];
        u.started_at = Some(now);
        u.ready_at = None;
        u.finished_at = None;
        u.waited = Some(waited);
        u.reason = None;
        u.note = None;
        u.failed_by = None;
        u.owner = owner;
        u.owner_checked = None;
        // A new start is a new life: its restarts are counted afresh.
        u.restarts = 0;
        u.last_failure = None;
        u.restarted_at.clear();
        self.set_status(id, Status::Started, now);
        Start::Started { waited, waited_for }
    }

    fn set_status(&mut self, id: Id, status: Status, now: Duration) {
        let u = &mut self.units[id];
        u.status = status;
        u.since = now;
    }

    fn ensure_capacity(&self, new_units: usize) -> Result<(), Error> {
        if self.units.len() + new_units > MAX_UNITS {
            return Err(Error::TooManyUnits);
        }
        Ok(())
    }

    /// The id of `name`, adding a not-registered placeholder if it is new.
    /// A new unit has no edges, so it may go anywhere in the order: first
    /// if it is about to become a dependency, last if a dependent, so that
    /// the usual declarations need no reordering. Callers have checked the
    /// name and the unit cap.
    fn intern(&mut self, name: &str, now: Duration, place: Place) -> Id {
        if let Some(&id) = self.index.get(name) {
            return id;
        }
        let ord = match place {
            Place::First => {
                self.lowest -= 1;
                self.lowest
            }
            Place::Last => {
                self.highest += 1;
                self.highest
            }
        };
        let id = self.units.len();
        self.units.push(Unit::new(name, Status::NotRegistered, now, ord));
        self.index.insert(name.to_owned(), id);
        id
    }
}

mod topo;

#[cfg(test)]
pub(crate) mod tests;

/// One unit exactly as the state holds it, references by name: what a
/// compacted journal keeps instead of the history that led to it
/// (journal.rs). Only [`State::snapshot`] makes these and only
/// [`State::restore`] reads them back.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct UnitRecord {
    pub name: String,
    pub status: Status,
    pub deps: Vec<(String, bool)>,
    pub dependents: Vec<String>,
    pub reason: Option<String>,
    pub note: Option<String>,
    pub failed_by: Option<String>,
    pub since: Duration,
    pub started_at: Option<Duration>,
    pub ready_at: Option<Duration>,
    pub finished_at: Option<Duration>,
    pub waited: Option<Duration>,
    pub wait: Option<WaitRecord>,
    pub owner: Option<Owners>,
    pub restarts: u32,
    pub last_failure: Option<String>,
    pub restarted_at: Vec<Duration>,
    pub ord: i64,
}

/// A unit's current wait, as [`UnitRecord`] keeps it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct WaitRecord {
    pub since: Duration,
    pub unmet: Vec<String>,
    pub polled: Duration,
    pub poll: Duration,
}

/// The whole state as records: [`State::snapshot`].
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Snapshot {
    pub units: Vec<UnitRecord>,
    /// The lowest and highest topological positions handed out so far.
    pub lowest: i64,
    pub highest: i64,
}

impl State {
    /// Every unit, in the order they were made (ids), as records.
    pub fn snapshot(&self) -> Snapshot {
        let name = |id: Id| self.units[id].name.clone();
        let units = self
            .units
            .iter()
            .map(|u| UnitRecord {
                name: u.name.clone(),
                status: u.status,
                deps: u.deps.iter().map(|(&d, &soft)| (name(d), soft)).collect(),
                dependents: u.dependents.iter().map(|&d| name(d)).collect(),
                reason: u.reason.clone(),
                note: u.note.clone(),
                failed_by: u.failed_by.map(name),
                since: u.since,
                started_at: u.started_at,
                ready_at: u.ready_at,
                finished_at: u.finished_at,
                waited: u.waited,
                wait: u.blocked.as_ref().map(|w| WaitRecord {
                    since: w.since,
                    unmet: w.ids.iter().map(|&d| name(d)).collect(),
                    polled: w.polled,
                    poll: w.poll,
                }),
                owner: u.owner.clone(),
                restarts: u.restarts,
                last_failure: u.last_failure.clone(),
                restarted_at: u.restarted_at.clone(),
                ord: u.ord,
            })
            .collect();
        Snapshot { units, lowest: self.lowest, highest: self.highest }
    }

    /// The state [`State::snapshot`] recorded, or what is wrong with the
    /// records (a name used before it is made, twice, or unknown).
    pub fn restore(snapshot: &Snapshot) -> Result<State, String> {
        let records = &snapshot.units;
        let mut state = State::new();
        for (id, r) in records.iter().enumerate() {
            if state.index.insert(r.name.clone(), id).is_some() {
                return Err(format!("unit {} recorded twice", quote(&r.name)));
            }
        }
        let id = |name: &String| {
            state.index.get(name).copied().ok_or_else(|| format!("unknown unit {}", quote(name)))
        };
        let mut units = Vec::with_capacity(records.len());
        let mut edges = 0;
        for r in records {
            let deps = r
                .deps
                .iter()
                .map(|(d, soft)| Ok((id(d)?, *soft)))
                .collect::<Result<_, String>>()?;
            let dependents = r.dependents.iter().map(&id).collect::<Result<_, _>>()?;
            let blocked = match &r.wait {
                Some(w) => Some(Wait {
                    since: w.since,
                    ids: w.unmet.iter().map(&id).collect::<Result<_, _>>()?,
                    polled: w.polled,
                    poll: w.poll,
                }),
                None => None,
            };
            edges += r.deps.len();
            units.push(Unit {
                name: r.name.clone(),
                status: r.status,
                deps,
                dependents,
                reason: r.reason.clone(),
                note: r.note.clone(),
                failed_by: r.failed_by.as_ref().map(&id).transpose()?,
                since: r.since,
                started_at: r.started_at,
                ready_at: r.ready_at,
                finished_at: r.finished_at,
                waited: r.waited,
                blocked,
                owner: r.owner.clone(),
                owner_checked: None,
                restarts: r.restarts,
                last_failure: r.last_failure.clone(),
                restarted_at: r.restarted_at.clone(),
                ord: r.ord,
            });
        }
        (state.lowest, state.highest) = (snapshot.lowest, snapshot.highest);
        state.units = units;
        state.edges = edges;
        Ok(state)
    }
}
