//! The wire: one JSON object per `\n`-terminated line, both directions.
//!
//! This file is the only one that knows the wire's shape; PROTOCOL.md
//! documents it and the tests at the bottom pin every message to a literal.
//! Times are seconds since the server started, with millisecond precision.

use std::fmt;
use std::io::{self, BufRead};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::duration;
use crate::state::{self, Dep, UnitInfo};
pub use crate::state::{Owner, Owners, Status, clean_reason};

/// Bumped when a request or response changes incompatibly: 2 renamed the
/// unit object's `ready` to `startable` (PROTOCOL.md, "Versions").
pub const PROTOCOL_VERSION: u32 = 2;
/// Longest request or response line, newline excluded.
pub const MAX_LINE: usize = 64 * 1024;

/// A request. Serialized by serde; parsed only by [`parse_request`], which
/// the journal's replay shares.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    Ping,
    Want {
        unit: String,
        deps: Vec<String>,
        soft: bool,
    },
    Start {
        unit: String,
        /// How often the client polls while it waits, in seconds: a wait
        /// it stops refreshing lapses after three of these (or 10 s).
        #[serde(skip_serializing_if = "Option::is_none")]
        poll: Option<f64>,
        /// The script that started it and must finish it (README.md,
        /// "Abandoned units"). The server keeps it only when `client_pid`
        /// is the connection's own pid, and then journals it with the start.
        #[serde(skip_serializing_if = "Option::is_none")]
        owner: Option<OwnerField>,
        /// The processes between the client and its owner, from its parent
        /// up (a subshell, `timeout`): the unit is abandoned only when
        /// none of them nor the owner lives. Absent from older clients.
        #[serde(skip_serializing_if = "Option::is_none")]
        via: Option<Vec<OwnerField>>,
        /// The client's own pid, as the client sees it.
        #[serde(skip_serializing_if = "Option::is_none")]
        client_pid: Option<u32>,
    },
    Complete {
        unit: String,
        /// How it completed, in one line (`stopped`), shown by `status`.
        #[serde(skip_serializing_if = "Option::is_none")]
        note: Option<String>,
        /// See [`Request::instance`].
        #[serde(skip_serializing_if = "Option::is_none")]
        instance: Option<String>,
    },
    /// A started unit is ready: its dependents may start while it runs.
    /// It keeps the owner its start recorded (README.md, "Abandoned units").
    Ready {
        unit: String,
        /// See [`Request::instance`].
        #[serde(skip_serializing_if = "Option::is_none")]
        instance: Option<String>,
    },
    Fail {
        unit: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// See [`Request::instance`].
        #[serde(skip_serializing_if = "Option::is_none")]
        instance: Option<String>,
    },
    /// The owner of a started or ready unit runs its command again after
    /// `reason` (README.md, "Supervision"): the unit is `started` until
    /// it is ready again. Only from the process that started it.
    Restart {
        unit: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        owner: Option<OwnerField>,
        /// See [`Request::instance`].
        #[serde(skip_serializing_if = "Option::is_none")]
        instance: Option<String>,
    },
    Status {
        unit: String,
    },
    List,
    /// A client that was waiting in `start` for `unit` gave up (a timeout,
    /// a signal): it is no longer waiting.
    StopWaiting {
        unit: String,
    },
    /// The registered unit whose name `unit` may be a typo of: the
    /// did-you-mean of `wait` (a waiting `start` hears it with its unmet
    /// dependencies).
    Near {
        unit: String,
    },
}

const OPS: &str =
    "ping, want, start, ready, complete, fail, restart, status, list, stop_waiting, near";

impl Request {
    /// The instance id of the server a result (`ready`, `complete`,
    /// `fail`) belongs to: the one that accepted the unit's `start`, as
    /// `run` knows it. Another server (one restarted without `--state`)
    /// refuses it with [`ErrorKind::OtherInstance`]: the unit it names
    /// there is not the one that ran. None: accepted by any server, as
    /// from the CLI's own `ready`/`complete`/`fail` and from `coder`.
    /// Returned with the op and the unit, for the refusal's message.
    pub fn instance(&self) -> Option<(&'static str, &str, &str)> {
        let (op, unit, instance) = match self {
            Request::Ready { unit, instance } => ("ready", unit, instance),
            Request::Complete { unit, instance, .. } => ("complete", unit, instance),
            Request::Fail { unit, instance, .. } => ("fail", unit, instance),
            Request::Restart { unit, instance, .. } => ("restart", unit, instance),
            _ => return None,
        };
        Some((op, unit, instance.as_deref()?))
    }
}

/// An answer: `ok`, `instance`, then the body's `result` and fields, all in
/// one flat object. Written and read by hand around serde (see
/// [`Response::write_line`] and [`parse_response`]) rather than with
/// `#[serde(flatten)]`, which buffers every field and costs both time on
/// the server's hot path and size in the binary.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub ok: bool,
    /// Identifies the server's state: new for every fresh state, so a client
    /// can tell that the graph it waited on is gone.
    pub instance: String,
    pub body: Body,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Body {
    /// `pid` is the server's process id (None from a server too old to say).
    Pong {
        version: String,
        protocol: u32,
        pid: Option<u32>,
    },
    Wanted {
        added: usize,
        registered: bool,
    },
    Started {
        waited: f64,
        waited_for: Vec<String>,
    },
    /// `near`: for unmet dependencies nobody registered, a registered
    /// name close to theirs; only when the wait begins.
    Blocked {
        now: f64,
        unmet: Vec<DepView>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        near: Vec<NearView>,
    },
    DependencyFailed {
        dependency: String,
        reason: Option<String>,
    },
    /// `after`: seconds from its start until it became ready; `already`:
    /// it was ready before this request, which changed nothing.
    Ready {
        after: f64,
        already: bool,
    },
    /// `abandoned`: the reason it had failed with, if it had been failed
    /// as abandoned (its dependents may have given up); absent otherwise.
    Completed {
        ran: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        abandoned: Option<String>,
    },
    Failed {
        ran: Option<f64>,
    },
    /// `restarts`: how many times it was restarted since it started, this
    /// one included; `ran`: how long the command that failed had run.
    Restarted {
        restarts: u32,
        ran: f64,
    },
    /// `waited`: how long the wait that stopped had lasted; null if the
    /// unit was not waiting, which changed nothing.
    StoppedWaiting {
        waited: Option<f64>,
    },
    /// A registered unit whose name is close to the one asked of, if any.
    Near {
        near: Option<String>,
    },
    /// Never on the wire: the client's own answer when a `start` or a
    /// `complete` it sent again (the first answer was lost with the
    /// connection) is refused as already done: its first try took, and
    /// how long it waited is not known.
    #[serde(skip_serializing)]
    Retried,
    /// Boxed: a unit view is many times the size of any other answer.
    Status {
        now: f64,
        unit: Box<UnitView>,
    },
    List {
        now: f64,
        units: Vec<UnitView>,
    },
    Error {
        error: ErrorBody,
    },
}

#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct ErrorBody {
    pub kind: ErrorKind,
    pub message: String,
}

/// Why a request was refused, for programs; PROTOCOL.md lists them.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    BadRequest,
    UnknownOp,
    LineTooLong,
    BadName,
    SelfDependency,
    Cycle,
    AlreadyStarted,
    AlreadyCompleted,
    NotRunning,
    /// A `restart` from another process than the unit's owner.
    NotOwner,
    BadNote,
    Limit,
    Busy,
    Forbidden,
    /// The change could not be written to the `--state` file, so it was refused.
    Journal,
    /// A result for another server instance (see [`Request::instance`]).
    OtherInstance,
    /// A kind this client does not know, from a newer server, so that its
    /// message still shows. Never sent.
    #[serde(other)]
    Other,
}

impl ErrorBody {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> ErrorBody {
        ErrorBody { kind, message: message.into() }
    }
}

impl From<state::Error> for ErrorBody {
    fn from(e: state::Error) -> ErrorBody {
        let kind = match e {
            state::Error::BadName { .. } => ErrorKind::BadName,
            state::Error::SelfDependency { .. } => ErrorKind::SelfDependency,
            state::Error::Cycle { .. } => ErrorKind::Cycle,
            state::Error::AlreadyStarted { .. } => ErrorKind::AlreadyStarted,
            state::Error::AlreadyCompleted { .. } => ErrorKind::AlreadyCompleted,
            state::Error::NotRunning { .. } | state::Error::CannotRestart { .. } => {
                ErrorKind::NotRunning
            }
            state::Error::NotOwner { .. } => ErrorKind::NotOwner,
            state::Error::BadNote { .. } => ErrorKind::BadNote,
            state::Error::TooManyUnits | state::Error::TooManyEdges => ErrorKind::Limit,
        };
        ErrorBody::new(kind, e.to_string())
    }
}

/// [`Status`] on the wire: the state machine knows no serde, so its enum
/// is written and read through this mirror (serde's "remote" derive).
/// The names are [`Status::as_str`]'s, as a test checks.
#[derive(Serialize, Deserialize)]
#[serde(remote = "Status", rename_all = "lowercase")]
enum StatusDef {
    #[serde(rename = "not registered")]
    NotRegistered,
    Pending,
    Started,
    Ready,
    Completed,
    Failed,
}

/// A unit's owner on the wire: a pid and its start time, in clock ticks
/// since boot (field 22 of `/proc/PID/stat`), and for the owner itself
/// what it is called (`warm.sh`), for the abandoned reason.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct OwnerField {
    pub pid: u32,
    pub start: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// How many processes below the owner are kept: a walk goes no deeper.
pub const MAX_VIA: usize = 64;

impl From<&OwnerField> for Owner {
    fn from(o: &OwnerField) -> Owner {
        Owner { pid: o.pid, start: o.start }
    }
}

impl From<Owner> for OwnerField {
    fn from(o: Owner) -> OwnerField {
        OwnerField { pid: o.pid, start: o.start, name: None }
    }
}

/// A `start`'s owner and the processes below it, as the state keeps them.
pub fn owners(owner: Option<&OwnerField>, via: Option<&[OwnerField]>) -> Option<Owners> {
    let owner = owner?;
    let name = owner.name.as_deref().and_then(clean_reason).map(|n| n.chars().take(64).collect());
    let via = via.unwrap_or_default().iter().take(MAX_VIA).map(Owner::from).collect();
    Some(Owners { owner: owner.into(), name, via })
}

/// A status as the wire spells it.
fn status(value: &Value) -> Result<Status, serde_json::Error> {
    StatusDef::deserialize(value)
}

/// One dependency of a unit, as `status --json` and `list --json` print it.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct DepView {
    pub unit: String,
    #[serde(with = "StatusDef")]
    pub status: Status,
    pub soft: bool,
    pub satisfied: bool,
    /// When the dependency entered its current status.
    pub since: f64,
}

/// For an unregistered dependency of a `start` that begins to wait, a
/// registered unit whose name is close to it (a typo?).
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct NearView {
    pub unit: String,
    pub near: String,
}

/// One unit, as `status --json` prints it and `list --json` prints each.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct UnitView {
    pub unit: String,
    #[serde(with = "StatusDef")]
    pub status: Status,
    /// Every dependency is satisfied: `start` would start it. Called
    /// `ready` in protocol 1.
    pub startable: bool,
    pub dependencies: Vec<DepView>,
    pub reason: Option<String>,
    /// How it completed, when that was said (`stopped`).
    pub note: Option<String>,
    /// The hard dependency whose failure failed it, while that is why it is
    /// failed.
    pub failed_by: Option<String>,
    /// When the unit entered its current status.
    pub since: f64,
    pub started_at: Option<f64>,
    /// When it became ready after its last start, if it did.
    pub ready_at: Option<f64>,
    pub finished_at: Option<f64>,
    /// How long its last start waited for its dependencies.
    pub waited: Option<f64>,
    /// How long its last run took, once it finished.
    pub ran: Option<f64>,
    /// Since when a `start` has been waiting, while one is.
    pub waiting_since: Option<f64>,
    /// The pid of the script that started it, while it runs and has one.
    pub owner: Option<u32>,
    /// How many times its command was restarted since it started
    /// (README.md, "Supervision"); absent when none.
    #[serde(skip_serializing_if = "is_zero")]
    pub restarts: u32,
    /// Why its command was last restarted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<String>,
    /// When it was restarted, the latest 32, oldest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub restarted_at: Vec<f64>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Seconds, rounded to the millisecond so JSON stays short. Not inlined:
/// the server's answers call it in many places (BENCHMARKS.md, "Footprint").
#[inline(never)]
pub fn secs(d: Duration) -> f64 {
    duration::millis(d) as f64 / 1000.0
}

impl From<Dep> for DepView {
    fn from(d: Dep) -> DepView {
        DepView {
            unit: d.unit,
            status: d.status,
            soft: d.soft,
            satisfied: d.satisfied,
            since: secs(d.since),
        }
    }
}

impl From<UnitInfo> for UnitView {
    fn from(u: UnitInfo) -> UnitView {
        let ran = match (u.started_at, u.finished_at) {
            (Some(start), Some(end)) => Some(secs(end.saturating_sub(start))),
            _ => None,
        };
        UnitView {
            unit: u.unit,
            status: u.status,
            startable: u.startable,
            dependencies: u.deps.into_iter().map(DepView::from).collect(),
            reason: u.reason,
            note: u.note,
            failed_by: u.failed_by,
            since: secs(u.since),
            started_at: u.started_at.map(secs),
            ready_at: u.ready_at.map(secs),
            finished_at: u.finished_at.map(secs),
            waited: u.waited.map(secs),
            ran,
            waiting_since: u.waiting_since.map(secs),
            owner: u.owner.map(|o| o.pid),
            restarts: u.restarts,
            last_failure: u.last_failure,
            restarted_at: u.restarted_at.into_iter().map(secs).collect(),
        }
    }
}

impl Response {
    pub fn new(instance: &str, body: Body) -> Response {
        Response { ok: !matches!(body, Body::Error { .. }), instance: instance.to_owned(), body }
    }

    pub fn error(instance: &str, error: ErrorBody) -> Response {
        Response::new(instance, Body::Error { error })
    }

    /// The response as one line, newline included.
    pub fn to_line(&self) -> Vec<u8> {
        let mut line = Vec::new();
        self.write_line(&mut line);
        line
    }

    /// Writes the response as one line into `out`, replacing what it held,
    /// so a connection can reuse one buffer for all its answers.
    pub fn write_line(&self, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(if self.ok {
            b"{\"ok\":true,\"instance\":"
        } else {
            b"{\"ok\":false,\"instance\":"
        });
        // Serializing plain data with string keys cannot fail.
        serde_json::to_writer(&mut *out, &self.instance).expect("a string serializes");
        let body = out.len();
        serde_json::to_writer(&mut *out, &self.body).expect("a response serializes");
        // The body is an object of its own, `{"result":...}`: open it up
        // into ours.
        out[body] = b',';
        out.push(b'\n');
    }
}

impl Request {
    /// `start` by `owner` (None: detached). The client's own pid goes
    /// with an owner, so the server can tell that it sees the same pids.
    pub fn start(unit: &str, poll: Option<f64>, owner: Option<Owners>) -> Request {
        let client_pid = owner.as_ref().map(|_| std::process::id());
        let via = owner
            .as_ref()
            .filter(|o| !o.via.is_empty())
            .map(|o| o.via.iter().copied().map(OwnerField::from).collect());
        let owner = owner.map(|o| OwnerField { name: o.name, ..o.owner.into() });
        Request::Start { unit: unit.to_owned(), poll, owner, via, client_pid }
    }

    /// The request as one line, newline included.
    pub fn to_line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).expect("a request serializes");
        line.push(b'\n');
        line
    }
}

