//! Integration tests: the real binary, a real server on a real socket, real
//! shells and real signals. See `util.rs` for the harness.

mod core;
mod run;
mod util;
