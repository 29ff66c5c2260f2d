//! Global options with the environment's defaults applied: the one place
//! that reads `$UNITSYNC_*` and `$COLUMNS`. `cli` parses without looking at
//! the environment; the native commands and the `coder` personality both
//! resolve what it parsed here.

use std::env;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use crate::cli;
use crate::client::{Client, Patience, Say};
use crate::duration;
use crate::owner;
use crate::peer;
use crate::protocol::{Owner, Owners};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
const DEFAULT_POLL: Duration = Duration::from_millis(50);
const DEFAULT_COLUMNS: usize = 80;

/// Global options with the environment's defaults applied.
#[derive(Debug, PartialEq)]
pub struct Settings {
    pub socket: PathBuf,
    pub quiet: bool,
    pub optional: bool,
    pub connect_timeout: Duration,
    /// `--timeout` when a command is not given one.
    pub timeout: Duration,
    /// `--poll` when a command is not given one.
    pub poll: Duration,
    /// How wide charts are drawn when no width is given.
    pub columns: usize,
    /// `$UNITSYNC_UNIT`: the unit `run` runs, for `ready` without a UNIT.
    pub unit: Option<String>,
    /// `$UNITSYNC_OWNER`: who `run` or `up` says owns what we start.
    pub owner: Option<String>,
    /// `$UNITSYNC_DETACHED`: what we start has no owner.
    pub detached: bool,
    /// `$UNITSYNC_DIR`: the directory `up` runs when given none.
    pub dir: Option<PathBuf>,
}

impl Settings {
    /// The settings for `global` in this process's environment. An error is
    /// a usage error: a variable set to something unusable.
    pub fn resolve(global: &cli::Global) -> Result<Settings, String> {
        Settings::with(global, |name| env::var_os(name))
    }

    /// The settings for `global`, looking variables up with `var`.
    fn with(
        global: &cli::Global,
        var: impl Fn(&str) -> Option<OsString>,
    ) -> Result<Settings, String> {
        let var = |name: &str| var(name).filter(|v| !v.is_empty());
        let duration = |name: &str, default: Duration| -> Result<Duration, String> {
            match var(name) {
                None => Ok(default),
                Some(v) => {
                    let text = v.to_string_lossy();
                    duration::parse(&text).map_err(|e| format!("${name}: {e}"))
                }
            }
        };
        let socket = match (&global.socket, var("UNITSYNC_SOCKET")) {
            (Some(path), _) => path.clone(),
            (None, Some(path)) => PathBuf::from(path),
            (None, None) => default_socket(),
        };
        let poll = duration("UNITSYNC_POLL", DEFAULT_POLL)?;
        if poll.is_zero() {
            return Err("$UNITSYNC_POLL must be more than 0".to_owned());
        }
        Ok(Settings {
            socket,
            quiet: global.quiet,
            optional: global.optional || yes_or_no("UNITSYNC_OPTIONAL", var("UNITSYNC_OPTIONAL"))?,
            connect_timeout: match global.connect_timeout {
                Some(d) => d,
                None => duration("UNITSYNC_CONNECT_TIMEOUT", Duration::ZERO)?,
            },
            timeout: duration("UNITSYNC_TIMEOUT", DEFAULT_TIMEOUT)?,
            poll,
            // Shells set $COLUMNS for interactive use; a narrow or
            // unreadable one is ignored.
            columns: var("COLUMNS")
                .and_then(|c| c.to_str()?.parse().ok())
                .filter(|&c| c >= 20)
                .unwrap_or(DEFAULT_COLUMNS),
            unit: var("UNITSYNC_UNIT").map(|v| v.to_string_lossy().into_owned()),
            owner: var(owner::ENV).map(|v| v.to_string_lossy().into_owned()),
            detached: yes_or_no("UNITSYNC_DETACHED", var("UNITSYNC_DETACHED"))?,
            dir: var("UNITSYNC_DIR").map(PathBuf::from),
        })
    }

