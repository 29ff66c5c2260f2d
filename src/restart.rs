//! The restart policy of a unit's command (`restart=`, `run --restart`):
//! what it says and, as a pure function of how each run ended and how
//! long it lasted, whether and when the command runs again. README.md,
//! "Supervision", documents the rules.

use std::fmt;
use std::time::Duration;

/// The first delay before a restart; each one in a row doubles it.
pub const FIRST_DELAY: Duration = Duration::from_secs(1);
/// The longest delay between two runs.
pub const LONGEST_DELAY: Duration = Duration::from_secs(30);
/// A run that lasted this long ends the row: the next failure is the
/// first again, with the first delay (systemd's and s6's notion of a
/// service that came up fine and later broke).
pub const RESET_AFTER: Duration = Duration::from_secs(60);

/// When the command runs again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum When {
    /// Never: its end is the unit's (the default).
    #[default]
    Never,
    /// After it failed: a status other than 0, a signal `run` did not
    /// send, a failed health check, not ready in time.
    OnFailure,
    /// After any end `run` did not cause, a status of 0 included.
    Always,
}

/// A restart policy: when, and at most how many times in a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Policy {
    pub when: When,
    /// None: no limit.
    pub limit: Option<u32>,
}

impl Policy {
    /// Parses `no`, `on-failure[:N]` or `always[:N]`.
    pub fn parse(text: &str) -> Result<Policy, String> {
        let (name, limit) = match text.split_once(':') {
            Some((name, n)) => match n.parse::<u32>() {
                Ok(n) if n > 0 => (name, Some(n)),
                _ => {
                    return Err(format!(
                        "invalid restart policy {text:?}: the limit after ':' is a number of 1 or more"
                    ));
                }
            },
            None => (text, None),
        };
        let when = match name {
            "no" if limit.is_none() => When::Never,
            "on-failure" => When::OnFailure,
            "always" => When::Always,
            _ => {
                return Err(format!(
                    "invalid restart policy {text:?}: write no, on-failure[:N] or always[:N]"
                ));
            }
        };
        Ok(Policy { when, limit })
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.when {
            When::Never => "no",
            When::OnFailure => "on-failure",
            When::Always => "always",
        };
        match self.limit {
            Some(n) => write!(f, "{name}:{n}"),
            None => f.write_str(name),
        }
    }
}

/// The restarts in a row so far, and the delay before the next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    policy: Policy,
    /// Restarts since the row began.
    in_a_row: u32,
    delay: Duration,
}

impl Backoff {
    pub fn new(policy: Policy) -> Backoff {
        Backoff { policy, in_a_row: 0, delay: FIRST_DELAY }
    }

    /// Whether a run that `failed` (or ended well) after lasting `ran`
    /// would be restarted, without counting it.
    pub fn would_restart(&self, failed: bool, ran: Duration) -> bool {
        self.clone().after(failed, ran).is_some()
    }

    /// A run ended: the delay before the next, counted as a restart, or
    /// None when the policy says its end is the unit's (the limit is
    /// reached, or it ended well under `on-failure`).
    pub fn after(&mut self, failed: bool, ran: Duration) -> Option<Duration> {
        if ran >= RESET_AFTER {
            (self.in_a_row, self.delay) = (0, FIRST_DELAY);
        }
        let wanted = match self.policy.when {
            When::Never => false,
            When::OnFailure => failed,
            When::Always => true,
        };
        if !wanted || self.policy.limit.is_some_and(|n| self.in_a_row >= n) {
            return None;
        }
        self.in_a_row += 1;
        let delay = self.delay;
        self.delay = (self.delay * 2).min(LONGEST_DELAY);
        Some(delay)
    }

    /// Restarts in the current row.
    pub fn restarts(&self) -> u32 {
        self.in_a_row
    }

    /// Restarts in the current row, and the limit if there is one:
    /// `2 of 3`, or `2`.
    pub fn count(&self) -> String {
        match self.policy.limit {
            Some(n) => format!("{} of {n}", self.in_a_row),
            None => self.in_a_row.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_are_read_and_written_alike_and_mistakes_named() {
        for text in ["no", "on-failure", "on-failure:3", "always", "always:1"] {
            assert_eq!(Policy::parse(text).unwrap().to_string(), text);
        }
        let err = |t: &str| Policy::parse(t).unwrap_err();
        assert!(err("on-failure:0").contains("a number of 1 or more"), "{}", err("on-failure:0"));
        assert!(err("on-failure:x").contains("a number of 1 or more"));
        assert!(err("sometimes").contains("write no, on-failure[:N] or always[:N]"));
        assert!(err("no:2").contains("write no, on-failure"));
    }

    fn delays(policy: &str, runs: &[(bool, u64)]) -> Vec<Option<u64>> {
        let mut backoff = Backoff::new(Policy::parse(policy).unwrap());
        runs.iter()
            .map(|&(failed, ran)| {
                backoff.after(failed, Duration::from_secs(ran)).map(|d| d.as_secs())
            })
            .collect()
    }

    #[test]
    fn the_delay_doubles_to_thirty_seconds_and_a_long_run_resets_it() {
        let fails = [(true, 0); 8];
        let got = delays("on-failure", &fails);
        assert_eq!(got, [1, 2, 4, 8, 16, 30, 30, 30].map(Some));
        let got = delays("on-failure", &[(true, 0), (true, 0), (true, 0), (true, 60), (true, 0)]);
        assert_eq!(got, [Some(1), Some(2), Some(4), Some(1), Some(2)]);
    }

    #[test]
    fn the_limit_counts_restarts_in_a_row() {
        let got = delays("on-failure:2", &[(true, 0), (true, 0), (true, 0)]);
        assert_eq!(got, [Some(1), Some(2), None]);
        // A run that lasted starts a new row: two more.
        let got = delays("on-failure:2", &[(true, 0), (true, 0), (true, 61), (true, 0), (true, 0)]);
        assert_eq!(got, [Some(1), Some(2), Some(1), Some(2), None]);
    }

    #[test]
    fn only_always_restarts_after_success_and_no_never_does() {
        assert_eq!(delays("on-failure", &[(false, 0)]), [None]);
        assert_eq!(delays("always", &[(false, 0), (true, 0)]), [Some(1), Some(2)]);
        assert_eq!(delays("no", &[(true, 0), (false, 0)]), [None, None]);
        let backoff = Backoff::new(Policy::parse("on-failure:1").unwrap());
        assert!(backoff.would_restart(true, Duration::ZERO));
        assert!(!backoff.would_restart(false, Duration::ZERO));
        assert_eq!(backoff.count(), "0 of 1", "asking does not count");
    }
}
