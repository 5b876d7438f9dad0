//! What `--resume` must never do: lose a completed run's results to an interrupted extension,
//! compare students trained for different epochs, touch a run it refuses, keep records and
//! checkpoints that the resumed run supersedes; and a run killed before its first checkpoint
//! starts over.

mod common;

use common::{
    final_weights, kd_tui, read_checkpoint, read_metrics, read_summary, signal, start_batch_until,
    Run,
};
use kd_tui::protocol::summary::RunStatus;
use std::path::Path;

/// `kd-tui --batch --resume DIR --set ...` to completion: (exit code, stderr).
fn resume(dir: &Path, sets: &[&str]) -> (Option<i32>, String) {
    let mut command = kd_tui();
    command.args(["--batch", "--resume"]).arg(dir);
    for s in sets {
        command.args(["--set", s]);
    }
    let out = command.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_interrupted_extension_keeps_the_completed_results_and_both_students_end_even() {
    let done = Run::digits(&[]);
    let completed = read_summary(&done.dir);
    let lines = read_metrics(&done.dir).len();
    let dir = done.dir.to_str().unwrap();
    // More student epochs than will ever run; stopped in the baseline's first extra epochs.
    let mut job = start_batch_until(
        &["--resume", dir, "--set", "student.epochs=100000"],
        &done.dir,
        lines,
        |r| r["type"] == "epoch" && r["phase"] == "baseline",
    );
    signal(job.0.id(), "-TERM");
    assert_eq!(common::wait_exit(&mut job), 128 + 15);
    let stopped = read_summary(&done.dir);
    assert_eq!(stopped.status, RunStatus::Interrupted);
    // The results are the completed ones, and their files are untouched.
    assert_eq!(stopped.baseline, completed.baseline);
    assert_eq!(stopped.distilled, completed.distilled);
    let paired = |s: &kd_tui::protocol::summary::RunSummary| s.comparison.as_ref().unwrap().paired;
    assert_eq!(paired(&stopped), paired(&completed));
    let export = kd_tui().arg("export").arg(&done.dir).output().unwrap();
    assert_eq!(
        export.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    // The baseline has begun `begun` epochs: fewer is refused (the students would differ),
    // and the refusal changes nothing.
    let ckpt = read_checkpoint(&done.dir);
    assert_eq!(ckpt["phase"], "baseline");
    let begun = ckpt["epoch"].as_u64().unwrap() - u64::from(ckpt["epoch_cursor"] == 0);
    assert!(begun >= 4, "{ckpt}");
    let summary_before = std::fs::read(done.dir.join("summary.json")).unwrap();
    let (code, stderr) = resume(&done.dir, &[&format!("student.epochs={}", begun - 1)]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("student.epochs"), "{stderr}");
    assert_eq!(
        std::fs::read(done.dir.join("summary.json")).unwrap(),
        summary_before
    );
    // Enough epochs: both students end with the same count, with the weights a run of that
    // many epochs from the start has.
    let target = begun + 2;
    let (code, stderr) = resume(&done.dir, &[&format!("student.epochs={target}")]);
    assert_eq!(code, Some(0), "{stderr}");
    let extended = read_summary(&done.dir);
    assert_eq!(extended.status, RunStatus::Completed);
    for r in [&extended.baseline, &extended.distilled] {
        let r = r.as_ref().unwrap();
        assert_eq!(r.epochs_run as u64, target, "{}", r.phase.as_str());
        assert_eq!(
            r.weights,
            format!("{}-e{target}.safetensors", r.phase.as_str())
        );
    }
    // The replaced results' files are gone once the extension is over.
    assert!(!done.dir.join("baseline.safetensors").exists());
    let direct = Run::digits(&[&format!("student.epochs={target}")]);
    assert!(final_weights(&done.dir) == final_weights(&direct.dir));
}

#[test]
fn a_refused_resume_leaves_the_run_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let out = dir.to_str().unwrap();
    let mut job = start_batch_until(
        &["--out", out, "--set", "teacher.epochs=100000"],
        &dir,
        0,
        |r| r["type"] == "epoch",
    );
    signal(job.0.id(), "-TERM");
    assert_eq!(common::wait_exit(&mut job), 128 + 15);
    let ckpt = read_checkpoint(&dir);
    std::fs::remove_file(dir.join(ckpt["weights"].as_str().unwrap())).unwrap();
    let before: Vec<Vec<u8>> = ["summary.json", "metrics.jsonl", "checkpoint.json"]
        .iter()
        .map(|f| std::fs::read(dir.join(f)).unwrap())
        .collect();
    let (code, stderr) = resume(&dir, &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(ckpt["weights"].as_str().unwrap()),
        "{stderr}"
    );
    let after: Vec<Vec<u8>> = ["summary.json", "metrics.jsonl", "checkpoint.json"]
        .iter()
        .map(|f| std::fs::read(dir.join(f)).unwrap())
        .collect();
    assert!(before == after, "the refusal changed the run");
    assert_eq!(read_summary(&dir).status, RunStatus::Interrupted);
}

#[test]
fn a_run_killed_before_its_first_checkpoint_starts_over() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let out = dir.to_str().unwrap();
    let no_checkpoints = [
        "--set",
        "checkpoint_every=0",
        "--set",
        "checkpoint_minutes=0",
    ];
    let args = [
        &["--out", out, "--set", "teacher.epochs=100000"][..],
        &no_checkpoints,
    ]
    .concat();
    let mut job = start_batch_until(&args, &dir, 0, |r| r["type"] == "epoch");
    signal(job.0.id(), "-KILL");
    common::wait_exit(&mut job);
    assert!(!dir.join("checkpoint.json").exists());
    let (code, stderr) = resume(&dir, &["teacher.epochs=2", "student.epochs=2"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("starting it over"), "{stderr}");
    assert_eq!(read_summary(&dir).status, RunStatus::Completed);
    let starts = read_metrics(&dir)
        .iter()
        .filter(|r| r["type"] == "run_started")
        .count();
    assert_eq!(starts, 1, "the killed start's records are gone");
}

#[test]
fn a_resume_cuts_the_records_and_checkpoints_it_supersedes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let out = dir.to_str().unwrap();
    // A checkpoint every 3 epochs; killed after epoch 5: epochs 4 and 5 are trained again.
    let args = [
        "--out",
        out,
        "--set",
        "teacher.epochs=100000",
        "--set",
        "checkpoint_every=3",
    ];
    let mut job = start_batch_until(&args, &dir, 0, |r| r["type"] == "epoch" && r["epoch"] == 5);
    signal(job.0.id(), "-KILL");
    common::wait_exit(&mut job);
    let ckpt = read_checkpoint(&dir);
    let resumed_at = ckpt["epoch"].as_u64().unwrap();
    let (code, stderr) = resume(
        &dir,
        &[
            &format!("teacher.epochs={}", resumed_at + 4),
            "student.epochs=1",
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let records = read_metrics(&dir);
    let teacher = |kind: &str| -> Vec<u64> {
        records
            .iter()
            .filter(|r| r["type"] == kind && r["phase"] == "teacher")
            .map(|r| {
                r[if kind == "epoch" { "epoch" } else { "step" }]
                    .as_u64()
                    .unwrap()
            })
            .collect()
    };
    let epochs = teacher("epoch");
    assert_eq!(
        epochs,
        (1..=resumed_at + 4).collect::<Vec<_>>(),
        "every epoch once"
    );
    let steps = teacher("step");
    assert!(
        steps.windows(2).all(|w| w[0] < w[1]),
        "steps once each, in order"
    );
    // No automatic checkpoint of the finished teacher is left behind.
    let left: Vec<String> = std::fs::read_dir(dir.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("teacher-auto"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
