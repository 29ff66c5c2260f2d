//! The state file of `serve --state FILE`: an append-only journal of every
//! accepted state change, replayed when a server starts on it.
//!
//! The state machine is pure and deterministic, so replaying the accepted
//! requests at their recorded times rebuilds exactly the state that was
//! lost. The format is JSON lines: a header naming the format, the
//! instance id (kept, so waiting clients carry on) and the wall-clock
//! origin of the server's timeline, then one request per line with its
//! time in milliseconds:
//!
//! ```text
//! {"unitsync_journal":1,"instance":"23666c9475de498b","origin_ms":1795300000000}
//! {"t":352,"op":"want","unit":"b","deps":["a"],"soft":false}
//! ```
//!
//! A line is written with one `write` before the request is answered, so a
//! server killed at any moment loses nothing it acknowledged; a torn last
//! line (the kill came mid-write) is dropped on replay and cut off before
//! appending. A write that fails (a full disk) is cut off at once, and the
//! server rebuilds its state from what the file holds, so the state never
//! has a change the file lacks. Without `--fsync`, lines reach the kernel
//! but not the disk: they survive the process, not the machine, which is
//! right for a file on a tmpfs such as `/run`, where the state should
//! reset on reboot anyway.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{Value, json};

use crate::duration;
use crate::protocol::{self, Request};
use crate::state::{Owner, Owners, Snapshot, Status, UnitRecord, WaitRecord};

const FORMAT: u32 = 1;

#[derive(Serialize)]
struct Header {
    unitsync_journal: u32,
    instance: String,
    origin_ms: u64,
}

impl Header {
    /// Read through a `Value` and [`protocol::Object`], as responses are:
    /// less code than a derived `Deserialize`.
    fn parse(line: &[u8]) -> Result<Header, String> {
        let value: serde_json::Value = serde_json::from_slice(line).map_err(|e| e.to_string())?;
        let f = protocol::Object::new(&value)?;
        Ok(Header {
            unitsync_journal: f.u32("unitsync_journal")?,
            instance: f.string("instance")?,
            origin_ms: f.u64("origin_ms")?,
        })
    }
}

/// Parses one entry line: its time in milliseconds (`t`), then the rest of
/// it as a request, by the same parser as the socket's (which skips `t`).
fn parse_entry(line: &[u8]) -> Result<(Duration, Request), String> {
    let value: serde_json::Value = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    let t = protocol::Object::new(&value)?.u64("t")?;
    let request = protocol::parse_request(line).map_err(|e| e.message)?;
    Ok((Duration::from_millis(t), request))
}

/// How a snapshot's first line begins (see [`Journal::compact`]).
const SNAPSHOT: &[u8] = b"{\"snapshot\":";

/// The size past which a journal is compacted (and at least 4x its last
/// snapshot): 1 MiB, or `$UNITSYNC_COMPACT_BYTES`, which exists for the
/// tests (to compact often) and is not otherwise documented.
pub fn compact_bytes() -> u64 {
    std::env::var("UNITSYNC_COMPACT_BYTES").ok().and_then(|v| v.parse().ok()).unwrap_or(1 << 20)
}

/// Durations in a snapshot are nanoseconds: it keeps the state exactly.
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn snapshot_line(snapshot: &Snapshot, now: Duration) -> Vec<u8> {
    let head = json!({
        "t_ns": nanos(now),
        "lowest": snapshot.lowest,
        "highest": snapshot.highest,
        "units": snapshot.units.len(),
    });
    serde_json::to_vec(&json!({ "snapshot": head })).expect("a snapshot serializes")
}

fn owner_json(o: Owner) -> Value {
    json!({ "pid": o.pid, "start": o.start })
}

fn record_line(r: &UnitRecord) -> Vec<u8> {
    let opt = |d: Option<Duration>| d.map(nanos);
    let record = json!({
        "name": r.name,
        "status": r.status.as_str(),
        "deps": r.deps,
        "dependents": r.dependents,
        "reason": r.reason,
        "note": r.note,
        "failed_by": r.failed_by,
        "since": nanos(r.since),
        "started_at": opt(r.started_at),
        "ready_at": opt(r.ready_at),
        "finished_at": opt(r.finished_at),
        "waited": opt(r.waited),
        "wait": r.wait.as_ref().map(|w| json!({
            "since": nanos(w.since),
            "unmet": w.unmet,
            "polled": nanos(w.polled),
            "poll": nanos(w.poll),
        })),
        "owner": r.owner.as_ref().map(|o| json!({
            "owner": owner_json(o.owner),
            "name": o.name,
            "via": o.via.iter().map(|&v| owner_json(v)).collect::<Vec<_>>(),
        })),
        "restarts": r.restarts,
        "last_failure": r.last_failure,
        "restarted_at": r.restarted_at.iter().map(|&d| nanos(d)).collect::<Vec<_>>(),
        "ord": r.ord,
    });
    serde_json::to_vec(&json!({ "record": record })).expect("a record serializes")
}