/// Parses one request line, or says what is wrong with it.
pub fn parse_request(line: &[u8]) -> Result<Request, ErrorBody> {
    let bad = |msg: String| ErrorBody::new(ErrorKind::BadRequest, msg);
    if std::str::from_utf8(line).is_err() {
        return Err(bad("request is not valid UTF-8".into()));
    }
    match line.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        Some(_) => return Err(bad("a request is a JSON object, such as {\"op\":\"ping\"}".into())),
        None => {
            let hint = "empty request; send one JSON object per line, such as {\"op\":\"ping\"}";
            return Err(bad(hint.into()));
        }
    }
    // Every request's fields in one flat struct: unknown fields are skipped
    // without being buffered, which keeps parsing fast and its stack small
    // (serde's tagged enums would buffer the whole object, recursively).
    #[derive(Deserialize)]
    struct Fields {
        op: Option<String>,
        unit: Option<String>,
        deps: Option<Vec<String>>,
        soft: Option<bool>,
        reason: Option<String>,
        note: Option<String>,
        poll: Option<f64>,
        owner: Option<OwnerField>,
        via: Option<Vec<OwnerField>>,
        client_pid: Option<u32>,
        instance: Option<String>,
    }
    let fields: Fields =
        serde_json::from_slice(line).map_err(|e| bad(format!("malformed request: {e}")))?;
    let Some(op) = fields.op else {
        return Err(bad(format!("request has no \"op\"; known ops: {OPS}")));
    };
    let unit = || fields.unit.clone().ok_or_else(|| bad(format!("op {op:?} needs a \"unit\"")));
    Ok(match op.as_str() {
        "ping" => Request::Ping,
        "want" => Request::Want {
            unit: unit()?,
            deps: fields.deps.clone().unwrap_or_default(),
            soft: fields.soft.unwrap_or(false),
        },
        "start" => Request::Start {
            unit: unit()?,
            poll: fields.poll,
            owner: fields.owner.clone(),
            via: fields.via.clone(),
            client_pid: fields.client_pid,
        },
        "ready" => Request::Ready { unit: unit()?, instance: fields.instance.clone() },
        "complete" => Request::Complete {
            unit: unit()?,
            note: fields.note.clone(),
            instance: fields.instance.clone(),
        },
        "fail" => Request::Fail {
            unit: unit()?,
            reason: fields.reason.clone(),
            instance: fields.instance.clone(),
        },
        "restart" => Request::Restart {
            unit: unit()?,
            reason: fields.reason.clone(),
            owner: fields.owner.clone(),
            instance: fields.instance.clone(),
        },
        "status" => Request::Status { unit: unit()? },
        "list" => Request::List,
        "stop_waiting" => Request::StopWaiting { unit: unit()? },
        "near" => Request::Near { unit: unit()? },
        _ => {
            let message = format!("unknown op {op:?}; known ops: {OPS}");
            return Err(ErrorBody::new(ErrorKind::UnknownOp, message));
        }
    })
}

/// Parses one response line.
///
/// Into a [`serde_json::Value`] first, then field by field through
/// [`Object`]: derived `Deserialize` impls for the bodies and the unit
/// views, each instantiated for serde_json's reader and for every
/// `Option` and `Vec` around them, cost more code (BENCHMARKS.md,
/// "Footprint"). Unknown fields are ignored; a `null` field is a missing one.
pub fn parse_response(line: &[u8]) -> Result<Response, String> {
    let value: serde_json::Value = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    let f = Object::new(&value)?;
    let body = match f.string("result")?.as_str() {
        "pong" => Body::Pong {
            version: f.string("version")?,
            protocol: f.u32("protocol")?,
            pid: f.option("pid", Object::u32)?,
        },
        "wanted" => Body::Wanted { added: f.usize("added")?, registered: f.bool("registered")? },
        "started" => {
            Body::Started { waited: f.f64("waited")?, waited_for: f.strings("waited_for")? }
        }
        "blocked" => Body::Blocked {
            now: f.f64("now")?,
            unmet: f.list("unmet", dep_view)?,
            near: f.option("near", |f, name| f.list(name, near_view))?.unwrap_or_default(),
        },
        "dependency_failed" => Body::DependencyFailed {
            dependency: f.string("dependency")?,
            reason: f.option("reason", Object::string)?,
        },
        "ready" => Body::Ready { after: f.f64("after")?, already: f.bool("already")? },
        "completed" => Body::Completed {
            ran: f.option("ran", Object::f64)?,
            abandoned: f.option("abandoned", Object::string)?,
        },
        "failed" => Body::Failed { ran: f.option("ran", Object::f64)? },
        "restarted" => Body::Restarted { restarts: f.u32("restarts")?, ran: f.f64("ran")? },
        "stopped_waiting" => Body::StoppedWaiting { waited: f.option("waited", Object::f64)? },
        "near" => Body::Near { near: f.option("near", Object::string)? },
        "status" => {
            Body::Status { now: f.f64("now")?, unit: Box::new(unit_view(&f.object("unit")?)?) }
        }
        "list" => Body::List { now: f.f64("now")?, units: f.list("units", unit_view)? },
        "error" => {
            let error = f.object("error")?;
            let kind = ErrorKind::deserialize(error.need("kind")?).map_err(|e| e.to_string())?;
            Body::Error { error: ErrorBody { kind, message: error.string("message")? } }
        }
        other => return Err(format!("unknown result {other:?}")),
    };
    Ok(Response { ok: f.bool("ok")?, instance: f.string("instance")?, body })
}

fn unit_view(f: &Object) -> Result<UnitView, String> {
    Ok(UnitView {
        unit: f.string("unit")?,
        status: f.status("status")?,
        startable: f.bool("startable")?,
        dependencies: f.list("dependencies", dep_view)?,
        reason: f.option("reason", Object::string)?,
        note: f.option("note", Object::string)?,
        failed_by: f.option("failed_by", Object::string)?,
        since: f.f64("since")?,
        started_at: f.option("started_at", Object::f64)?,
        ready_at: f.option("ready_at", Object::f64)?,
        finished_at: f.option("finished_at", Object::f64)?,
        waited: f.option("waited", Object::f64)?,
        ran: f.option("ran", Object::f64)?,
        waiting_since: f.option("waiting_since", Object::f64)?,
        owner: f.option("owner", Object::u32)?,
        restarts: f.option("restarts", Object::u32)?.unwrap_or(0),
        last_failure: f.option("last_failure", Object::string)?,
        restarted_at: f.option("restarted_at", Object::numbers)?.unwrap_or_default(),
    })
}

