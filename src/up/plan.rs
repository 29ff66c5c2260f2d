//! What `up` will run, decided before anything runs: the scripts of `--dir`
//! and the command line, each one's unit and `# unitsync:` header, and the
//! checks that refuse a startup that cannot work (a cycle among the
//! declared edges, an unknown header key, two scripts claiming one unit).
//!
//! Pure but for reading the directory and the first bytes of each script.

use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::{failures_value, health_cond};
use crate::duration;
use crate::envfile;
use crate::readiness::Cond;
use crate::restart::Policy;
use crate::signals::{self, Signal};
use crate::state::{self, State};
use crate::suggest::nearest;
use crate::user;

use super::Error;

/// The directory `up` runs when given no `--dir`, no SCRIPT and no
/// `$UNITSYNC_DIR` (as `/etc/cont-init.d`, `/docker-entrypoint.d`).
pub const DEFAULT_DIR: &str = "/etc/unitsync.d";

/// How much of a script is read to find its header.
const HEAD_BYTES: u64 = 4096;

/// The keys a `# unitsync:` line takes, for the error about any other.
const KEYS: [&str; 15] = [
    "after",
    "soft-after",
    "unit",
    "ready",
    "ready-timeout",
    "stop-timeout",
    "probe-timeout",
    "stop-signal",
    "restart",
    "health",
    "health-interval",
    "health-failures",
    "user",
    "on",
    "env-file",
];

/// A startup script: every one is a unit.
#[derive(Debug, PartialEq)]
pub struct Script {
    pub path: PathBuf,
    /// The name its output lines carry: the file name.
    pub name: String,
    /// Its unit: the file name without its extension, or `unit=`.
    pub unit: String,
    /// Set when the script has a header: `up` runs it as `unitsync run`
    /// does. Without one, the script coordinates itself and `up` ends its
    /// unit from its exit status.
    pub header: Option<Header>,
    /// Why it cannot run, for a file of `--dir` that is not executable.
    pub unrunnable: Option<String>,
    /// The variables of its `env-file=`, read before anything runs.
    pub env: Vec<(String, String)>,
}

/// What a `# unitsync:` header declares, besides the unit's name.
#[derive(Debug, PartialEq, Default)]
pub struct Header {
    pub after: Vec<String>,
    pub soft_after: Vec<String>,
    /// A readiness condition, as `run --ready` takes it.
    pub ready: Option<String>,
    pub ready_timeout: Option<Duration>,
    pub stop_timeout: Option<Duration>,
    /// How long one `exec:` probe may run, as `run --probe-timeout` takes it.
    pub probe_timeout: Option<Duration>,
    /// The first signal of its stop, as `run --stop-signal` takes it.
    pub stop_signal: Option<Signal>,
    /// When its command runs again, as `run --restart` takes it.
    pub restart: Option<Policy>,
    /// Its health check, as `run --health` takes it, and how often and
    /// how many failures in a row fail it.
    pub health: Option<String>,
    pub health_interval: Option<Duration>,
    pub health_failures: Option<u32>,
    /// The user it runs as, as `run --user` takes it (checked by [`check`]).
    pub user: Option<String>,
    /// `on=stop`: run at shutdown, not at startup (README.md, "Stop
    /// scripts").
    pub at_stop: bool,
    /// `env-file=`, as written (relative to the script's directory).
    pub env_file: Option<PathBuf>,
}

impl Script {
    /// The units this script's unit must follow, hard and soft.
    pub fn edges(&self) -> (&[String], &[String]) {
        match &self.header {
            Some(h) => (&h.after, &h.soft_after),
            None => (&[], &[]),
        }
    }

    /// Whether it is a stop script (`on=stop`), run at shutdown.
    pub fn at_stop(&self) -> bool {
        self.header.as_ref().is_some_and(|h| h.at_stop)
    }
}

/// The directory `up` runs when given no `--dir` and no SCRIPT:
/// `$UNITSYNC_DIR` (`env`), which must then be a directory, else
/// [`DEFAULT_DIR`] if it is one. Without either, `up` with a CMD just runs
/// it (None: the init alone); without a CMD there is nothing to do, and the
/// error says what to do.
pub fn default_dir(
    env: Option<&Path>,
    is_dir: impl Fn(&Path) -> bool,
    has_command: bool,
) -> Result<Option<PathBuf>, String> {
    match env {
        Some(dir) if is_dir(dir) => Ok(Some(dir.to_owned())),
        Some(dir) => Err(format!(
            "$UNITSYNC_DIR is {}, which is not a directory; create it, fix or unset \
             UNITSYNC_DIR, or give --dir DIR",
            dir.display()
        )),
        None if is_dir(Path::new(DEFAULT_DIR)) => Ok(Some(PathBuf::from(DEFAULT_DIR))),
        None if has_command => Ok(None),
        None => Err(format!(
            "nothing to run: no --dir or SCRIPT was given, $UNITSYNC_DIR is not set and \
             {DEFAULT_DIR} does not exist; put startup scripts in {DEFAULT_DIR} or in a \
             directory named by $UNITSYNC_DIR, or give --dir DIR, SCRIPT or -- CMD"
        )),
    }
}

/// The scripts to run: the files of each `--dir` in turn, each sorted,
/// then the named ones. A file of `--dir` that cannot run (not
/// executable, a dangling symlink, a symlink loop) is kept, marked
/// unrunnable, so that it is reported and counts as failed rather than
/// being skipped without a word; a named one is an error.
pub fn collect(dirs: &[PathBuf], named: &[PathBuf]) -> Result<Vec<Script>, Error> {
    let mut paths = Vec::new();
    for dir in dirs {
        let dir_err = |err| Error::Dir { path: dir.to_owned(), err };
        let mut found: Vec<PathBuf> = fs::read_dir(dir)
            .map_err(dir_err)?
            .filter_map(Result::ok)
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .map(|e| e.path())
            // Directories and the like are not scripts; a symlink that
            // leads nowhere may have been meant as one.
            .filter(|p| fs::metadata(p).map_or_else(|_| is_symlink(p), |m| m.is_file()))
            // An env file for `env-file=` sits beside its scripts.
            .filter(|p| p.extension().is_none_or(|e| e != "env") || executable(p))
            .collect();
        // By file name, byte for byte, as `ls` in the C locale would.
        found.sort_by(|a, b| a.as_os_str().as_bytes().cmp(b.as_os_str().as_bytes()));
        for path in found {
            let unrunnable = match fs::metadata(&path) {
                Ok(_) if executable(&path) => None,
                Ok(_) => Some(format!("not executable; chmod +x {}", path.display())),
                Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => {
                    Some("a symlink loop; fix or remove the link".to_owned())
                }
                Err(_) => {
                    let target = fs::read_link(&path).unwrap_or_default();
                    Some(format!(
                        "a dangling symlink to {}; fix or remove the link",
                        target.display()
                    ))
                }
            };
            paths.push((path, unrunnable));
        }
    }
    for path in named {
        match fs::metadata(path) {
            Ok(m) if m.is_file() && executable(path) => paths.push((path.clone(), None)),
            Ok(_) => {
                let problem = "is not an executable file; chmod +x it".to_owned();
                return Err(Error::Script { path: path.clone(), problem });
            }
            Err(e) => return Err(Error::Script { path: path.clone(), problem: e.to_string() }),
        }
    }
    let mut scripts = Vec::new();
    for (path, unrunnable) in paths {
        let mut script = match unrunnable.is_some() && fs::metadata(&path).is_err() {
            // Nothing to read: named after the link, without a header.
            true => {
                let name = file_name(&path);
                let unit = stem(&name).to_owned();
                Script { path, name, unit, header: None, unrunnable: None, env: Vec::new() }
            }
            false => read(path)?,
        };
        script.unrunnable = unrunnable;
        scripts.push(script);
    }
    Ok(scripts)
}

fn is_symlink(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// A unit's default name: its file's name without the last extension
/// (`app.v2.sh` is `app.v2`), as `basename NAME .sh` would give.
fn stem(name: &str) -> &str {
    name.rsplit_once('.').map_or(name, |(stem, _)| stem)
}

fn executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}

