//! Starting threads: named, with a stack size of their own, and all
//! through one instantiation of std's spawning code.

use std::io;
use std::thread::{Builder, JoinHandle};

/// Starts `body` on a thread called `name` with a `stack`-byte stack.
/// The body goes in a box, so that std's generic spawn code is compiled
/// once, not once per caller's closure (BENCHMARKS.md, "Footprint").
pub fn spawn(
    name: impl Into<String>,
    stack: usize,
    body: impl FnOnce() + Send + 'static,
) -> io::Result<JoinHandle<()>> {
    spawn_boxed(name.into(), stack, Box::new(body))
}

fn spawn_boxed(
    name: String,
    stack: usize,
    body: Box<dyn FnOnce() + Send>,
) -> io::Result<JoinHandle<()>> {
    Builder::new().name(name).stack_size(stack).spawn(body)
}

/// Makes every thread allocate from one malloc arena. glibc gives each
/// new thread an arena of its own (up to eight per core), each with pages
/// of its own: for `up` with 10 scripts (two output relays each), about
/// 50 kB (BENCHMARKS.md, "Memory of supervising 10 services").
/// Their allocations are small and rare, so sharing one costs nothing.
/// Call it before starting any thread.
pub fn one_arena() {
    // SAFETY: mallopt only sets a malloc parameter; no thread runs yet.
    unsafe {
        nix::libc::mallopt(nix::libc::M_ARENA_MAX, 1);
    }
}