/// The snapshot's first line: its time, its order bounds, and how many
/// unit records follow.
fn parse_snapshot(line: &[u8]) -> Result<(Duration, Snapshot, usize), String> {
    let v: Value = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    let head = &v["snapshot"];
    let int = |name: &str| head[name].as_i64().ok_or_else(|| format!("snapshot: no {name}"));
    let at = Duration::from_nanos(head["t_ns"].as_u64().ok_or("snapshot: no t_ns")?);
    let count = usize::try_from(int("units")?).map_err(|e| e.to_string())?;
    let snapshot = Snapshot { units: Vec::new(), lowest: int("lowest")?, highest: int("highest")? };
    Ok((at, snapshot, count))
}

fn parse_record(line: &[u8]) -> Result<UnitRecord, String> {
    let v: Value = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    let r = &v["record"];
    let bad = |what: &str| format!("unit record: bad {what}");
    let string = |x: &Value, what: &str| x.as_str().map(str::to_owned).ok_or_else(|| bad(what));
    let opt_string = |x: &Value, what: &str| match x {
        Value::Null => Ok(None),
        x => string(x, what).map(Some),
    };
    let dur = |x: &Value, what: &str| x.as_u64().map(Duration::from_nanos).ok_or_else(|| bad(what));
    let opt_dur = |x: &Value, what: &str| match x {
        Value::Null => Ok(None),
        x => dur(x, what).map(Some),
    };
    let strings = |x: &Value, what: &str| -> Result<Vec<String>, String> {
        x.as_array().ok_or_else(|| bad(what))?.iter().map(|s| string(s, what)).collect()
    };
    let owner = |x: &Value| -> Result<Owner, String> {
        let pid =
            x["pid"].as_u64().and_then(|p| u32::try_from(p).ok()).ok_or_else(|| bad("pid"))?;
        Ok(Owner { pid, start: x["start"].as_u64().ok_or_else(|| bad("start"))? })
    };
    let status_name = string(&r["status"], "status")?;
    let status = [
        Status::NotRegistered,
        Status::Pending,
        Status::Started,
        Status::Ready,
        Status::Completed,
        Status::Failed,
    ]
    .into_iter()
    .find(|s| s.as_str() == status_name)
    .ok_or_else(|| bad("status"))?;
    let deps = r["deps"]
        .as_array()
        .ok_or_else(|| bad("deps"))?
        .iter()
        .map(|d| Ok((string(&d[0], "deps")?, d[1].as_bool().ok_or_else(|| bad("deps"))?)))
        .collect::<Result<_, String>>()?;
    let wait = match &r["wait"] {
        Value::Null => None,
        w => Some(WaitRecord {
            since: dur(&w["since"], "wait")?,
            unmet: strings(&w["unmet"], "wait")?,
            polled: dur(&w["polled"], "wait")?,
            poll: dur(&w["poll"], "wait")?,
        }),
    };
    let owner = match &r["owner"] {
        Value::Null => None,
        o => Some(Owners {
            owner: owner(&o["owner"])?,
            name: opt_string(&o["name"], "owner")?,
            via: o["via"]
                .as_array()
                .ok_or_else(|| bad("via"))?
                .iter()
                .map(owner)
                .collect::<Result<_, _>>()?,
        }),
    };
    Ok(UnitRecord {
        name: string(&r["name"], "name")?,
        status,
        deps,
        dependents: strings(&r["dependents"], "dependents")?,
        reason: opt_string(&r["reason"], "reason")?,
        note: opt_string(&r["note"], "note")?,
        failed_by: opt_string(&r["failed_by"], "failed_by")?,
        since: dur(&r["since"], "since")?,
        started_at: opt_dur(&r["started_at"], "started_at")?,
        ready_at: opt_dur(&r["ready_at"], "ready_at")?,
        finished_at: opt_dur(&r["finished_at"], "finished_at")?,
        waited: opt_dur(&r["waited"], "waited")?,
        wait,
        owner,
        // Absent from the snapshots of versions before restarts.
        restarts: match &r["restarts"] {
            Value::Null => 0,
            n => n.as_u64().and_then(|n| u32::try_from(n).ok()).ok_or_else(|| bad("restarts"))?,
        },
        last_failure: opt_string(&r["last_failure"], "last_failure")?,
        restarted_at: match &r["restarted_at"] {
            Value::Null => Vec::new(),
            list => list
                .as_array()
                .ok_or_else(|| bad("restarted_at"))?
                .iter()
                .map(|d| dur(d, "restarted_at"))
                .collect::<Result<_, _>>()?,
        },
        ord: r["ord"].as_i64().ok_or_else(|| bad("ord"))?,
    })
}

