/work/main/scripts/bench/target/release/unitsync-bench: /work/main/scripts/bench/src/main.rs
