//! glibc malloc settings for a training process.
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

/// glibc's own thresholds (128 KiB), for `return_freed_memory`.
const GLIBC_DEFAULT_THRESHOLD: c_int = 128 * 1024;

/// Sets an allocator parameter unless the user set it through its environment variable.
fn set_unless_user_did(name: &str, param: c_int, value: c_int) {
    if std::env::var_os(name).is_none() {
        // SAFETY: mallopt only changes the allocator's parameters, under glibc's own lock.
        unsafe { libc::mallopt(param, value) };
    }
}

/// Keeps freed memory for reuse: one arena, large blocks from the heap, no trimming. Called
/// first thing in `main`, before any other thread exists. Environment variables a user sets
/// (`MALLOC_ARENA_MAX` and friends) still win: glibc reads them first, and this only fills in
/// what they leave at the default.
pub fn keep_freed_memory() {
    set_unless_user_did("MALLOC_ARENA_MAX", libc::M_ARENA_MAX, 1);
    set_unless_user_did(
        "MALLOC_MMAP_THRESHOLD_",
        libc::M_MMAP_THRESHOLD,
        MMAP_THRESHOLD,
    );
    set_unless_user_did("MALLOC_TRIM_THRESHOLD_", libc::M_TRIM_THRESHOLD, c_int::MAX);
}

/// Gives freed memory back to the system again, for a run short of memory (its data does not
/// fit): large blocks get mappings of their own and the heap's free top is trimmed. Measured on
/// a folder of 1,797 images at 512x512 decoded as batches are drawn, an MLP on the pixels, batch
/// 32: peak RSS 745 MB kept, 359 MB given back, at 2.3x the wall time (9.2 s against 21.2 s),
/// since every step faults its large buffers in again. Environment variables still win.
pub fn return_freed_memory() {
    set_unless_user_did(
        "MALLOC_MMAP_THRESHOLD_",
        libc::M_MMAP_THRESHOLD,
        GLIBC_DEFAULT_THRESHOLD,
    );
    set_unless_user_did(
        "MALLOC_TRIM_THRESHOLD_",
        libc::M_TRIM_THRESHOLD,
        GLIBC_DEFAULT_THRESHOLD,
    );
}