#[derive(Debug)]
pub enum Error {
    Io {
        path: PathBuf,
        err: io::Error,
    },
    NotAJournal {
        path: PathBuf,
    },
    Corrupt {
        path: PathBuf,
        line: usize,
        detail: String,
    },
    /// Others may write it (or another user owns it): what it holds could
    /// be forged.
    NotPrivate {
        path: PathBuf,
        mode: u32,
        uid: u32,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { path, err } => write!(f, "state file {}: {err}", path.display()),
            Error::NotAJournal { path } => write!(
                f,
                "state file {} exists but is not a unitsync state file; refusing to touch it: \
                 remove it or choose another --state path",
                path.display()
            ),
            Error::NotPrivate { path, mode, uid } => write!(
                f,
                "state file {} is not private (mode {mode:o}, owner uid {uid}): others could \
                 forge its changes; make it yours and private (chown, then chmod 600 {}) or \
                 choose another --state path",
                path.display(),
                path.display()
            ),
            Error::Corrupt { path, line, detail } => write!(
                f,
                "state file {} is damaged at line {line} ({detail}); \
                 move it away to start with an empty state",
                path.display()
            ),
        }
    }
}

// Messages name their causes (they are written for a log), so no
// `source()`: an error reporter walking the chain would say each twice.
impl std::error::Error for Error {}

/// An open journal, positioned for appending.
pub struct Journal {
    file: File,
    path: PathBuf,
    fsync: bool,
    /// Its header, written again at the top of a compacted file.
    header: Vec<u8>,
    /// The size of the last snapshot written: the journal is compacted once
    /// it is four times that (and over [`compact_bytes`]).
    snapshot_len: u64,
    /// After a compaction that failed (a full disk), none is tried again
    /// until the file has grown past this.
    /// `serve --group`: the group that may read it, with its snapshots.
    group: Option<u32>,
    retry_after: u64,
    line: Vec<u8>,
    /// The length of the file's whole lines: where the next line goes.
    len: u64,
    /// A failed write may have left part of a line past `len`.
    torn: bool,
}

/// What a journal held when it was opened.
pub struct Recovered {
    pub instance: String,
    /// When the server's timeline began (its `now` is measured from here).
    pub origin: SystemTime,
    /// The state a compaction wrote, and when: the entries apply to it.
    pub snapshot: Option<(Duration, Snapshot)>,
    /// The accepted requests, in order, with their times.
    pub entries: Vec<(Duration, Request)>,
    /// The line of the first entry (for errors).
    pub first_line: usize,
}

