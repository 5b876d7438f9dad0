//! What the benchmarks share.

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode};
use std::time::Duration;

/// `KD_TUI_BENCH_THREADS=N`: intra-op threads (default: libtorch's, one per core).
pub fn threads_from_env() {
    if let Some(n) = std::env::var("KD_TUI_BENCH_THREADS")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        tch::set_num_threads(n);
    }
}

/// A group of single steps: 20 flat samples after a second's warm-up, over 3 seconds.
pub fn group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    group
}