fn dep_view(f: &Object) -> Result<DepView, String> {
    Ok(DepView {
        unit: f.string("unit")?,
        status: f.status("status")?,
        soft: f.bool("soft")?,
        satisfied: f.bool("satisfied")?,
        since: f.f64("since")?,
    })
}

fn near_view(f: &Object) -> Result<NearView, String> {
    Ok(NearView { unit: f.string("unit")?, near: f.string("near")? })
}

/// A JSON object of a response (or of the journal's), read field by field
/// for [`parse_response`].
pub struct Object<'a>(&'a serde_json::Map<String, serde_json::Value>);

impl<'a> Object<'a> {
    pub fn new(value: &'a serde_json::Value) -> Result<Object<'a>, String> {
        value.as_object().map(Object).ok_or_else(|| "expected an object".to_owned())
    }

    fn need(&self, name: &str) -> Result<&'a serde_json::Value, String> {
        match self.0.get(name) {
            Some(serde_json::Value::Null) | None => Err(format!("missing field `{name}`")),
            Some(value) => Ok(value),
        }
    }

    /// A field that may be missing or `null`, read by `read` when it is not.
    fn option<T>(
        &self,
        name: &str,
        read: fn(&Self, &str) -> Result<T, String>,
    ) -> Result<Option<T>, String> {
        match self.need(name) {
            Ok(_) => read(self, name).map(Some),
            Err(_) => Ok(None),
        }
    }

    fn invalid(name: &str, expected: &str) -> String {
        format!("invalid type for field `{name}`: expected {expected}")
    }

    pub fn string(&self, name: &str) -> Result<String, String> {
        let value = self.need(name)?.as_str();
        value.map(str::to_owned).ok_or_else(|| Self::invalid(name, "a string"))
    }

    fn bool(&self, name: &str) -> Result<bool, String> {
        self.need(name)?.as_bool().ok_or_else(|| Self::invalid(name, "a boolean"))
    }

    fn f64(&self, name: &str) -> Result<f64, String> {
        self.need(name)?.as_f64().ok_or_else(|| Self::invalid(name, "a number"))
    }

    pub fn u64(&self, name: &str) -> Result<u64, String> {
        self.need(name)?.as_u64().ok_or_else(|| Self::invalid(name, "an unsigned integer"))
    }

    pub fn u32(&self, name: &str) -> Result<u32, String> {
        u32::try_from(self.u64(name)?).map_err(|_| Self::invalid(name, "a u32"))
    }

    fn usize(&self, name: &str) -> Result<usize, String> {
        usize::try_from(self.u64(name)?).map_err(|_| Self::invalid(name, "a usize"))
    }

    fn status(&self, name: &str) -> Result<Status, String> {
        status(self.need(name)?).map_err(|e| format!("field `{name}`: {e}"))
    }

    fn object(&self, name: &str) -> Result<Object<'a>, String> {
        Object::new(self.need(name)?)
    }

    fn array(&self, name: &str) -> Result<&'a Vec<serde_json::Value>, String> {
        self.need(name)?.as_array().ok_or_else(|| Self::invalid(name, "an array"))
    }

    fn strings(&self, name: &str) -> Result<Vec<String>, String> {
        let strings = self.array(name)?.iter().map(|s| s.as_str().map(str::to_owned));
        strings.collect::<Option<_>>().ok_or_else(|| Self::invalid(name, "strings"))
    }

    fn numbers(&self, name: &str) -> Result<Vec<f64>, String> {
        let numbers = self.array(name)?.iter().map(serde_json::Value::as_f64);
        numbers.collect::<Option<_>>().ok_or_else(|| Self::invalid(name, "numbers"))
    }

    /// An array of objects, each read by `read`.
    fn list<T>(
        &self,
        name: &str,
        read: fn(&Object) -> Result<T, String>,
    ) -> Result<Vec<T>, String> {
        self.array(name)?.iter().map(|item| read(&Object::new(item)?)).collect()
    }
}

#[derive(Debug)]
pub enum LineError {
    /// More than the cap (usually [`MAX_LINE`]) bytes without a newline.
    TooLong,
    Io(io::Error),
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineError::TooLong => f.write_str("line too long"),
            LineError::Io(err) => err.fmt(f),
        }
    }
}

// Messages name their causes (they are written for a log), so no
// `source()`: an error reporter walking the chain would say each twice.
impl std::error::Error for LineError {}

/// Longest response line a client accepts: `list` of a full server.
pub const MAX_ANSWER: usize = 1 << 30;

/// Reads one request line into `buf`, without its newline. Returns
/// `Ok(false)` at a clean end of stream; a last line without a newline
/// still counts.
pub fn read_line(reader: &mut impl BufRead, buf: &mut Vec<u8>) -> Result<bool, LineError> {
    read_line_capped(reader, buf, MAX_LINE)
}

