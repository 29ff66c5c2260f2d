//! Integration tests: the real binary, a real server on a real socket, real
//! shells and real signals. See `util.rs` for the harness.

mod abandoned;
mod coder;
mod coder_upstream;
mod conventions;
mod core;
mod durability;
mod hardening;
mod hostile;
mod http;
mod init;
mod init_edges;
mod load;
mod pods;
mod protocol_doc;
// The one seeded generator of every randomized test: it lives in the
// crate (under cfg(test), for the parser's fuzz test) and is shared from there.
mod ready;
mod real_services;
#[path = "../../src/rng.rs"]
mod rng;
mod run;
mod run_user;
mod scripts;
mod services;
mod supervision;
mod up;
mod users;
mod util;
mod views;
