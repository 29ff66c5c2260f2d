//! A seeded random generator shared by the fuzz tests of the parser
//! (`src/protocol/fuzz.rs`) and of a live server (`tests/it/hostile.rs`):
//! small, and the same sequence for the same seed everywhere, so every
//! failure can be replayed.
#![allow(dead_code)]

/// xorshift64: tiny, and the same sequence for the same seed everywhere.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// `UNITSYNC_FUZZ_SEED`, or a fresh seed for every run.
pub fn seed() -> u64 {
    if let Ok(text) = std::env::var("UNITSYNC_FUZZ_SEED") {
        return text.parse().expect("UNITSYNC_FUZZ_SEED is a number");
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    (now.as_nanos() as u64 ^ (u64::from(std::process::id()) << 32)) | 1
}
