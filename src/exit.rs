//! Exit codes: those of the table in main.rs, named. A leaf: it imports
//! nothing from the crate. `main` is the only place that exits, and maps
//! its failures to these codes; `compat`, `runner` and `up` take their
//! codes from here. README.md documents them for users.

pub const SUCCESS: u8 = 0;
/// Refused by the server, or any error without a code of its own.
pub const ERROR: u8 = 1;
pub const USAGE: u8 = 2;
pub const UNREACHABLE: u8 = 3;
pub const TIMED_OUT: u8 = 4;
pub const DEPENDENCY_FAILED: u8 = 5;
/// The command exists but cannot be run (a shell's code).
pub const NOT_EXECUTABLE: u8 = 126;
/// The command does not exist (a shell's code).
pub const NOT_FOUND: u8 = 127;

/// The code for an end by signal `signal`: 128 + N, as a shell reports it.
pub fn signaled(signal: i32) -> u8 {
    // Signal numbers stop at 64 on Linux: this never wraps.
    128 + signal as u8
}

/// How a process ended, from its real wait status: never rebuilt from a
/// packed 128+N, so that a script that runs `exit 130` reads "exit status
/// 130", not "killed by SIGINT". One wording for `run` and `up`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    Exited(i32),
    Killed(i32),
}

impl Ended {
    /// The exit code a shell would report for it (128+N for signal N).
    pub fn code(self) -> u8 {
        match self {
            Ended::Exited(code) => code as u8,
            Ended::Killed(signal) => signaled(signal),
        }
    }

    pub fn success(self) -> bool {
        self == Ended::Exited(0)
    }
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Ended::Exited(code) => write!(f, "exit status {code}"),
            Ended::Killed(signal) => match nix::sys::signal::Signal::try_from(signal) {
                Ok(name) => write!(f, "killed by {}", name.as_str()),
                Err(_) => write!(f, "killed by signal {signal}"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_are_128_plus_their_number() {
        assert_eq!(signaled(2), 130);
        assert_eq!(signaled(9), 137);
    }

    #[test]
    fn an_end_is_worded_from_the_real_status() {
        assert_eq!(Ended::Exited(130).to_string(), "exit status 130");
        assert_eq!(Ended::Killed(2).to_string(), "killed by SIGINT");
        assert_eq!(Ended::Exited(130).code(), Ended::Killed(2).code());
        assert!(Ended::Exited(0).success() && !Ended::Killed(15).success());
    }
}
