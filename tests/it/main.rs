//! Integration tests: the real binary, a real server on a real socket, real
//! shells and real signals. See `util.rs` for the harness.

mod coder;
mod core;
mod durability;
mod hostile;
mod load;
mod run;
mod scripts;
mod services;
mod up;
mod users;
mod util;
mod views;