/// [`read_line`] with another cap, for answers.
pub fn read_line_capped(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
    cap: usize,
) -> Result<bool, LineError> {
    buf.clear();
    loop {
        let available = match reader.fill_buf() {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(LineError::Io(e)),
        };
        if available.is_empty() {
            return Ok(!buf.is_empty());
        }
        let (taken, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (i, true),
            None => (available.len(), false),
        };
        if buf.len() + taken > cap {
            return Err(LineError::TooLong);
        }
        buf.extend_from_slice(&available[..taken]);
        reader.consume(taken + usize::from(done));
        if done {
            return Ok(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(s: &str) -> Vec<u8> {
        format!("{s}\n").into_bytes()
    }

    #[test]
    fn requests_are_pinned() {
        let cases = [
            (Request::Ping, r#"{"op":"ping"}"#),
            (
                Request::Want { unit: "b".into(), deps: vec!["a".into()], soft: false },
                r#"{"op":"want","unit":"b","deps":["a"],"soft":false}"#,
            ),
            (
                Request::Start {
                    unit: "b".into(),
                    poll: None,
                    owner: None,
                    via: None,
                    client_pid: None,
                },
                r#"{"op":"start","unit":"b"}"#,
            ),
            (
                Request::Start {
                    unit: "b".into(),
                    poll: Some(0.05),
                    owner: None,
                    via: None,
                    client_pid: None,
                },
                r#"{"op":"start","unit":"b","poll":0.05}"#,
            ),
            (
                Request::Start {
                    unit: "b".into(),
                    poll: Some(0.05),
                    owner: Some(OwnerField { pid: 42, start: 1234, name: None }),
                    via: None,
                    client_pid: Some(43),
                },
                r#"{"op":"start","unit":"b","poll":0.05,"owner":{"pid":42,"start":1234},"client_pid":43}"#,
            ),
            (
                Request::Start {
                    unit: "b".into(),
                    poll: None,
                    owner: Some(OwnerField { pid: 42, start: 1234, name: Some("warm.sh".into()) }),
                    via: Some(vec![OwnerField { pid: 44, start: 1240, name: None }]),
                    client_pid: Some(45),
                },
                r#"{"op":"start","unit":"b","owner":{"pid":42,"start":1234,"name":"warm.sh"},"via":[{"pid":44,"start":1240}],"client_pid":45}"#,
            ),
            (
                Request::Complete { unit: "a".into(), note: None, instance: None },
                r#"{"op":"complete","unit":"a"}"#,
            ),
            (
                Request::Complete {
                    unit: "a".into(),
                    note: Some("stopped".into()),
                    instance: None,
                },
                r#"{"op":"complete","unit":"a","note":"stopped"}"#,
            ),
            (
                Request::Complete {
                    unit: "a".into(),
                    note: Some("stopped".into()),
                    instance: Some("5f2c9a0e1b7d3c48".into()),
                },
                r#"{"op":"complete","unit":"a","note":"stopped","instance":"5f2c9a0e1b7d3c48"}"#,
            ),
            (Request::Ready { unit: "a".into(), instance: None }, r#"{"op":"ready","unit":"a"}"#),
            (
                Request::Ready { unit: "a".into(), instance: Some("5f2c9a0e1b7d3c48".into()) },
                r#"{"op":"ready","unit":"a","instance":"5f2c9a0e1b7d3c48"}"#,
            ),
            (
                Request::Fail {
                    unit: "a".into(),
                    reason: Some("exit status 2".into()),
                    instance: None,
                },
                r#"{"op":"fail","unit":"a","reason":"exit status 2"}"#,
            ),
            (
                Request::Fail {
                    unit: "a".into(),
                    reason: Some("exit status 2".into()),
                    instance: Some("5f2c9a0e1b7d3c48".into()),
                },
                r#"{"op":"fail","unit":"a","reason":"exit status 2","instance":"5f2c9a0e1b7d3c48"}"#,
            ),
            (
                Request::Fail { unit: "a".into(), reason: None, instance: None },
                r#"{"op":"fail","unit":"a"}"#,
            ),
            (Request::Status { unit: "a".into() }, r#"{"op":"status","unit":"a"}"#),
            (Request::List, r#"{"op":"list"}"#),
            (Request::StopWaiting { unit: "b".into() }, r#"{"op":"stop_waiting","unit":"b"}"#),
            (Request::Near { unit: "b".into() }, r#"{"op":"near","unit":"b"}"#),
        ];
        for (request, text) in cases {
            assert_eq!(request.to_line(), line(text));
            assert_eq!(parse_request(text.as_bytes()).unwrap(), request);
        }
    }

    #[test]
    fn optional_and_unknown_fields() {
        assert_eq!(
            parse_request(br#"{"op":"want","unit":"b","deps":["a"],"extra":[1,{"x":2}]}"#).unwrap(),
            Request::Want { unit: "b".into(), deps: vec!["a".into()], soft: false }
        );
        assert_eq!(
            parse_request(br#"{"unit":"a","op":"fail"}"#).unwrap(),
            Request::Fail { unit: "a".into(), reason: None, instance: None }
        );
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        let kind_and_message = |s: &[u8]| {
            let e = parse_request(s).unwrap_err();
            (e.kind, e.message)
        };
        assert_eq!(
            kind_and_message(br#"{"op":"frobnicate"}"#),
            (ErrorKind::UnknownOp, format!("unknown op \"frobnicate\"; known ops: {OPS}"))
        );
        assert_eq!(
            kind_and_message(br#"{"unit":"a"}"#),
            (ErrorKind::BadRequest, format!("request has no \"op\"; known ops: {OPS}"))
        );
        assert_eq!(
            kind_and_message(br#"{"op":"start"}"#),
            (ErrorKind::BadRequest, "op \"start\" needs a \"unit\"".into())
        );
        assert_eq!(
            kind_and_message(b"\xff\xfe"),
            (ErrorKind::BadRequest, "request is not valid UTF-8".into())
        );
        assert_eq!(kind_and_message(b"  ").0, ErrorKind::BadRequest);
        assert_eq!(kind_and_message(br#"{"op":"want","unit":7}"#).0, ErrorKind::BadRequest);
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(kind_and_message(deep.as_bytes()).0, ErrorKind::BadRequest);
        // Unknown fields are skipped however deep (serde_json skips them
        // without recursion); known fields must have their types.
        let nested = |n: usize| {
            format!("{{\"op\":\"ping\",\"x\":{}1{}}}", "{\"a\":".repeat(n), "}".repeat(n))
        };
        assert_eq!(parse_request(nested(10_000).as_bytes()), Ok(Request::Ping));
        let deep_deps = format!("{{\"op\":\"want\",\"unit\":\"b\",\"deps\":{deep}}}");
        assert_eq!(kind_and_message(deep_deps.as_bytes()).0, ErrorKind::BadRequest);
        assert_eq!(
            kind_and_message(br#"["start","zz"]"#),
            (ErrorKind::BadRequest, "a request is a JSON object, such as {\"op\":\"ping\"}".into())
        );
    }

    #[test]
    fn responses_are_pinned() {
        let unit = UnitView {
            unit: "b".into(),
            status: Status::Pending,
            startable: false,
            dependencies: vec![DepView {
                unit: "a".into(),
                status: Status::Started,
                soft: false,
                satisfied: false,
                since: 1.5,
            }],
            reason: None,
            note: None,
            failed_by: None,
            since: 0.25,
            started_at: None,
            ready_at: None,
            finished_at: None,
            waited: None,
            ran: None,
            waiting_since: Some(2.0),
            owner: None,
            restarts: 0,
            last_failure: None,
            restarted_at: Vec::new(),
        };
        let dep = unit.dependencies[0].clone();
        let failed = UnitView {
            unit: "c".into(),
            status: Status::Failed,
            startable: false,
            dependencies: vec![DepView {
                unit: "b".into(),
                status: Status::Failed,
                soft: false,
                satisfied: false,
                since: 1.0,
            }],
            reason: Some("dependency b failed: exit status 2".into()),
            note: None,
            failed_by: Some("b".into()),
            since: 2.0,
            started_at: None,
            ready_at: None,
            finished_at: Some(2.0),
            waited: None,
            ran: None,
            waiting_since: None,
            owner: None,
            restarts: 0,
            last_failure: None,
            restarted_at: Vec::new(),
        };
        let service = UnitView {
            unit: "db".into(),
            status: Status::Completed,
            startable: true,
            dependencies: vec![],
            reason: None,
            note: Some("stopped".into()),
            failed_by: None,
            since: 9.5,
            started_at: Some(1.0),
            ready_at: Some(2.2),
            finished_at: Some(9.5),
            waited: Some(0.0),
            ran: Some(8.5),
            waiting_since: None,
            owner: None,
            restarts: 0,
            last_failure: None,
            restarted_at: Vec::new(),
        };
        let cases = [
            (
                Body::Pong { version: "0.1.0".into(), protocol: 2, pid: Some(42) },
                r#"{"ok":true,"instance":"i1","result":"pong","version":"0.1.0","protocol":2,"pid":42}"#,
            ),
            (
                Body::Ready { after: 1.2, already: false },
                r#"{"ok":true,"instance":"i1","result":"ready","after":1.2,"already":false}"#,
            ),
            (
                Body::Ready { after: 1.2, already: true },
                r#"{"ok":true,"instance":"i1","result":"ready","after":1.2,"already":true}"#,
            ),
            (
                Body::StoppedWaiting { waited: Some(2.5) },
                r#"{"ok":true,"instance":"i1","result":"stopped_waiting","waited":2.5}"#,
            ),
            (
                Body::StoppedWaiting { waited: None },
                r#"{"ok":true,"instance":"i1","result":"stopped_waiting","waited":null}"#,
            ),
            (
                Body::Status { now: 10.0, unit: Box::new(service) },
                r#"{"ok":true,"instance":"i1","result":"status","now":10.0,"unit":{"unit":"db","status":"completed","startable":true,"dependencies":[],"reason":null,"note":"stopped","failed_by":null,"since":9.5,"started_at":1.0,"ready_at":2.2,"finished_at":9.5,"waited":0.0,"ran":8.5,"waiting_since":null,"owner":null}}"#,
            ),
            (
                Body::Wanted { added: 2, registered: true },
                r#"{"ok":true,"instance":"i1","result":"wanted","added":2,"registered":true}"#,
            ),
            (
                Body::Started { waited: 2.9, waited_for: vec!["a".into()] },
                r#"{"ok":true,"instance":"i1","result":"started","waited":2.9,"waited_for":["a"]}"#,
            ),
            (
                Body::Blocked { now: 3.0, unmet: vec![dep], near: Vec::new() },
                r#"{"ok":true,"instance":"i1","result":"blocked","now":3.0,"unmet":[{"unit":"a","status":"started","soft":false,"satisfied":false,"since":1.5}]}"#,
            ),
            (
                Body::DependencyFailed {
                    dependency: "a".into(),
                    reason: Some("exit status 2".into()),
                },
                r#"{"ok":true,"instance":"i1","result":"dependency_failed","dependency":"a","reason":"exit status 2"}"#,
            ),
            (
                Body::Completed { ran: Some(1.0), abandoned: None },
                r#"{"ok":true,"instance":"i1","result":"completed","ran":1.0}"#,
            ),
            (
                Body::Failed { ran: None },
                r#"{"ok":true,"instance":"i1","result":"failed","ran":null}"#,
            ),
            (
                Body::Status { now: 3.0, unit: Box::new(unit.clone()) },
                r#"{"ok":true,"instance":"i1","result":"status","now":3.0,"unit":{"unit":"b","status":"pending","startable":false,"dependencies":[{"unit":"a","status":"started","soft":false,"satisfied":false,"since":1.5}],"reason":null,"note":null,"failed_by":null,"since":0.25,"started_at":null,"ready_at":null,"finished_at":null,"waited":null,"ran":null,"waiting_since":2.0,"owner":null}}"#,
            ),
            (
                Body::List { now: 3.0, units: vec![failed] },
                r#"{"ok":true,"instance":"i1","result":"list","now":3.0,"units":[{"unit":"c","status":"failed","startable":false,"dependencies":[{"unit":"b","status":"failed","soft":false,"satisfied":false,"since":1.0}],"reason":"dependency b failed: exit status 2","note":null,"failed_by":"b","since":2.0,"started_at":null,"ready_at":null,"finished_at":2.0,"waited":null,"ran":null,"waiting_since":null,"owner":null}]}"#,
            ),
            (
                Body::List { now: 3.0, units: vec![] },
                r#"{"ok":true,"instance":"i1","result":"list","now":3.0,"units":[]}"#,
            ),
            (
                Body::Error { error: ErrorBody::new(ErrorKind::Cycle, "cycle: a -> b -> a") },
                r#"{"ok":false,"instance":"i1","result":"error","error":{"kind":"cycle","message":"cycle: a -> b -> a"}}"#,
            ),
            (
                Body::Error {
                    error: ErrorBody::new(
                        ErrorKind::OtherInstance,
                        "complete x belongs to the server instance i0, which accepted its start; this server is i1 (restarted without --state since): not recorded",
                    ),
                },
                r#"{"ok":false,"instance":"i1","result":"error","error":{"kind":"other_instance","message":"complete x belongs to the server instance i0, which accepted its start; this server is i1 (restarted without --state since): not recorded"}}"#,
            ),
        ];
        for (body, text) in cases {
            let response = Response::new("i1", body);
            assert_eq!(String::from_utf8(response.to_line()).unwrap(), format!("{text}\n"));
            assert_eq!(parse_response(text.as_bytes()).unwrap(), response);
        }
    }

    #[test]
    fn statuses_and_error_kinds_are_pinned() {
        use Status::*;
        for status in [NotRegistered, Pending, Started, Ready, Completed, Failed] {
            let dep =
                DepView { unit: "a".into(), status, soft: false, satisfied: false, since: 0.0 };
            let text = serde_json::to_string(&dep).unwrap();
            let name = status.as_str();
            let want = format!(
                r#"{{"unit":"a","status":"{name}","soft":false,"satisfied":false,"since":0.0}}"#
            );
            assert_eq!(text, want);
            let value: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(dep_view(&Object::new(&value).unwrap()).unwrap(), dep);
        }
        let kinds = [
            (ErrorKind::BadRequest, "bad_request"),
            (ErrorKind::UnknownOp, "unknown_op"),
            (ErrorKind::LineTooLong, "line_too_long"),
            (ErrorKind::BadName, "bad_name"),
            (ErrorKind::SelfDependency, "self_dependency"),
            (ErrorKind::Cycle, "cycle"),
            (ErrorKind::AlreadyStarted, "already_started"),
            (ErrorKind::AlreadyCompleted, "already_completed"),
            (ErrorKind::NotRunning, "not_running"),
            (ErrorKind::BadNote, "bad_note"),
            (ErrorKind::Limit, "limit"),
            (ErrorKind::Busy, "busy"),
            (ErrorKind::Forbidden, "forbidden"),
            (ErrorKind::Journal, "journal"),
            (ErrorKind::OtherInstance, "other_instance"),
        ];
        for (kind, name) in kinds {
            let text = serde_json::to_string(&kind).unwrap();
            assert_eq!(text, format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<ErrorKind>(&text).unwrap(), kind);
        }
        // A kind from a newer server still parses, so its message shows.
        assert_eq!(
            ErrorKind::deserialize(&Value::from("from_the_future")).unwrap(),
            ErrorKind::Other
        );
    }

    #[test]
    fn state_errors_keep_their_kinds() {
        use state::Error as E;
        let unit = || "a".to_owned();
        let cases = [
            (E::BadName { name: unit(), rule: "r" }, ErrorKind::BadName),
            (E::SelfDependency { unit: unit() }, ErrorKind::SelfDependency),
            (E::Cycle { path: vec![unit(), unit()] }, ErrorKind::Cycle),
            (E::AlreadyStarted { unit: unit() }, ErrorKind::AlreadyStarted),
            (E::AlreadyCompleted { unit: unit() }, ErrorKind::AlreadyCompleted),
            (E::NotRunning { unit: unit(), status: Status::Pending }, ErrorKind::NotRunning),
            (E::BadNote { unit: unit(), rule: "r" }, ErrorKind::BadNote),
            (E::TooManyUnits, ErrorKind::Limit),
            (E::TooManyEdges, ErrorKind::Limit),
        ];
        for (error, kind) in cases {
            let message = error.to_string();
            assert_eq!(ErrorBody::from(error), ErrorBody { kind, message });
        }
    }

    #[test]
    fn lines_are_capped() {
        let mut buf = Vec::new();
        let mut ok = io::Cursor::new(format!("{}\nnext\nlast", "x".repeat(MAX_LINE)));
        assert!(read_line(&mut ok, &mut buf).unwrap());
        assert_eq!(buf.len(), MAX_LINE);
        assert!(read_line(&mut ok, &mut buf).unwrap());
        assert_eq!(buf, b"next");
        assert!(read_line(&mut ok, &mut buf).unwrap());
        assert_eq!(buf, b"last");
        assert!(!read_line(&mut ok, &mut buf).unwrap());
        let mut long = io::BufReader::with_capacity(7, io::Cursor::new("y".repeat(MAX_LINE + 1)));
        let err = read_line(&mut long, &mut buf).unwrap_err();
        assert!(matches!(err, LineError::TooLong));
        assert_eq!(err.to_string(), "line too long");
    }
}

#[cfg(test)]
mod fuzz;
