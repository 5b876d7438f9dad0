//! Data-parallel jobs that go wrong: ranks started with different presets are refused at the
//! rendezvous, naming the keys that differ (no rank aborts in Gloo); rank 0 killed from outside
//! is the job's failure (exit 1), and the other ranks do not keep the launcher waiting.

mod common;

use common::ranks::{rank_pid, require_gloo, start_ranks};
use common::{kd_tui, wait_exit, wait_for, ChildGuard};
use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn ranks_with_different_presets_are_refused_naming_the_keys() {
    require_gloo();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("job");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let start = |rank: usize, extra: &[&str]| {
        let log = tmp.path().join(format!("rank-{rank}.log"));
        let child = kd_tui()
            .args(["--batch", "--out"])
            .arg(&dir)
            .args(["--set", "distributed.timeout_s=20"])
            .args(extra)
            .env("RANK", rank.to_string())
            .env("LOCAL_RANK", rank.to_string())
            .env("WORLD_SIZE", "2")
            .env("MASTER_ADDR", "127.0.0.1")
            .env("MASTER_PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        (ChildGuard(child), log)
    };
    let (mut rank0, log0) = start(0, &[]);
    let (mut rank1, log1) = start(1, &["--set", "teacher.model.hidden=[64]"]);
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
    assert!(std::process::Command::new("kill")
        .args(["-KILL", &rank0.to_string()])
        .status()
        .unwrap()
        .success());
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