/// Reads a script's unit and header.
fn read(path: PathBuf) -> Result<Script, Error> {
    let name = file_name(&path);
    let problem = |problem: String| Error::Script { path: path.clone(), problem };
    let file = fs::File::open(&path).map_err(|e| problem(e.to_string()))?;
    // Only the start matters, and it may be a binary: read a little, lossily.
    let mut bytes = Vec::new();
    let _ = file.take(HEAD_BYTES).read_to_end(&mut bytes);
    let head = String::from_utf8_lossy(&bytes);
    let (unit, header) = header(&head, &name).map_err(problem)?;
    state::check_name(&unit).map_err(|e| problem(format!("unit {e}")))?;
    let env = match header.as_ref().and_then(|h| h.env_file.as_ref()) {
        // Relative to the script's own directory, as compose's `env_file`
        // is to the compose file: the directory moves as one.
        Some(file) => {
            let file = path.parent().unwrap_or(Path::new(".")).join(file);
            envfile::load(&file).map_err(|e| problem(format!("env-file=: {e}")))?
        }
        None => Vec::new(),
    };
    Ok(Script { path, name, unit, header, unrunnable: None, env })
}

/// Parses the header out of the start of a script: the `# unitsync:` lines
/// among its leading comments. Returns the unit (the stem of `name` unless
/// `unit=` says otherwise) and the header, if there is one.
fn header(head: &str, name: &str) -> Result<(String, Option<Header>), String> {
    let stem = stem(name).to_owned();
    let mut words = Vec::new();
    let mut found = false;
    let mut code: Option<&str> = None;
    for line in head.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with("#!") {
            continue;
        }
        let Some(comment) = line.strip_prefix('#') else {
            code.get_or_insert(line);
            continue;
        };
        let comment = comment.trim_start();
        let Some(rest) = comment.strip_prefix("unitsync:") else {
            // `# UNITSYNC:` read as "no header" would run the script
            // without its edges, silently.
            if comment.get(..9).is_some_and(|m| m.eq_ignore_ascii_case("unitsync:")) {
                return Err(format!(
                    "'# {}' is not a header: write '# unitsync:' in lower case",
                    &comment[..9]
                ));
            }
            continue;
        };
        if let Some(code) = code {
            return Err(format!(
                "the '# unitsync:' header must come before any command, but {code:?} comes first"
            ));
        }
        found = true;
        words.extend(split_words(rest)?);
    }
    if !found {
        return Ok((stem, None));
    }
    let mut unit = stem;
    let mut header = Header::default();
    let mut seen: Vec<String> = Vec::new();
    for (key, value) in words {
        // The last of two would win without a word: refused instead, as
        // an unknown key is (a list is one key: after=a,b).
        if seen.contains(&key) {
            let list = match key.as_str() {
                "after" | "soft-after" => format!(" (a list is written {key}=a,b)"),
                _ => String::new(),
            };
            return Err(format!("header key {key:?} is given twice; give it once{list}"));
        }
        seen.push(key.clone());
        let list = || -> Vec<String> {
            value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
        };
        let duration = || duration::parse(&value).map_err(|e| format!("{key}=: {e}"));
        match key.as_str() {
            "after" => header.after.extend(list()),
            "soft-after" => header.soft_after.extend(list()),
            "unit" if value.is_empty() => return Err("unit= needs a name".to_owned()),
            "unit" => unit = value,
            "ready" => {
                Cond::parse(&value)?;
                header.ready = Some(value);
            }
            "ready-timeout" => header.ready_timeout = Some(duration()?),
            "stop-timeout" => header.stop_timeout = Some(duration()?),
            "probe-timeout" => header.probe_timeout = Some(duration()?),
            "stop-signal" => {
                header.stop_signal =
                    Some(signals::parse(&value).map_err(|e| format!("stop-signal=: {e}"))?)
            }
            "restart" => {
                header.restart = Some(Policy::parse(&value).map_err(|e| format!("restart=: {e}"))?)
            }
            "health" => {
                health_cond(&value).map_err(|e| format!("health=: {e}"))?;
                header.health = Some(value);
            }
            "health-interval" => match duration()? {
                d if d.is_zero() => return Err("health-interval= must be more than 0".to_owned()),
                d => header.health_interval = Some(d),
            },
            "health-failures" => {
                header.health_failures =
                    Some(failures_value(&value).map_err(|e| format!("health-failures=: {e}"))?)
            }
            "user" => {
                user::Spec::parse(&value).map_err(|e| format!("user=: {e}"))?;
                header.user = Some(value);
            }
            "on" => {
                header.at_stop = match value.as_str() {
                    "start" => false,
                    "stop" => true,
                    _ => return Err(format!("on={value}: write on=start or on=stop")),
                }
            }
            "env-file" if value.is_empty() => return Err("env-file= needs a path".to_owned()),
            "env-file" => header.env_file = Some(PathBuf::from(value)),
            _ => {
                let near = nearest(&key, &mut KEYS.into_iter())
                    .map(|k| format!(" (did you mean {k}?)"))
                    .unwrap_or_default();
                return Err(format!(
                    "unknown header key {key:?}{near}; a '# unitsync:' line takes {}",
                    KEYS.map(|k| format!("{k}=")).join(" ")
                ));
            }
        }
    }
    if header.ready.is_none() && header.ready_timeout.is_some() {
        return Err("ready-timeout= needs ready= (the condition it waits for)".to_owned());
    }
    let probed = |c: &Option<String>| {
        c.as_deref().is_some_and(|c| matches!(Cond::parse(c), Ok(Cond::Exec(_) | Cond::Http(_))))
    };
    if header.probe_timeout.is_some() && !probed(&header.ready) && !probed(&header.health) {
        return Err("probe-timeout= needs ready= or health= of exec:COMMAND or http://... \
             (the probe it limits)"
            .to_owned());
    }
    if header.health.is_some() && header.ready.is_none() {
        return Err("health= needs ready= (health is checked once the service is ready)".to_owned());
    }
    if (header.health_interval.is_some() || header.health_failures.is_some())
        && header.health.is_none()
    {
        return Err("health-interval= and health-failures= need health=COND".to_owned());
    }
    if header.at_stop && header.ready.is_some() {
        return Err("ready= has no use in a stop script (on=stop): nothing waits for it".to_owned());
    }
    if header.at_stop && header.restart.is_some() {
        return Err(
            "restart= has no use in a stop script (on=stop): it runs once, at shutdown".to_owned()
        );
    }
    Ok((unit, Some(header)))
}

