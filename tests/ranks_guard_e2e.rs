//! Data-parallel jobs that go wrong: ranks started with different presets are refused at the
//! rendezvous, naming the keys that differ (no rank aborts in Gloo); rank 0 killed from outside
//! is the job's failure (exit 1), and the other ranks do not keep the launcher waiting.

mod common;

use common::ranks::{rank_pid, require_gloo, start_ranks};
use common::{kd_tui_on, wait_exit, wait_for, ChildGuard};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Starts rank `rank` of a job of `world` ranks by hand (torchrun's variables), stderr to a log.
fn start_rank(
    dir: &Path,
    port: u16,
    (rank, world): (usize, usize),
    extra: &[&str],
) -> (ChildGuard, PathBuf) {
    let log = dir.with_extension(format!("rank-{rank}.log"));
    let child = kd_tui_on(["--batch", "--out"])
        .arg(dir)
        .args(extra)
        .env("RANK", rank.to_string())
        .env("LOCAL_RANK", rank.to_string())
        .env("WORLD_SIZE", world.to_string())
        .env("MASTER_ADDR", "127.0.0.1")
        .env("MASTER_PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    (ChildGuard(child), log)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port()
}

#[test]
fn ranks_with_different_presets_are_refused_naming_the_keys() {
    require_gloo();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("job");
    let port = free_port();
    let timeout = ["--set", "distributed.timeout_s=20"];
    let (mut rank0, log0) = start_rank(&dir, port, (0, 2), &timeout);
    let (mut rank1, log1) = start_rank(
        &dir,
        port,
        (1, 2),
        &[&timeout[..], &["--set", "teacher.model.hidden=[64]"]].concat(),
    );
    let (code0, code1) = (wait_exit(&mut rank0), wait_exit(&mut rank1));
    let (log0, log1) = (
        std::fs::read_to_string(log0).unwrap(),
        std::fs::read_to_string(log1).unwrap(),
    );
    assert_eq!(code0, 2, "{log0}");
    assert_eq!(code1, 2, "{log1}");
    assert!(
        log0.contains("another preset") && log0.contains("teacher.model.hidden"),
        "{log0}"
    );
    assert!(!dir.exists(), "a refused job leaves no run folder");
}

#[test]
fn rank_0_killed_from_outside_is_a_failure_and_the_launcher_ends_soon() {
    require_gloo();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("job");
    let mut job = start_ranks(
        &dir,
        &[
            "--set",
            "teacher.epochs=100000",
            "--set",
            "distributed.timeout_s=60",
        ],
    );
    wait_for("steps", || {
        std::fs::read_to_string(dir.join("metrics.jsonl"))
            .is_ok_and(|m| m.lines().any(|l| l.contains("\"type\":\"step\"")))
    });
    let rank0 = rank_pid(job.0.id(), 0).expect("rank 0 runs under the launcher");
    let killed = Instant::now();
    common::signal(rank0, "-KILL");
    let code = wait_exit(&mut job);
    let log = std::fs::read_to_string(dir.with_extension("log")).unwrap();
    assert_eq!(code, 1, "{log}");
    assert!(
        log.contains("rank 0 (the job) was killed by signal 9"),
        "{log}"
    );
    // Well inside distributed.timeout_s: rank 1 fails at its next collective, or is killed
    // after the launcher's grace.
    let took = killed.elapsed();
    assert!(took < Duration::from_secs(30), "the launcher took {took:?}");
}

#[test]
fn ranks_started_with_different_world_sizes_fail_within_the_timeout() {
    require_gloo();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("job");
    let port = free_port();
    let timeout = ["--set", "distributed.timeout_s=3"];
    let started = Instant::now();
    let (mut rank0, log0) = start_rank(&dir, port, (0, 2), &timeout);
    let (mut rank1, _) = start_rank(&dir, port, (1, 3), &timeout);
    let (code0, code1) = (wait_exit(&mut rank0), wait_exit(&mut rank1));
    let took = started.elapsed();
    let log0 = std::fs::read_to_string(log0).unwrap();
    assert_eq!((code0, code1), (1, 1), "{log0}");
    // Rank 0 fails joining the group, or at the first store wait after it (then saying why).
    assert!(
        log0.contains("joining the gloo group") || log0.contains("another WORLD_SIZE"),
        "{log0}"
    );
    // The rendezvous, then one store wait: each bounded by the timeout.
    assert!(took < Duration::from_secs(12), "took {took:?}");
}
