//! Exit codes: those of the table in main.rs, named, and which outcome
//! gets which. `main` is the only place that exits; it, `compat`, `runner`
//! and `up` take their codes from here. README.md documents them for users.

use std::fmt;
use std::io;

use crate::client;
use crate::server;
use crate::up;

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

/// The signal a code made by `signaled` stands for.
pub fn signal_in(code: i32) -> Option<i32> {
    (code > 128).then(|| code - 128)
}

/// The code for a client error.
pub fn client(e: &client::Error) -> u8 {
    match e {
        client::Error::Unreachable { .. } => UNREACHABLE,
        client::Error::TimedOut(_) => TIMED_OUT,
        client::Error::DependencyFailed(_) => DEPENDENCY_FAILED,
        client::Error::Interrupted { signal, .. } => signaled(*signal),
        client::Error::Refused(_)
        | client::Error::Protocol { .. }
        | client::Error::InstanceChanged { .. } => ERROR,
    }
}

/// How a native command can fail.
#[derive(Debug)]
pub enum Failure {
    /// A usage error found after parsing (a default the environment lacks).
    Usage(String),
    Client(client::Error),
    Server(server::Error),
    Up(up::Error),
    Output(io::Error),
}

impl Failure {
    pub fn code(&self) -> u8 {
        match self {
            Failure::Usage(_) => USAGE,
            Failure::Client(e) => client(e),
            Failure::Server(_) | Failure::Up(_) | Failure::Output(_) => ERROR,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Usage(message) => f.write_str(message),
            Failure::Client(e) => e.fmt(f),
            Failure::Server(e) => e.fmt(f),
            Failure::Up(e) => e.fmt(f),
            Failure::Output(e) => write!(f, "cannot write output: {e}"),
        }
    }
}

impl From<client::Error> for Failure {
    fn from(e: client::Error) -> Failure {
        Failure::Client(e)
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Failure {
        Failure::Output(e)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn each_client_error_has_its_code() {
        let path = PathBuf::from("/s");
        let cases = [
            (client::Error::Unreachable { path: path.clone(), reason: "gone".into() }, 3),
            (client::Error::TimedOut("late".into()), 4),
            (client::Error::DependencyFailed("a failed".into()), 5),
            (client::Error::Interrupted { subject: "b".into(), signal: 15 }, 143),
            (client::Error::Protocol { path: path.clone(), detail: "?".into() }, 1),
            (client::Error::InstanceChanged { path, unit: "b".into() }, 1),
        ];
        for (e, code) in cases {
            assert_eq!(client(&e), code, "{e}");
            assert_eq!(Failure::from(e).code(), code);
        }
        let broken = io::Error::from(io::ErrorKind::BrokenPipe);
        assert_eq!(Failure::from(broken).code(), ERROR);
    }

    #[test]
    fn signals_are_128_plus_their_number() {
        assert_eq!(signaled(2), 130);
        assert_eq!(signaled(9), 137);
        assert_eq!(signal_in(143), Some(15));
        assert_eq!(signal_in(128), None);
        assert_eq!(signal_in(i32::from(DEPENDENCY_FAILED)), None);
    }
}