impl Journal {
    /// Opens `path`, creating it with a header for `fresh_instance` if it
    /// is missing or empty, and reads back what it holds.
    ///
    /// The file is private (README.md, "Durability"): created 0600, or
    /// 0640 in `group` (`serve --group`), since reasons are often a
    /// script's error output. An existing file that others may write is
    /// refused; one they may only read is made private.
    pub fn open(
        path: &Path,
        fresh_instance: &str,
        fsync: bool,
        group: Option<u32>,
    ) -> Result<(Journal, Recovered), Error> {
        let io_err = |err| Error::Io { path: path.to_owned(), err };
        let file =
            open_private(path, group, OpenOptions::new().read(true).append(true).create(true))
                .map_err(io_err)?;
        let meta = file.metadata().map_err(io_err)?;
        let mode = meta.mode() & 0o777;
        let me = nix::unistd::geteuid().as_raw();
        if mode & 0o022 != 0 || (meta.uid() != me && meta.uid() != 0) {
            return Err(Error::NotPrivate { path: path.to_owned(), mode, uid: meta.uid() });
        }
        let mut journal = Journal {
            file,
            path: path.to_owned(),
            fsync,
            group,
            header: Vec::new(),
            snapshot_len: 0,
            retry_after: 0,
            line: Vec::new(),
            len: 0,
            torn: false,
        };
        let (recovered, valid_len) = journal.read()?;
        // Only a file that is ours (a journal, or empty) is tightened.
        if mode != private_mode(group) || group.is_some_and(|gid| meta.gid() != gid) {
            make_private(&journal.file, group).map_err(io_err)?;
        }
        let recovered = match recovered {
            Some(recovered) => {
                // Cut a torn last line so that the next append starts clean.
                if journal.file.metadata().map_err(io_err)?.len() != valid_len {
                    journal.file.set_len(valid_len).map_err(io_err)?;
                }
                journal.len = valid_len;
                recovered
            }
            None => {
                let origin = SystemTime::now();
                let header = Header {
                    unitsync_journal: FORMAT,
                    instance: fresh_instance.to_owned(),
                    origin_ms: origin
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis() as u64),
                };
                journal.file.set_len(0).map_err(io_err)?;
                let line = serde_json::to_vec(&header).expect("a header serializes");
                journal.header.clone_from(&line);
                journal.write_line(line)?;
                // Keep millisecond precision consistent with the header.
                let origin = UNIX_EPOCH + Duration::from_millis(header.origin_ms);
                Recovered {
                    instance: header.instance,
                    origin,
                    snapshot: None,
                    entries: Vec::new(),
                    first_line: 2,
                }
            }
        };
        Ok((journal, recovered))
    }

    /// Reads the journal. Returns `None` for an empty file, and the length
    /// of the valid prefix.
    fn read(&mut self) -> Result<(Option<Recovered>, u64), Error> {
        let io_err = |err| Error::Io { path: self.path.clone(), err };
        self.file.seek(SeekFrom::Start(0)).map_err(io_err)?;
        let mut reader = BufReader::new(&self.file);
        let mut lines: Vec<Vec<u8>> = Vec::new();
        loop {
            let mut line = Vec::new();
            if reader.read_until(b'\n', &mut line).map_err(io_err)? == 0 {
                break;
            }
            lines.push(line);
        }
        let Some(first) = lines.first() else { return Ok((None, 0)) };
        let header = match Header::parse(first) {
            Ok(h) if first.ends_with(b"\n") => h,
            // A header torn by a kill during the very first write: nothing
            // was ever acknowledged, so start afresh.
            _ if lines.len() == 1
                && !first.ends_with(b"\n")
                && first.starts_with(b"{\"unitsync_journal\"") =>
            {
                return Ok((None, 0));
            }
            _ => return Err(Error::NotAJournal { path: self.path.clone() }),
        };
        if header.unitsync_journal != FORMAT {
            return Err(Error::Corrupt {
                path: self.path.clone(),
                line: 1,
                detail: format!("format {} is not {FORMAT}", header.unitsync_journal),
            });
        }
        self.header = first.strip_suffix(b"\n").unwrap_or(first).to_vec();
        let mut valid_len = first.len() as u64;
        let mut entries = Vec::new();
        let last = lines.len() - 1;
        // A compacted file: its snapshot comes first, whole (it was renamed
        // into place complete).
        let mut snapshot = None;
        let mut first_line = 2;
        if lines.get(1).is_some_and(|l| l.starts_with(SNAPSHOT)) {
            let corrupt = |line: usize, detail: String| Error::Corrupt {
                path: self.path.clone(),
                line,
                detail,
            };
            let (at, mut snap, count) = parse_snapshot(&lines[1]).map_err(|e| corrupt(2, e))?;
            valid_len += lines[1].len() as u64;
            for i in 2..2 + count {
                let line =
                    lines.get(i).ok_or_else(|| corrupt(i + 1, "snapshot cut short".into()))?;
                snap.units.push(parse_record(line).map_err(|e| corrupt(i + 1, e))?);
                valid_len += line.len() as u64;
            }
            self.snapshot_len = valid_len;
            first_line = 3 + count;
            snapshot = Some((at, snap));
        }
        for (i, line) in lines.iter().enumerate().skip(first_line - 1) {
            let complete = line.ends_with(b"\n");
            match parse_entry(line) {
                Ok(entry) if complete => {
                    entries.push(entry);
                    valid_len += line.len() as u64;
                }
                // Only the last line may be torn; it was never acknowledged.
                _ if i == last && !complete => break,
                Ok(_) => unreachable!("complete is checked above"),
                Err(e) => {
                    return Err(Error::Corrupt { path: self.path.clone(), line: i + 1, detail: e });
                }
            }
        }
        let origin = UNIX_EPOCH + Duration::from_millis(header.origin_ms);
        let recovered =
            Recovered { instance: header.instance, origin, snapshot, entries, first_line };
        Ok((Some(recovered), valid_len))
    }

    /// Appends one accepted request, made at `now`.
    pub fn append(&mut self, request: &Request, now: Duration) -> Result<(), Error> {
        // `{"t":352,` then the request's own line past its opening brace (a
        // request is never an empty object: it always has its "op").
        let mut line = format!("{{\"t\":{},", duration::millis(now)).into_bytes();
        let mut request = request.to_line();
        request.pop();
        line.extend_from_slice(&request[1..]);
        self.write_line(line)
    }

    /// Appends one line, or nothing: a write that fails (a full disk)
    /// is cut off again, so the file holds whole lines only.
    fn write_line(&mut self, mut line: Vec<u8>) -> Result<(), Error> {
        line.push(b'\n');
        self.line = line;
        let written = self.cut_torn().and_then(|()| {
            // One write call for the whole line: a kill tears at most this line.
            self.file.write_all(&self.line)?;
            if self.fsync {
                self.file.sync_data()?;
            }
            Ok(())
        });
        match written {
            Ok(()) => {
                self.len += self.line.len() as u64;
                Ok(())
            }
            Err(err) => {
                self.torn = true;
                // Retried before the next line if it fails now.
                let _ = self.cut_torn();
                Err(Error::Io { path: self.path.clone(), err })
            }
        }
    }

    /// Cuts off what a failed write left past the last whole line.
    fn cut_torn(&mut self) -> io::Result<()> {
        if self.torn {
            self.file.set_len(self.len)?;
            self.torn = false;
        }
        Ok(())
    }

    /// What the file holds now, read back from it.
    pub fn reread(&mut self) -> Result<Option<Recovered>, Error> {
        Ok(self.read()?.0)
    }

    /// Whether the file has grown enough to be compacted: past
    /// max([`compact_bytes`], 4x its last snapshot).
    pub fn compaction_due(&self) -> bool {
        self.len > compact_bytes().max(self.snapshot_len.saturating_mul(4))
            && self.len > self.retry_after
    }

    /// Replaces the file by `snapshot`, the state at `now`: written to a
    /// temporary file beside it, synced, renamed over it, the directory
    /// synced; then appends go to the new file. If anything fails before
    /// the rename, the old file stays as it was (it holds every change
    /// too) and the error is returned; no compaction is tried again until
    /// the file has grown by [`compact_bytes`] more.
    pub fn compact(&mut self, snapshot: &Snapshot, now: Duration) -> Result<(u64, u64), Error> {
        let before = self.len;
        let temp = self.path.with_file_name(format!(
            ".{}.compact",
            self.path.file_name().map_or("state".into(), |n| n.to_string_lossy())
        ));
        let written = self.write_snapshot(&temp, snapshot, now);
        let (file, len) = match written {
            Ok(done) => done,
            Err(err) => {
                let _ = fs::remove_file(&temp);
                self.retry_after = self.len.saturating_add(compact_bytes());
                return Err(Error::Io { path: temp, err });
            }
        };
        if let Err(err) = fs::rename(&temp, &self.path) {
            let _ = fs::remove_file(&temp);
            self.retry_after = self.len.saturating_add(compact_bytes());
            return Err(Error::Io { path: self.path.clone(), err });
        }
        // The rename is in place: both files held every change, so from
        // here on the new one is the journal, whatever the directory's sync says.
        (self.file, self.len, self.snapshot_len, self.torn) = (file, len, len, false);
        let dir =
            self.path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|err| Error::Io { path: dir.to_owned(), err })?;
        Ok((before, len))
    }

    /// The header and `snapshot` into a new file at `temp`, synced; the
    /// file, open for appending, and its length.
    fn write_snapshot(
        &self,
        temp: &Path,
        snapshot: &Snapshot,
        now: Duration,
    ) -> io::Result<(File, u64)> {
        let _ = fs::remove_file(temp);
        let file = open_private(
            temp,
            self.group,
            OpenOptions::new().read(true).append(true).create_new(true),
        )?;
        make_private(&file, self.group)?;
        let mut out = io::BufWriter::new(&file);
        let mut len = 0u64;
        let mut line = |out: &mut io::BufWriter<&File>, mut bytes: Vec<u8>| {
            bytes.push(b'\n');
            len += bytes.len() as u64;
            out.write_all(&bytes)
        };
        line(&mut out, self.header.clone())?;
        line(&mut out, snapshot_line(snapshot, now))?;
        for record in &snapshot.units {
            line(&mut out, record_line(record))?;
        }
        out.flush()?;
        drop(out);
        file.sync_all()?;
        Ok((file, len))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The journal's mode: private to the server's user, readable by its
/// `--group` if it has one.
fn private_mode(group: Option<u32>) -> u32 {
    if group.is_some() { 0o640 } else { 0o600 }
}

/// Opens with `options`, a file it creates getting the private mode from
/// the start (never the umask's 0644, not even for a moment).
fn open_private(path: &Path, group: Option<u32>, options: &mut OpenOptions) -> io::Result<File> {
    options.mode(private_mode(group)).open(path)
}

/// Gives an open journal file its group and private mode.
fn make_private(file: &File, group: Option<u32>) -> io::Result<()> {
    if let Some(gid) = group {
        nix::unistd::fchown(file, None, Some(nix::unistd::Gid::from_raw(gid)))?;
    }
    file.set_permissions(fs::Permissions::from_mode(private_mode(group)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("unitsync-journal-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("state")
    }

    fn want(unit: &str, dep: &str) -> Request {
        Request::Want { unit: unit.into(), deps: vec![dep.into()], soft: false }
    }

    #[test]
    fn entries_come_back_in_order_with_their_instance() {
        let path = temp("order");
        let (mut journal, recovered) = Journal::open(&path, "i1", false, None).unwrap();
        assert!(recovered.entries.is_empty());
        journal.append(&want("b", "a"), Duration::from_millis(5)).unwrap();
        journal
            .append(
                &Request::Complete { unit: "a".into(), note: None, instance: None },
                Duration::from_millis(9),
            )
            .unwrap();
        drop(journal);
        let (_, recovered) = Journal::open(&path, "other", false, None).unwrap();
        assert_eq!(recovered.instance, "i1");
        assert_eq!(
            recovered.entries,
            vec![
                (Duration::from_millis(5), want("b", "a")),
                (
                    Duration::from_millis(9),
                    Request::Complete { unit: "a".into(), note: None, instance: None }
                )
            ]
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("{\"unitsync_journal\":1,\"instance\":\"i1\",\"origin_ms\":"),
            "{text}"
        );
        assert!(text.ends_with("\n{\"t\":5,\"op\":\"want\",\"unit\":\"b\",\"deps\":[\"a\"],\"soft\":false}\n{\"t\":9,\"op\":\"complete\",\"unit\":\"a\"}\n"), "{text}");
    }

    #[test]
    fn entries_in_any_field_order_with_defaults_replay() {
        // What older servers wrote, and what a person might: the request
        // parser's rules apply (fields in any order, defaults, extras).
        let path = temp("order-free");
        let lines = [
            r#"{"unitsync_journal":1,"instance":"i1","origin_ms":1795300000000}"#,
            r#"{"t":1,"op":"want","unit":"b","deps":["a"],"soft":false}"#,
            r#"{"t":2,"op":"want","unit":"c"}"#,
            r#"{"op":"fail","unit":"a","t":3,"reason":"exit status 2","extra":[1]}"#,
            r#"{"t":4,"op":"fail","unit":"a"}"#,
        ];
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        let (_, recovered) = Journal::open(&path, "x", false, None).unwrap();
        let ms = Duration::from_millis;
        assert_eq!(
            recovered.entries,
            vec![
                (ms(1), want("b", "a")),
                (ms(2), Request::Want { unit: "c".into(), deps: vec![], soft: false }),
                (
                    ms(3),
                    Request::Fail {
                        unit: "a".into(),
                        reason: Some("exit status 2".into()),
                        instance: None
                    }
                ),
                (ms(4), Request::Fail { unit: "a".into(), reason: None, instance: None }),
            ]
        );
    }

    #[test]
    fn an_entry_without_a_time_or_a_known_op_is_damage() {
        for (entry, detail) in [
            (r#"{"op":"list"}"#, "missing field `t`"),
            (r#"{"t":1,"op":"launch"}"#, "unknown op \"launch\""),
            (r#"{"t":1,"op":"start"}"#, "op \"start\" needs a \"unit\""),
        ] {
            let path = temp("no-time");
            let header = r#"{"unitsync_journal":1,"instance":"i1","origin_ms":0}"#;
            std::fs::write(&path, format!("{header}\n{entry}\n")).unwrap();
            let err = Journal::open(&path, "x", false, None).err().unwrap().to_string();
            assert!(err.contains("is damaged at line 2 ("), "{err}");
            assert!(err.contains(detail), "{err}");
        }
    }

    #[test]
    fn a_torn_last_line_is_dropped_and_cut_off() {
        let path = temp("torn");
        let (mut journal, _) = Journal::open(&path, "i1", true, None).unwrap();
        journal.append(&want("b", "a"), Duration::ZERO).unwrap();
        drop(journal);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"t\":7,\"op\":\"compl").unwrap();
        let (mut journal, recovered) = Journal::open(&path, "x", false, None).unwrap();
        assert_eq!(recovered.entries.len(), 1);
        journal
            .append(
                &Request::Complete { unit: "a".into(), note: None, instance: None },
                Duration::ZERO,
            )
            .unwrap();
        let (_, recovered) = Journal::open(&path, "x", false, None).unwrap();
        assert_eq!(recovered.entries.len(), 2);
    }

    #[test]
    fn the_journal_and_its_snapshots_are_private() {
        let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o777;
        // Created 0600 whatever the umask (the test process has 022).
        let path = temp("private");
        let (mut journal, _) = Journal::open(&path, "i1", false, None).unwrap();
        assert_eq!(mode(&path), 0o600);
        // A compaction's file replaces it with the same mode.
        let snapshot = crate::state::State::new().snapshot();
        journal.compact(&snapshot, Duration::ZERO).unwrap();
        assert_eq!(mode(&path), 0o600);
        drop(journal);
        // One that others may read (as earlier versions made it) is made
        // private; one they may write is refused and left as it was.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        Journal::open(&path, "i1", false, None).unwrap();
        assert_eq!(mode(&path), 0o600);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let err = Journal::open(&path, "i1", false, None).err().unwrap().to_string();
        assert!(err.contains("is not private (mode 666"), "{err}");
        assert!(err.contains("chmod 600"), "{err}");
        assert_eq!(mode(&path), 0o666);
        // With a group: 0640 in that group (our own gid, so no root needed).
        let gid = nix::unistd::getegid().as_raw();
        let grouped = temp("grouped");
        let (mut journal, _) = Journal::open(&grouped, "i1", false, Some(gid)).unwrap();
        assert_eq!(mode(&grouped), 0o640);
        journal.compact(&snapshot, Duration::ZERO).unwrap();
        assert_eq!(mode(&grouped), 0o640);
        assert_eq!(std::fs::metadata(&grouped).unwrap().gid(), gid);
    }

    #[test]
    fn a_foreign_or_damaged_file_is_refused_and_untouched() {
        let path = temp("foreign");
        std::fs::write(&path, "precious data\n").unwrap();
        let err = Journal::open(&path, "i", false, None).err().unwrap();
        assert!(
            err.to_string().contains("is not a unitsync state file; refusing to touch it"),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious data\n");

        let (mut journal, _) = Journal::open(&temp("damaged"), "i", false, None).unwrap();
        journal.append(&want("b", "a"), Duration::ZERO).unwrap();
        let damaged = journal.path.clone();
        drop(journal);
        let text = std::fs::read_to_string(&damaged).unwrap();
        std::fs::write(&damaged, format!("{text}garbage\n{{\"t\":1,\"op\":\"list\"}}\n")).unwrap();
        let err = Journal::open(&damaged, "i", false, None).err().unwrap();
        assert!(err.to_string().contains("is damaged at line 3"), "{err}");
    }
}