    /// The unit a command names, else `$UNITSYNC_UNIT`; an error (a usage
    /// error) names both.
    pub fn own_unit(&self, given: Option<String>) -> Result<String, String> {
        given.or_else(|| self.unit.clone()).ok_or_else(|| {
            "missing UNIT: name it, or set $UNITSYNC_UNIT (which 'unitsync run' sets)".to_owned()
        })
    }

    /// The owner of `unit` when this client starts it: none if detached
    /// (by `--detached` or `$UNITSYNC_DETACHED`), else the `run` or `up`
    /// that holds it for us, else the script that called us (README.md,
    /// "Abandoned units").
    pub fn owner(&self, detached: bool, unit: &str) -> Option<Owners> {
        match detached || self.detached {
            true => None,
            false => self.holder(unit).map(Owners::from).or_else(owner::of_caller),
        }
    }

    /// The owner of the unit `run` runs: the `up` that holds it, if one
    /// does (it ends the unit should `run` be killed), else `run` itself.
    pub fn run_owner(&self, unit: &str) -> Option<Owners> {
        self.holder(unit).or_else(owner::me).map(Owners::from)
    }

    /// `$UNITSYNC_OWNER`, if `unit` is the one it holds for us
    /// (`$UNITSYNC_UNIT`: `run` and `up` end it from our exit status) and
    /// it is one of our ancestors (not a stale one a daemon inherited).
    /// Other units a script starts are its own to end.
    fn holder(&self, unit: &str) -> Option<Owner> {
        let held = self.unit.as_deref() == Some(unit);
        owner::inherited(self.owner.as_deref().filter(|_| held))
    }

    pub fn client(&self) -> Client {
        let client = Client::new(self.socket.clone(), self.connect_timeout);
        // On the default path, whoever creates `/tmp/unitsync-$UID` first
        // would own the socket's group: only another path (a shared volume
        // of a pod) may hold another uid's `--group` socket.
        client.trusting_group(self.socket != default_socket())
    }

    pub fn say(&self) -> Say {
        Say { quiet: self.quiet }
    }

    /// How a waiting command waits: its own options, else the defaults.
    pub fn patience(&self, timeout: Option<Duration>, poll: Option<Duration>) -> Patience {
        Patience {
            timeout: timeout.unwrap_or(self.timeout),
            poll: poll.unwrap_or(self.poll),
            cancel: None,
        }
    }
}

/// A yes/no variable: 1, true, yes, on or 0, false, no, off, in any case;
/// unset (or empty) is no. Anything else is an error naming the variable.
fn yes_or_no(name: &str, value: Option<OsString>) -> Result<bool, String> {
    let Some(value) = value else { return Ok(false) };
    let text = value.to_string_lossy().to_ascii_lowercase();
    match text.as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!(
            "${name}: {value:?} is not yes or no: use 1, true, yes or on, or 0, false, no or off"
        )),
    }
}

