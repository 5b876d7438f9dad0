//! Data-parallel training over c10d with Gloo, through the real binary: `kd-tui --nproc 2`
//! starts two ranks on 127.0.0.1. Needs a build with Gloo (libgloo-dev's headers; scripts/kd
//! installs them).

mod common;

use common::client::{Client, HELLO};
use common::ranks::{rank_pid, require_gloo, start_ranks};
use common::{
    kd_tui, kd_tui_on, read_metrics, read_summary, wait_exit, wait_for, weights, ChildGuard, Quiet,
};
use kd_tui::protocol::summary::RunStatus;
use serde_json::Value;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn two_ranks_end_with_the_weights_of_one_rank_with_the_doubled_batch() {
    require_gloo();
    let tmp = tempfile::tempdir().unwrap();
    // No dropout: the two runs then do the same arithmetic, up to the order of float sums.
    let common = [
        "--set",
        r#"teacher.model={ kind = "mlp", hidden = [64, 64], dropout = 0.0 }"#,
        "--set",
        "teacher.epochs=3",
        "--set",
        "student.epochs=3",
    ];
    let (two, one) = (tmp.path().join("two"), tmp.path().join("one"));
    let batch = |b: usize| {
        [
            "--set".to_string(),
            format!("teacher.batch_size={b}"),
            "--set".to_string(),
            format!("student.batch_size={b}"),
        ]
    };
    let mut job = start_ranks(
        &two,
        &[&common[..], &batch(32).each_ref().map(String::as_str)].concat(),
    );
    assert_eq!(
        wait_exit(&mut job),
        0,
        "{}",
        std::fs::read_to_string(two.with_extension("log")).unwrap()
    );
    let out = common::run(
        [
            "--batch".to_string(),
            "--out".into(),
            one.display().to_string(),
        ]
        .into_iter()
        .chain(common.iter().map(|s| s.to_string()))
        .chain(batch(64)),
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    for model in ["teacher", "baseline", "distilled"] {
        let file = format!("{model}.safetensors");
        let (a, b) = (weights(&two.join(&file)), weights(&one.join(&file)));
        assert_eq!(a.len(), b.len());
        for ((name, x), (_, y)) in a.iter().zip(&b) {
            let worst = x
                .iter()
                .zip(y)
                .map(|(p, q)| (p - q).abs())
                .fold(0.0, f32::max);
            assert!(worst < 1e-4, "{model} {name}: differs by {worst}");
        }
    }
    let summary = read_summary(&two);
    let dist = summary.distributed.expect("a data-parallel run says so");
    assert_eq!((dist.world_size, dist.backend.as_str()), (2, "gloo"));
    assert!(
        dist.global_batch.contains("teacher 64"),
        "{}",
        dist.global_batch
    );
    assert!(
        summary.device.ends_with("2 ranks (gloo)"),
        "{}",
        summary.device
    );
    for phase in ["teacher", "baseline", "distilled"] {
        assert!(dist.allreduce_seconds[phase] > 0.0, "{phase}");
    }
    // The same number of steps as one process with the global batch, and rank 1's own record.
    let steps = |dir: &Path| {
        read_metrics(dir)
            .iter()
            .filter(|r| r["type"] == "epoch")
            .count()
    };
    assert_eq!(steps(&two), steps(&one));
    assert_eq!(
        read_summary(&two.join("rank-1")).status,
        RunStatus::Completed
    );
    assert!(read_summary(&one).distributed.is_none());
}

/// Where each record of a kind stands: (phase, epoch, step) and its payload.
fn positions(dir: &Path, kind: &str) -> Vec<Value> {
    read_metrics(dir)
        .into_iter()
        .filter(|r| r["type"] == kind)
        .map(|mut r| {
            r.as_object_mut().unwrap().remove("wall_time");
            r
        })
        .collect()
}

fn teacher_steps(dir: &Path) -> usize {
    read_metrics(dir)
        .iter()
        .filter(|r| r["type"] == "step" && r["phase"] == "teacher")
        .count()
}

#[test]
fn pause_and_live_edits_from_a_client_reach_both_ranks_at_the_same_step() {
    require_gloo();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("job");
    let rank1 = dir.join("rank-1");
    let mut job = start_ranks(
        &dir,
        &[
            "--set",
            "teacher.epochs=100000",
            "--set",
            "student.epochs=2",
        ],
    );
    wait_for("the control socket", || dir.join("control.sock").exists());
    wait_for("steps on both ranks", || {
        teacher_steps(&dir) > 3 && rank1.join("metrics.jsonl").exists() && teacher_steps(&rank1) > 3
    });
    let mut c = Client::connect(&dir, HELLO);
    c.until("the welcome", |l| l.get("welcome").is_some());
    c.send("{\"command\":\"set_paused\",\"role\":\"teacher\",\"paused\":true}\n");
    wait_for("both ranks to pause", || {
        !positions(&dir, "paused").is_empty() && !positions(&rank1, "paused").is_empty()
    });
    let paused_at = (teacher_steps(&dir), teacher_steps(&rank1));
    // No rank steps while paused, over a window that the edit runs in.
    let quiet = Quiet::open(Duration::from_millis(1000));
    c.send("{\"command\":\"set\",\"key\":\"teacher.lr\",\"value\":\"0.0005\"}\n");
    wait_for("the edit on both ranks", || {
        positions(&dir, "edit").len() == 1 && positions(&rank1, "edit").len() == 1
    });
    quiet.close();
    assert_eq!(
        (teacher_steps(&dir), teacher_steps(&rank1)),
        paused_at,
        "a paused rank stepped"
    );
    c.send("{\"command\":\"set_paused\",\"role\":\"teacher\",\"paused\":false}\n");
    wait_for("steps after the resume", || {
        teacher_steps(&dir) > paused_at.0 + 2
    });
    // An edit while running: applied on both after the step whose all-reduce announced it.
    c.send("{\"command\":\"set\",\"key\":\"teacher.epochs\",\"value\":\"1\"}\n");
    assert_eq!(
        wait_exit(&mut job),
        0,
        "{}",
        std::fs::read_to_string(dir.with_extension("log")).unwrap()
    );
    for kind in ["paused", "edit"] {
        let (a, b) = (positions(&dir, kind), positions(&rank1, kind));
        assert_eq!(a, b, "{kind} records differ between the ranks");
    }
    assert_eq!(positions(&dir, "paused").len(), 2);
    assert_eq!(positions(&dir, "edit").len(), 2);
    assert_eq!(teacher_steps(&dir), teacher_steps(&rank1));
    assert_eq!(read_summary(&dir).status, RunStatus::Completed);
}

#[test]
fn a_killed_rank_ends_the_job_with_an_error_and_a_checkpoint_it_resumes_from() {
    require_gloo();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("job");
    let timeout = ["--set", "distributed.timeout_s=20"];
    let mut job = start_ranks(
        &dir,
        &[&timeout[..], &["--set", "teacher.epochs=100000"]].concat(),
    );
    wait_for("steps", || {
        dir.join("metrics.jsonl").exists() && teacher_steps(&dir) > 5
    });
    let rank1 = rank_pid(job.0.id(), 1).expect("rank 1 runs under the launcher");
    let killed = Instant::now();
    assert!(std::process::Command::new("kill")
        .args(["-KILL", &rank1.to_string()])
        .status()
        .unwrap()
        .success());
    let code = wait_exit(&mut job);
    let took = killed.elapsed();
    let log = std::fs::read_to_string(dir.with_extension("log")).unwrap();
    assert_eq!(code, 1, "{log}");
    assert!(
        took < Duration::from_secs(20),
        "the job took {took:?} to notice"
    );
    assert!(log.contains("data-parallel training failed"), "{log}");
    let ckpt: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("checkpoint.json")).unwrap())
            .unwrap();
    assert_eq!(ckpt["phase"], "teacher");
    // One process would go on at half the global batch: refused, the run untouched.
    let summary = std::fs::read(dir.join("summary.json")).unwrap();
    let alone = common::run(["--batch".as_ref(), "--resume".as_ref(), dir.as_os_str()]);
    assert_eq!(alone.code, Some(2), "{}", alone.stderr);
    assert!(alone.stderr.contains("--nproc 2"), "{}", alone.stderr);
    assert_eq!(std::fs::read(dir.join("summary.json")).unwrap(), summary);
    // Both ranks go on from rank 0's checkpoint and finish the run.
    let mut again = kd_tui()
        .args(["--nproc", "2", "--batch", "--resume"])
        .arg(&dir)
        .args([
            "--set",
            &format!("teacher.epochs={}", ckpt["epoch"].as_u64().unwrap() + 1),
        ])
        .args(["--set", "student.epochs=1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(ChildGuard)
        .unwrap();
    assert_eq!(wait_exit(&mut again), 0);
    assert_eq!(read_summary(&dir).status, RunStatus::Completed);
    assert!(read_metrics(&dir).iter().any(common::is_resume_record));
}

#[test]
fn the_nccl_backend_is_built_with_the_wheels_headers_and_needs_a_gpu() {
    let lib = kd_tui::device::cuda::libtorch().expect("libtorch is loaded");
    let nvidia = lib.lib_dir.join("../../nvidia");
    let headers = ["nccl/include/nccl.h", "cu13/include/nv/target"];
    if headers.iter().all(|h| nvidia.join(h).exists()) {
        assert!(
            kd_tui::collective::nccl_built(),
            "the headers are there but NCCL was not built"
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("job");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // One rank, as a lent single-GPU machine would run it.
    let out = common::Outcome::of(
        kd_tui_on(["--batch", "--set", "distributed.backend=\"nccl\"", "--out"])
            .arg(&dir)
            .env("RANK", "0")
            .env("WORLD_SIZE", "1")
            .env("MASTER_ADDR", "127.0.0.1")
            .env("MASTER_PORT", port.to_string())
            .output()
            .unwrap(),
    );
    if Path::new("/dev/nvidiactl").exists() {
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        return;
    }
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let why = match kd_tui::collective::nccl_built() {
        // The library loaded and libtorch's ProcessGroupNCCL itself refused.
        true => "ProcessGroupNCCL is only supported with GPUs",
        false => "built without the NCCL backend",
    };
    assert!(out.stderr.contains(why), "{}", out.stderr);
    assert!(
        !dir.exists(),
        "a job whose group never formed leaves no run folder"
    );
}

#[test]
fn sigterm_to_the_launcher_stops_every_rank_at_the_same_step() {
    require_gloo();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("job");
    let mut job = start_ranks(&dir, &["--set", "teacher.epochs=100000"]);
    wait_for("steps on both ranks", || {
        dir.join("metrics.jsonl").exists()
            && teacher_steps(&dir) > 3
            && dir.join("rank-1/metrics.jsonl").exists()
            && teacher_steps(&dir.join("rank-1")) > 3
    });
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &job.0.id().to_string()])
        .status()
        .unwrap()
        .success());
    assert_eq!(wait_exit(&mut job), 128 + 15);
    assert_eq!(read_summary(&dir).status, RunStatus::Interrupted);
    let stopped_at = |dir: &Path| {
        let ckpt: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("checkpoint.json")).unwrap())
                .unwrap();
        (
            ckpt["epoch"].clone(),
            ckpt["step"].clone(),
            ckpt["epoch_cursor"].clone(),
        )
    };
    assert_eq!(stopped_at(&dir), stopped_at(&dir.join("rank-1")));
}

