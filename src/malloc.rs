//! glibc malloc settings for a training process, and the memory it may still take.
//!
//! A training step allocates and frees the same large activation and gradient buffers over and
//! over. By default glibc serves blocks above its (adaptive) mmap threshold with fresh `mmap`s,
//! gives each thread that allocates its own arena, and hands the free top of a heap back to the
//! system: so every step faults its big buffers back in page by page. Measured on the 2-core
//! machine, the MNIST CNN teacher on 6,000 images: 6.1 s per epoch by default, 4.1 s with these
//! settings (`kd-tui --batch presets/mnist-cnn.toml --set data.train_limit=6000 ...`, the same
//! run with `MALLOC_ARENA_MAX=1 MALLOC_MMAP_THRESHOLD_=... MALLOC_TRIM_THRESHOLD_=...`). The cost:
//! memory freed after the peak stays with the process until it exits.

use std::ffi::c_int;

/// Blocks at least this large still get their own mapping (never reached by this project's
/// buffers: CIFAR-10's training images are 614 MB as floats).
const MMAP_THRESHOLD: c_int = 1 << 30;

/// Keeps freed memory for reuse: one arena, large blocks from the heap, no trimming. Called
/// first thing in `main`, before any other thread exists. Environment variables a user sets
/// (`MALLOC_ARENA_MAX` and friends) still win: glibc reads them first, and this only fills in
/// what they leave at the default.
pub fn keep_freed_memory() {
    let set = |name: &str, param: c_int, value: c_int| {
        if std::env::var_os(name).is_none() {
            // SAFETY: mallopt only changes the allocator's parameters, and no other thread
            // allocates yet.
            unsafe { libc::mallopt(param, value) };
        }
    };
    set("MALLOC_ARENA_MAX", libc::M_ARENA_MAX, 1);
    set(
        "MALLOC_MMAP_THRESHOLD_",
        libc::M_MMAP_THRESHOLD,
        MMAP_THRESHOLD,
    );
    set("MALLOC_TRIM_THRESHOLD_", libc::M_TRIM_THRESHOLD, c_int::MAX);
}

/// Memory this process may still take: its cgroup's limit less its use where there is one,
/// and the machine's available memory.
pub fn available_memory() -> Option<u128> {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let meminfo = read("/proc/meminfo").and_then(|m| {
        let line = m
            .lines()
            .find(|l| l.starts_with("MemAvailable:"))?
            .to_owned();
        let kb: u128 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    });
    let cgroup = read("/sys/fs/cgroup/memory.max")
        .and_then(|max| max.trim().parse::<u128>().ok())
        .map(|max| {
            let used = read("/sys/fs/cgroup/memory.current")
                .and_then(|c| c.trim().parse::<u128>().ok())
                .unwrap_or(0);
            max.saturating_sub(used)
        });
    match (meminfo, cgroup) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