/// Splits a header line into `key=value` pairs. Spaces may surround `=`
/// and follow commas (`after = db, seed`); a value may be double-quoted to
/// hold spaces (`ready="exec:pg_isready -q"`).
fn split_words(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let end = rest.find(|c: char| c == '=' || c.is_whitespace()).unwrap_or(rest.len());
        let key = rest[..end].to_owned();
        rest = rest[end..].trim_start();
        let Some(after_eq) = rest.strip_prefix('=') else {
            return Err(format!("{key:?} is not key=value; write it like after=a,b"));
        };
        rest = after_eq.trim_start();
        let mut value = String::new();
        if let Some(quoted) = rest.strip_prefix('"') {
            let close = quoted.find('"').ok_or_else(|| format!("{key}= has no closing quote"))?;
            value.push_str(&quoted[..close]);
            rest = &quoted[close + 1..];
        } else {
            // A value ends at a space, unless a comma joins the next item.
            loop {
                let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                value.push_str(&rest[..end]);
                rest = &rest[end..];
                let next = rest.trim_start();
                if value.ends_with(',') && !next.is_empty() && !starts_with_key(next) {
                    rest = next;
                    continue;
                }
                break;
            }
        }
        pairs.push((key, value));
        rest = rest.trim_start();
    }
    Ok(pairs)
}

/// Whether `text` starts with `key=` (or `key =`): the next pair rather
/// than one more item of a list.
fn starts_with_key(text: &str) -> bool {
    let end = text.find(|c: char| c == '=' || c == ',' || c.is_whitespace());
    end.is_some_and(|end| text[end..].trim_start().starts_with('='))
}