#[test]
fn seeds_run_one_after_another_each_as_a_two_rank_job() {
    require_gloo();
    let tmp = tempfile::tempdir().unwrap();
    let parent = tmp.path().join("series");
    let out = common::run([
        "--batch",
        "--nproc",
        "2",
        "--seeds",
        "2",
        "--set",
        "teacher.epochs=1",
        "--set",
        "student.epochs=1",
        "--out",
        parent.to_str().unwrap(),
    ]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    for seed in [7, 8] {
        let dir = parent.join(format!("seed-{seed}"));
        let summary = read_summary(&dir);
        assert_eq!((summary.status, summary.seed), (RunStatus::Completed, seed));
        assert_eq!(summary.distributed.unwrap().world_size, 2, "seed {seed}");
        assert!(
            dir.join("rank-1").is_dir(),
            "seed {seed}: rank 1 trained too"
        );
    }
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(parent.join("seeds.json")).unwrap()).unwrap();
    assert_eq!(report["rows"].as_array().unwrap().len(), 2);
    assert_eq!(report["status"], "completed");
    assert_eq!(
        std::fs::read_to_string(parent.join("seeds.csv"))
            .unwrap()
            .lines()
            .count(),
        3
    );
    assert!(out.stdout.contains("mean ± sd (2)"), "{}", out.stdout);
}
