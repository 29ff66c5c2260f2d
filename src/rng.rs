//! Test support only (compiled under `cfg(test)`): the one seeded random
//! generator, and the byte-level damage, of every randomized test: the
//! parser's fuzz test (`protocol/fuzz.rs`) uses it from here, and the
//! integration tests (`tests/it/main.rs`) include this same file, so the
//! crate never reaches into `tests/`. Small, and the same sequence for the
//! same seed everywhere, so every failure can be replayed.
// Each of the two crates that compile this file uses a different part of it.
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

/// Byte-level damage to `line`: one to four flips, deletions, insertions
/// of one of `bytes`, truncations, splices of the line into itself, or
/// insertions of one of `tokens`.
pub fn mutate(rng: &mut Rng, mut line: Vec<u8>, bytes: &[u8], tokens: &[&str]) -> Vec<u8> {
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(line.len() + 1);
        match rng.below(7) {
            0 if at < line.len() => line[at] ^= 1 << rng.below(8),
            1 if at < line.len() => line[at] = *rng.pick(bytes),
            2 if at < line.len() => {
                line.remove(at);
            }
            3 => line.insert(at, *rng.pick(bytes)),
            4 => line.truncate(at),
            5 if !line.is_empty() => {
                let from = rng.below(line.len());
                let to = from + rng.below(line.len() - from + 1);
                let slice = line[from..to].to_vec();
                line.splice(at..at, slice);
            }
            _ => {
                let token = rng.pick(tokens).as_bytes();
                line.splice(at..at, token.iter().copied());
            }
        }
    }
    line
}