/// `/tmp/unitsync-$UID/unitsync.sock`
fn default_socket() -> PathBuf {
    let mut path = OsString::from(format!("/tmp/unitsync-{}", peer::current_uid()));
    path.push("/unitsync.sock");
    PathBuf::from(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(global: &cli::Global, vars: &[(&str, &str)]) -> Result<Settings, String> {
        Settings::with(global, |name| {
            vars.iter().find(|(n, _)| *n == name).map(|(_, v)| OsString::from(v))
        })
    }

    #[test]
    fn defaults_without_options_or_environment() {
        let settings = resolve(&cli::Global::default(), &[]).unwrap();
        assert_eq!(
            settings,
            Settings {
                socket: default_socket(),
                quiet: false,
                optional: false,
                connect_timeout: Duration::ZERO,
                timeout: Duration::from_secs(300),
                poll: Duration::from_millis(50),
                columns: 80,
                unit: None,
                owner: None,
                detached: false,
                dir: None,
            }
        );
        assert!(settings.socket.ends_with("unitsync.sock"));
    }

    #[test]
    fn options_win_over_the_environment_which_wins_over_defaults() {
        let vars = [
            ("UNITSYNC_SOCKET", "/env.sock"),
            ("UNITSYNC_OPTIONAL", "1"),
            ("UNITSYNC_CONNECT_TIMEOUT", "2s"),
            ("UNITSYNC_TIMEOUT", "1m"),
            ("UNITSYNC_POLL", "5ms"),
            ("COLUMNS", "120"),
            ("UNITSYNC_OWNER", "12:34"),
            ("UNITSYNC_DETACHED", "yes"),
        ];
        let from_env = resolve(&cli::Global::default(), &vars).unwrap();
        assert_eq!(from_env.socket, PathBuf::from("/env.sock"));
        assert!(from_env.optional);
        assert_eq!(from_env.connect_timeout, Duration::from_secs(2));
        assert_eq!(from_env.owner.as_deref(), Some("12:34"));
        assert!(from_env.detached);
        assert_eq!(from_env.owner(false, "a"), None);
        assert_eq!(
            (from_env.timeout, from_env.poll, from_env.columns),
            (Duration::from_secs(60), Duration::from_millis(5), 120)
        );
        let global = cli::Global {
            socket: Some("/opt.sock".into()),
            quiet: true,
            optional: false,
            connect_timeout: Some(Duration::from_secs(7)),
        };
        let from_options = resolve(&global, &vars).unwrap();
        assert_eq!(from_options.socket, PathBuf::from("/opt.sock"));
        assert_eq!(from_options.connect_timeout, Duration::from_secs(7));
        assert!(from_options.quiet && from_options.optional);
        let patience = from_options.patience(Some(Duration::ZERO), None);
        assert_eq!((patience.timeout, patience.poll), (Duration::ZERO, Duration::from_millis(5)));
    }

    #[test]
    fn unusable_variables_are_errors_or_ignored() {
        let global = cli::Global::default();
        let err = |vars: &[(&str, &str)]| resolve(&global, vars).unwrap_err();
        assert!(err(&[("UNITSYNC_POLL", "fast")]).starts_with("$UNITSYNC_POLL: invalid duration"));
        assert_eq!(err(&[("UNITSYNC_POLL", "0")]), "$UNITSYNC_POLL must be more than 0");
        assert!(err(&[("UNITSYNC_TIMEOUT", "x")]).starts_with("$UNITSYNC_TIMEOUT: "));
        assert_eq!(
            err(&[("UNITSYNC_OPTIONAL", "maybe")]),
            "$UNITSYNC_OPTIONAL: \"maybe\" is not yes or no: use 1, true, yes or on, or 0, false, no or off"
        );
        // Empty is unset; a silly width is ignored.
        let vars = [("UNITSYNC_SOCKET", ""), ("UNITSYNC_OPTIONAL", ""), ("COLUMNS", "5")];
        let settings = resolve(&global, &vars).unwrap();
        assert_eq!(settings.socket, default_socket());
        assert!(!settings.optional);
        assert_eq!(settings.columns, 80);
        let optional = |value: &str| resolve(&global, &[("UNITSYNC_OPTIONAL", value)]).unwrap();
        for yes in ["1", "true", "YES", "On"] {
            assert!(optional(yes).optional, "{yes}");
        }
        for no in ["0", "false", "No", "OFF"] {
            assert!(!optional(no).optional, "{no}");
        }
    }

    #[test]
    fn a_command_unit_wins_over_unitsync_unit() {
        let global = cli::Global::default();
        let from_env = resolve(&global, &[("UNITSYNC_UNIT", "db")]).unwrap();
        assert_eq!(from_env.own_unit(None), Ok("db".to_owned()));
        assert_eq!(from_env.own_unit(Some("web".into())), Ok("web".to_owned()));
        let none = resolve(&global, &[("UNITSYNC_UNIT", "")]).unwrap();
        assert_eq!(
            none.own_unit(None),
            Err("missing UNIT: name it, or set $UNITSYNC_UNIT (which 'unitsync run' sets)".into())
        );
    }
}