/// Refuses what cannot work and returns the warnings to print at once:
/// two scripts claiming one unit, and a cycle among the declared edges
/// (found with the state machine itself, so the message is the one the
/// server would give). An `after=` naming a unit no script provides is
/// only a warning: another process may provide it. A `user=` is looked
/// up (in `/etc/passwd` and `/etc/group`, and needs root) here, so that a
/// user that does not exist stops everything before anything runs.
pub fn check(scripts: &[Script]) -> Result<Vec<String>, Error> {
    for script in scripts {
        let Some(spec) = script.header.as_ref().and_then(|h| h.user.as_deref()) else { continue };
        let problem =
            |e: String| Error::Script { path: script.path.clone(), problem: format!("user=: {e}") };
        user::lookup(&user::Spec::parse(spec).map_err(problem)?).map_err(problem)?;
    }
    for (i, script) in scripts.iter().enumerate() {
        if let Some(other) = scripts[..i].iter().find(|s| s.unit == script.unit).map(|s| &s.path) {
            let problem = format!(
                "claims unit {} like {}; give one of them another name with '# unitsync: unit=NAME'",
                script.unit,
                other.display()
            );
            return Err(Error::Script { path: script.path.clone(), problem });
        }
    }
    // A stop script runs once startup is over: a startup script waiting
    // for it would wait for ever.
    for script in scripts.iter().filter(|s| !s.at_stop()) {
        let (after, soft_after) = script.edges();
        if let Some(stop) = scripts
            .iter()
            .find(|s| s.at_stop() && after.iter().chain(soft_after).any(|d| *d == s.unit))
        {
            let problem = format!(
                "waits for {}, a stop script (on=stop) that runs only at shutdown; remove it from after=",
                stop.unit
            );
            return Err(Error::Script { path: script.path.clone(), problem });
        }
    }
    let mut graph = State::new();
    for script in scripts {
        let (after, soft_after) = script.edges();
        for (deps, soft) in [(after, false), (soft_after, true)] {
            graph
                .want(&script.unit, deps, soft, Duration::ZERO)
                .map_err(|e| Error::Script { path: script.path.clone(), problem: e.to_string() })?;
        }
    }
    let mut warnings = Vec::new();
    for script in scripts {
        let (after, soft_after) = script.edges();
        // Each named once, in order.
        let mut missing: Vec<&String> = after
            .iter()
            .chain(soft_after)
            .filter(|d| !scripts.iter().any(|s| s.unit == **d))
            .collect();
        missing.sort();
        missing.dedup();
        for dep in missing {
            let near = ordered(dep, scripts)
                .or_else(|| nearest(dep, &mut scripts.iter().map(|s| s.unit.as_str())))
                .map(|n| format!("did you mean {n}? "))
                .unwrap_or_default();
            warnings.push(format!(
                "{}: no script provides {dep} ({near}it must come from another process, or {} will wait for it)",
                script.path.display(),
                script.unit
            ));
        }
    }
    Ok(warnings)
}

