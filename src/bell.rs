//! The bell that wakes `up`'s supervising loop: rung by the signal thread
//! (a child ended, a signal to act on), by the output relays when a
//! script's output ends, and by the in-process server after a change, so
//! that `up` reacts to events instead of looking on a fixed tick.
//!
//! A count under a mutex, with a condition variable: a waiter remembers the
//! count it last saw, so a ring that comes while it is busy is not lost.
//! Until [`arm`] (only `up` arms it), ringing is one atomic load: `serve`
//! and `run` pay nothing for it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

static ARMED: AtomicBool = AtomicBool::new(false);
static RINGS: Mutex<u64> = Mutex::new(0);
static RUNG: Condvar = Condvar::new();

/// Makes [`ring`] wake waiters from now on. Returns the count to wait from.
pub fn arm() -> u64 {
    ARMED.store(true, Ordering::SeqCst);
    count()
}

/// Wakes every waiter, if the bell is armed.
pub fn ring() {
    if !ARMED.load(Ordering::Relaxed) {
        return;
    }
    // A poisoned lock still holds a count: a waiter must not miss a ring.
    let mut rings = RINGS.lock().unwrap_or_else(|e| e.into_inner());
    *rings = rings.wrapping_add(1);
    RUNG.notify_all();
}

/// How many times the bell rang so far.
pub fn count() -> u64 {
    *RINGS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Waits until the bell rings after `seen` (at once if it already has) or
/// `timeout` passes. Returns the count to wait from next time.
pub fn wait(seen: u64, timeout: Duration) -> u64 {
    let rings = RINGS.lock().unwrap_or_else(|e| e.into_inner());
    match RUNG.wait_timeout_while(rings, timeout, |rings| *rings == seen) {
        Ok((rings, _)) => *rings,
        Err(e) => *e.into_inner().0,
    }
}

#[cfg(test)]
mod tests {
    use std::thread;
    use std::time::{Duration, Instant};

    #[test]
    fn a_ring_wakes_a_waiter_and_is_not_lost_while_nobody_waits() {
        let seen = super::arm();
        // Rung before anyone waits: the wait returns at once.
        super::ring();
        let began = Instant::now();
        let next = super::wait(seen, Duration::from_secs(30));
        assert!(next != seen && began.elapsed() < Duration::from_secs(20));
        // Rung by another thread while we wait.
        let ringer = thread::spawn(super::ring);
        let began = Instant::now();
        super::wait(next, Duration::from_secs(30));
        assert!(began.elapsed() < Duration::from_secs(20));
        ringer.join().expect("the ringer does not panic");
        // Nobody rings: the timeout ends the wait (other tests of this
        // binary may ring meanwhile, which ends it too).
        let began = Instant::now();
        super::wait(super::count(), Duration::from_millis(1));
        assert!(began.elapsed() < Duration::from_secs(20));
    }
}
