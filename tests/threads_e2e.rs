//! The CPU threads of a training process: libtorch's parallel work runs in one OpenMP pool, the
//! trainer thread's. (A second pool, started by the main thread while it loads data, makes
//! libgomp put idle threads to sleep between operations: a quarter slower on MNIST's teacher.)

mod common;

use common::{read_live_metrics, spawn_batch, wait_for};
use std::process::Stdio;

/// The names of a process's threads (a thread inherits the name of the one that started it).
fn thread_names(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_string())
        .collect()
}

#[test]
fn only_the_trainer_thread_starts_an_openmp_pool() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    // Two intra-op threads, and epochs enough to be caught training.
    let args = ["--set", "threads=2", "--set", "teacher.epochs=500"];
    let job = spawn_batch(&dir, &args, Stdio::null());
    wait_for("the teacher's first step record", || {
        dir.join("metrics.jsonl").exists()
            && read_live_metrics(&dir).iter().any(|r| r["type"] == "step")
    });
    let names = thread_names(job.0.id());
    let trainer = names.iter().filter(|n| *n == "trainer").count();
    // The trainer and its pool's one helper; nothing the main thread started.
    assert_eq!(trainer, 2, "threads: {names:?}");
    assert_eq!(names.len(), 3, "threads: {names:?}");
}