/// The unit of a script named for its place in the order, `10-db` for
/// `db`: its name is `dep` behind a number and a `-`, `_` or `.`.
fn ordered<'a>(dep: &str, scripts: &'a [Script]) -> Option<&'a str> {
    scripts.iter().map(|s| s.unit.as_str()).find(|unit| {
        let rest = unit.trim_start_matches(|c: char| c.is_ascii_digit());
        rest.len() < unit.len() && rest.get(1..) == Some(dep) && rest.starts_with(['-', '_', '.'])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(head: &str, name: &str) -> Result<(String, Option<Header>), String> {
        header(head, name)
    }

    fn edges(after: &[&str], soft: &[&str]) -> Header {
        Header {
            after: after.iter().map(|s| s.to_string()).collect(),
            soft_after: soft.iter().map(|s| s.to_string()).collect(),
            ..Header::default()
        }
    }

    #[test]
    fn every_script_is_a_unit_and_a_header_declares_how_it_runs() {
        assert_eq!(parsed("#!/bin/sh\necho hi\n", "a.sh"), Ok(("a".into(), None)));
        assert_eq!(
            parsed(
                "#!/bin/sh\n# unitsync: after=git-clone,apt-install\n# unitsync: soft-after=cache\n",
                "pip-install.sh"
            ),
            Ok(("pip-install".into(), Some(edges(&["git-clone", "apt-install"], &["cache"]))))
        );
        assert_eq!(
            parsed(
                "#!/bin/sh\n\n# set things up\n# unitsync: unit=org.setup after=a\nexit 0\n",
                "10-setup.sh"
            ),
            Ok(("org.setup".into(), Some(edges(&["a"], &[]))))
        );
        // An empty header still asks for `run`.
        assert_eq!(parsed("# unitsync:\n", "plain"), Ok(("plain".into(), Some(Header::default()))));
    }

    #[test]
    fn spaces_around_equals_and_after_commas_are_allowed() {
        let (unit, header) =
            parsed("# unitsync: after = db, seed  soft-after= cache unit =app\n", "x.sh").unwrap();
        assert_eq!(unit, "app");
        assert_eq!(header, Some(edges(&["db", "seed"], &["cache"])));
        let (_, header) = parsed(
            "# unitsync: ready=\"exec:test -e /tmp/x\" ready-timeout=30s stop-timeout = 2s\n",
            "db.sh",
        )
        .unwrap();
        let header = header.unwrap();
        assert_eq!(header.ready.as_deref(), Some("exec:test -e /tmp/x"));
        assert_eq!(header.ready_timeout, Some(Duration::from_secs(30)));
        assert_eq!(header.stop_timeout, Some(Duration::from_secs(2)));
        let (_, header) =
            parsed("# unitsync: ready=exec:true probe-timeout=2s\n", "db.sh").unwrap();
        assert_eq!(header.unwrap().probe_timeout, Some(Duration::from_secs(2)));
        let (_, header) = parsed("# unitsync: stop-signal=int\n", "db.sh").unwrap();
        assert_eq!(header.unwrap().stop_signal, Some(Signal::SIGINT));
        let (_, header) = parsed(
            "# unitsync: ready=http://127.0.0.1:8080/ probe-timeout=2s user=postgres:ssl-cert\n",
            "db.sh",
        )
        .unwrap();
        let header = header.unwrap();
        assert_eq!(header.user.as_deref(), Some("postgres:ssl-cert"));
        assert_eq!(header.probe_timeout, Some(Duration::from_secs(2)));
    }

    #[test]
    fn a_bad_header_is_an_error_not_ignored() {
        let err = |head: &str| parsed(head, "x.sh").unwrap_err();
        assert!(err("# unitsync: before=a\n").contains("unknown header key \"before\""));
        assert!(err("# unitsync: afer=a\n").contains("(did you mean after?)"));
        // A header after a command would be silently ignored by a reader
        // that stops at the first command: it is refused instead.
        assert!(
            err("#!/bin/sh\necho\n# unitsync: after=a\n")
                .contains("header must come before any command, but \"echo\" comes first")
        );
        assert!(err("# unitsync: after\n").contains("not key=value"));
        assert!(err("# unitsync: ready=tcp:\n").contains("invalid readiness condition"));
        assert!(err("# unitsync: stop-timeout=soon\n").contains("stop-timeout=: invalid duration"));
        assert!(err("# unitsync: ready-timeout=3s\n").contains("needs ready="));
        assert!(
            err("# unitsync: ready=tcp:1 probe-timeout=3s\n")
                .contains("needs ready= or health= of exec:")
        );
        assert!(err("# unitsync: unit=\n").contains("unit= needs a name"));
        assert!(err("# unitsync: user=pg:\n").contains("user=: invalid user \"pg:\""));
        assert!(err("# unitsync: usr=pg\n").contains("(did you mean user?)"));
        assert!(err("# unitsync: stop-signal=TREM\n").contains("stop-signal=: unknown signal"));
    }

    #[test]
    fn a_key_given_twice_is_refused_across_lines() {
        let err = |head: &str| parsed(head, "x.sh").unwrap_err();
        assert_eq!(
            err("# unitsync: unit=x unit=y\n"),
            "header key \"unit\" is given twice; give it once"
        );
        assert_eq!(
            err("# unitsync: ready=tcp:1\n# unitsync: ready=tcp:2\n"),
            "header key \"ready\" is given twice; give it once"
        );
        assert_eq!(
            err("# unitsync: after=a\n#\n# unitsync: soft-after=c after=b\n"),
            "header key \"after\" is given twice; give it once (a list is written after=a,b)"
        );
    }

    #[test]
    fn a_header_marker_in_another_case_is_refused_not_ignored() {
        for marker in ["UNITSYNC:", "UnitSync:", "unitSYNC:"] {
            assert_eq!(
                parsed(&format!("#!/bin/sh\n# {marker} after=a\n"), "x.sh").unwrap_err(),
                format!("'# {marker}' is not a header: write '# unitsync:' in lower case")
            );
        }
        // Other comments that merely mention it are comments.
        assert_eq!(parsed("# unitsync is used below\nexit 0\n", "x.sh"), Ok(("x".into(), None)));
    }

    #[test]
    fn a_unit_is_its_file_name_without_the_last_extension() {
        assert_eq!(parsed("", "app.v2.sh"), Ok(("app.v2".into(), None)));
        assert_eq!(parsed("", "10-db.sh"), Ok(("10-db".into(), None)));
        assert_eq!(parsed("", "plain"), Ok(("plain".into(), None)));
    }

    #[test]
    fn the_default_directory_is_unitsync_dir_else_etc() {
        let (etc, mine) = (Path::new(DEFAULT_DIR), Path::new("/srv/mine"));
        let only =
            |dirs: &'static [&'static str]| move |p: &Path| dirs.iter().any(|d| p == Path::new(d));
        let all = only(&["/etc/unitsync.d", "/srv/mine"]);
        assert_eq!(default_dir(Some(mine), all, false), Ok(Some(mine.to_owned())));
        assert_eq!(default_dir(None, all, false), Ok(Some(etc.to_owned())));
        assert_eq!(default_dir(None, only(&[]), true), Ok(None));
        let err = default_dir(Some(mine), only(&["/etc/unitsync.d"]), true).unwrap_err();
        assert!(err.starts_with("$UNITSYNC_DIR is /srv/mine, which is not a directory"), "{err}");
        let err = default_dir(None, only(&[]), false).unwrap_err();
        assert!(
            err.contains("$UNITSYNC_DIR is not set and /etc/unitsync.d does not exist"),
            "{err}"
        );
    }

    #[test]
    fn on_stop_and_env_file_are_header_keys() {
        let (_, header) =
            parsed("# unitsync: on=stop after=db env-file=db.env\n", "backup.sh").unwrap();
        let header = header.unwrap();
        assert!(header.at_stop);
        assert_eq!(header.env_file, Some(PathBuf::from("db.env")));
        let (_, header) = parsed("# unitsync: on=start\n", "x.sh").unwrap();
        assert!(!header.unwrap().at_stop);
        let err = |head: &str| parsed(head, "x.sh").unwrap_err();
        assert_eq!(err("# unitsync: on=exit\n"), "on=exit: write on=start or on=stop");
        assert_eq!(err("# unitsync: env-file=\n"), "env-file= needs a path");
        assert!(
            err("# unitsync: on=stop ready=tcp:1\n")
                .starts_with("ready= has no use in a stop script")
        );
    }

    #[test]
    fn a_startup_script_cannot_wait_for_a_stop_script() {
        let mut backup = script("backup.sh", "backup", &["db"]);
        backup.header.as_mut().unwrap().at_stop = true;
        let scripts = [script("db.sh", "db", &[]), backup, script("app.sh", "app", &["backup"])];
        assert_eq!(
            check(&scripts).unwrap_err().to_string(),
            "up: app.sh: waits for backup, a stop script (on=stop) that runs only at shutdown; remove it from after="
        );
    }

    #[test]
    fn a_numbered_script_is_suggested_for_its_bare_name() {
        let warnings = check(&[
            script("10-db.sh", "10-db", &[]),
            script("20_cache.sh", "20_cache", &[]),
            script("app.sh", "app", &["db", "cache", "10"]),
        ]);
        assert_eq!(
            warnings.unwrap(),
            [
                "app.sh: no script provides 10 (it must come from another process, or app will wait for it)",
                "app.sh: no script provides cache (did you mean 20_cache? it must come from another process, or app will wait for it)",
                "app.sh: no script provides db (did you mean 10-db? it must come from another process, or app will wait for it)",
            ]
        );
    }

    fn script(path: &str, unit: &str, after: &[&str]) -> Script {
        Script {
            path: PathBuf::from(path),
            name: path.to_owned(),
            unit: unit.to_owned(),
            header: Some(edges(after, &[])),
            unrunnable: None,
            env: Vec::new(),
        }
    }

    #[test]
    fn a_cycle_or_a_unit_claimed_twice_is_refused_with_the_path() {
        let cycle = check(&[script("a.sh", "a", &["b"]), script("b.sh", "b", &["a"])]);
        assert_eq!(cycle.unwrap_err().to_string(), "up: b.sh: cycle: b -> a -> b");
        let twice = check(&[script("x/db.sh", "db", &[]), script("y/db.py", "db", &[])]);
        assert_eq!(
            twice.unwrap_err().to_string(),
            "up: y/db.py: claims unit db like x/db.sh; give one of them another name with '# unitsync: unit=NAME'"
        );
    }

    #[test]
    fn an_unknown_dependency_is_a_warning_with_a_suggestion() {
        let warnings =
            check(&[script("db.sh", "postgres", &[]), script("app.sh", "app", &["postgers", "x"])]);
        assert_eq!(
            warnings.unwrap(),
            [
                "app.sh: no script provides postgers (did you mean postgres? it must come from another process, or app will wait for it)",
                "app.sh: no script provides x (it must come from another process, or app will wait for it)",
            ]
        );
    }
}
