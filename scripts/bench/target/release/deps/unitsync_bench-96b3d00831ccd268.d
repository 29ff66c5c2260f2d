/work/main/scripts/bench/target/release/deps/unitsync_bench-96b3d00831ccd268.d: src/main.rs

/work/main/scripts/bench/target/release/deps/unitsync_bench-96b3d00831ccd268: src/main.rs

src/main.rs:
