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

/// The signal a code made by `signaled` stands for.
pub fn signal_in(code: i32) -> Option<i32> {
    (code > 128).then(|| code - 128)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_are_128_plus_their_number() {
        assert_eq!(signaled(2), 130);
        assert_eq!(signaled(9), 137);
        assert_eq!(signal_in(143), Some(15));
        assert_eq!(signal_in(128), None);
        assert_eq!(signal_in(i32::from(DEPENDENCY_FAILED)), None);
    }
}
