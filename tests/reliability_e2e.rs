//! Failures are failures and nothing finished is lost: divergence, a full disk, resuming what
//! cannot be resumed, exact resume (bit-identical weights), and `kill -9` at random moments
//! followed by `--resume`, a reader that leaves.

mod common;

use common::{
    final_weights, kd_tui, kd_tui_on, read_metrics, read_summary, run, wait_for, ChildGuard, Run,
    FEW_EPOCHS,
};
use kd_tui::protocol::failure::FailureKind;
use kd_tui::protocol::summary::RunStatus;
use kd_tui::protocol::Phase;
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde_json::Value;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn a_diverging_teacher_stops_the_run_with_exit_1() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let out = run([
        "--batch".as_ref(),
        "--out".as_ref(),
        dir.as_os_str(),
        "--set".as_ref(),
        "teacher.lr=1e6".as_ref(),
    ]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("the teacher phase diverged at epoch 1 step"),
        "{}",
        out.stderr
    );
    let summary = read_summary(&dir);
    assert_eq!(summary.status, RunStatus::Failed);
    assert!(summary.teacher.is_none(), "no result is claimed");
    let failure = summary.failure.expect("a failed run says why");
    assert_eq!(
        (failure.kind, failure.phase),
        (FailureKind::Diverged, Some(Phase::Teacher))
    );
    assert!(out.stderr.contains(&failure.message), "{}", out.stderr);
    // No record holds a loss that is not a number.
    for record in read_metrics(&dir) {
        if let Some(loss) = record.get("loss") {
            assert!(loss.as_f64().is_some_and(f64::is_finite), "{record}");
        }
    }
}

/// `kd-tui --batch … 2>&1 | head -1`: the reader leaves after the first line, and the run goes
/// on to its end without it (a closed pipe once panicked it with exit 101, mid-run, leaving its
/// control socket behind).
#[test]
fn a_run_whose_reader_leaves_goes_on_to_its_end() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let mut job = kd_tui_on(["--batch", "--out"])
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting kd-tui");
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(job.stderr.take().unwrap()),
        &mut first,
    )
    .unwrap();
    assert!(first.starts_with("run folder"), "{first}");
    drop(job.stdout.take());
    let status = job.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{status}");
    assert_eq!(read_summary(&dir).status, RunStatus::Completed);
    assert!(dir.join("distilled.safetensors").is_file());
    assert!(
        !dir.join("control.sock").exists(),
        "the socket is taken down"
    );
}

/// A command whose output is its result fails when that output cannot be written.
#[test]
fn a_preset_written_to_a_full_disk_fails() {
    let full = std::fs::File::options()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = common::Outcome::of(
        kd_tui()
            .args(["presets", "digits"])
            .stdout(full)
            .output()
            .unwrap(),
    );
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("standard output"), "{}", out.stderr);
}

#[test]
fn a_full_disk_stops_the_run_and_keeps_the_finished_teacher() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let out = kd_tui_on(["--batch", "--out"])
        .arg(&dir)
        .args(["--set", FEW_EPOCHS[0], "--set", FEW_EPOCHS[1]])
        .env("KD_TUI_FAULT", "disk-full-in-baseline")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("/baseline") && stderr.contains("the run stopped"),
        "{stderr}"
    );
    let summary = read_summary(&dir);
    assert_eq!(summary.status, RunStatus::Failed);
    assert!(summary.baseline.is_none(), "no baseline result is claimed");
    let failure = summary.failure.expect("a failed run says why");
    assert_eq!(
        (failure.kind, failure.phase),
        (FailureKind::Io, Some(Phase::Baseline))
    );
    // The teacher's files are whole: they load, and the checkpoint points at them.
    let teacher = std::fs::read(dir.join("teacher.safetensors")).unwrap();
    safetensors::SafeTensors::deserialize(&teacher).expect("teacher.safetensors loads");
    let ckpt: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("checkpoint.json")).unwrap())
            .unwrap();
    assert_eq!(ckpt["completed"][0]["phase"], "teacher");
    let no_partials = std::fs::read_dir(dir.join("checkpoints"))
        .unwrap()
        .flatten()
        .all(|e| !e.file_name().to_string_lossy().starts_with('.'));
    assert!(no_partials, "no temporary file is left behind");
}

#[test]
fn a_completed_run_and_a_changed_model_are_not_resumed() {
    let done = Run::digits(&FEW_EPOCHS);
    assert_eq!(done.outcome.code, Some(0));
    let weights = std::fs::read(done.file("distilled.safetensors")).unwrap();
    let again = run([
        "--batch".as_ref(),
        "--resume".as_ref(),
        done.dir.as_os_str(),
    ]);
    assert_eq!(again.code, Some(2), "{}", again.stderr);
    assert!(again
        .stderr
        .contains("completed; there is nothing to resume"));
    assert_eq!(
        std::fs::read(done.file("distilled.safetensors")).unwrap(),
        weights
    );

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("stopped");
    let (code, _) = common::run_until_sigterm(
        &dir,
        "metrics.jsonl",
        &["--set", "teacher.epochs=100000"],
        |r| r["type"] == "epoch",
    );
    assert_eq!(code, Some(128 + 15));
    for set in [
        "seed=8",
        "student.model.hidden=[8]",
        "data.val_fraction=0.2",
    ] {
        let refused = run([
            "--batch".as_ref(),
            "--resume".as_ref(),
            dir.as_os_str(),
            "--set".as_ref(),
            set.as_ref(),
        ]);
        assert_eq!(refused.code, Some(2), "{set}: {}", refused.stderr);
        assert!(
            refused.stderr.contains("keeps its data, seed and models"),
            "{}",
            refused.stderr
        );
    }
}

/// The phases a run's records say finished.
fn finished_phases(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .filter(|r| r["type"] == "phase_finished")
        .map(|r| r["phase"].as_str().unwrap().to_string())
        .collect()
}

/// One run killed with SIGKILL after `delay`, then resumed; checks what survived.
fn kill_and_resume(dir: &Path, delay: Duration, expected: &[Vec<u8>]) -> &'static str {
    let args = [
        "--set",
        "teacher.epochs=30",
        "--set",
        "student.epochs=30",
        "--set",
        "checkpoint_every=1",
    ];
    let mut child = common::spawn_batch(dir, &args, Stdio::null());
    let started = Instant::now();
    wait_for("the kill moment", || {
        started.elapsed() >= delay || child.0.try_wait().unwrap().is_some()
    });
    let _ = child.0.kill();
    child.0.wait().unwrap();
    let before: Vec<Value> = std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let finished_before = finished_phases(&before);
    let resumed = run(["--batch".as_ref(), "--resume".as_ref(), dir.as_os_str()]);
    let case = match resumed.code {
        // Killed before the first checkpoint: nothing had finished, the run started over.
        Some(0) if resumed.stderr.contains("starting it over") => {
            assert!(finished_before.is_empty(), "{finished_before:?}");
            assert_eq!(read_summary(dir).status, RunStatus::Completed);
            assert!(final_weights(dir) == expected, "{}", dir.display());
            return "before the first checkpoint";
        }
        // Killed before even its preset was written: there is nothing to go on with.
        Some(2)
            if resumed
                .stderr
                .contains("only runs stopped with a checkpoint") =>
        {
            assert!(!dir.join("preset.toml").exists());
            return "before its preset";
        }
        Some(0) => "resumed",
        Some(2)
            if resumed
                .stderr
                .contains("completed; there is nothing to resume") =>
        {
            return "after it completed";
        }
        other => panic!(
            "resume of {} ended {other:?}: {}",
            dir.display(),
            resumed.stderr
        ),
    };
    // Every line reads back: a half-written last line was cut before appending.
    let text = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    for line in text.lines() {
        serde_json::from_str::<Value>(line)
            .unwrap_or_else(|e| panic!("{}: a line does not parse ({e}): {line}", dir.display()));
    }
    let records = read_metrics(dir);
    let resumed_at = records
        .iter()
        .rposition(common::is_resume_record)
        .expect("a record of where the run resumed");
    // No phase that had finished (and been checkpointed) trains again.
    let ckpt_completed: Vec<String> = records[resumed_at]["message"]
        .as_str()
        .unwrap()
        .split("finished phases kept: ")
        .nth(1)
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap()
        .split(", ")
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    for r in &records[resumed_at..] {
        if r["type"] == "phase_started" {
            let phase = r["phase"].as_str().unwrap();
            assert!(
                !ckpt_completed.iter().any(|p| p == phase),
                "{}: {phase} finished before the kill and started again",
                dir.display()
            );
        }
    }
    let summary = read_summary(dir);
    assert_eq!(summary.status, RunStatus::Completed);
    assert!(
        final_weights(dir) == expected,
        "{}: the resumed run's weights differ from an uninterrupted run's",
        dir.display()
    );
    for phase in &finished_before {
        assert!(
            ckpt_completed.contains(phase),
            "{}: {phase} had finished but was not kept ({ckpt_completed:?})",
            dir.display()
        );
    }
    case
}

#[test]
fn kill_9_at_random_moments_then_resume() {
    let tmp = tempfile::tempdir().unwrap();
    // How long one uninterrupted run takes here: the kills spread over it.
    let probe = Instant::now();
    let full = Run::digits(&[
        "teacher.epochs=30",
        "student.epochs=30",
        "checkpoint_every=1",
    ]);
    assert_eq!(full.outcome.code, Some(0));
    let span = probe.elapsed();
    let expected = final_weights(&full.dir);
    let mut rng = StdRng::seed_from_u64(20261128);
    let mut cases = std::collections::BTreeMap::new();
    for i in 0..20 {
        let delay = span.mul_f64(rng.random_range(0.05..1.0));
        let case = kill_and_resume(&tmp.path().join(format!("kill-{i}")), delay, &expected);
        *cases.entry(case).or_insert(0) += 1;
    }
    common::say(format_args!("20 kills: {cases:?}"));
    assert!(
        cases.get("resumed").copied().unwrap_or(0) >= 10,
        "most kills land mid-run: {cases:?}"
    );
}

#[test]
fn a_run_resumed_mid_epoch_ends_with_the_weights_of_an_uninterrupted_one() {
    // The default preset (its teacher has dropout, the student learns from cached soft targets),
    // `hint`, whose regressor learns beside the student, and an augmented student, whose
    // teacher's outputs over every view are computed (or read) again by the resumed run.
    let views = ["--set", "student.augment={ shift = 1, flip = true }"];
    let hint = [
        "--set",
        "distill.method=hint",
        "--set",
        "distill.teacher_layer=\"layers.1\"",
        "--set",
        "distill.student_layer=\"layers.0\"",
    ];
    // `crd`, whose heads learn and whose memory banks change at every step.
    let crd = [
        "--set",
        "distill.method=crd",
        "--set",
        "distill.teacher_layer=\"layers.1\"",
        "--set",
        "distill.student_layer=\"layers.0\"",
    ];
    let tmp = tempfile::tempdir().unwrap();
    for (name, args, stop_in) in [
        ("soft", &[][..], "teacher"),
        ("soft", &[][..], "distilled"),
        ("hint", &hint[..], "distilled"),
        ("crd", &crd[..], "distilled"),
        ("views", &views[..], "distilled"),
    ] {
        let overrides: Vec<&str> = args.iter().copied().filter(|a| *a != "--set").collect();
        let full = Run::new(None, &overrides);
        let expected = final_weights(&full.dir);
        let dir = tmp.path().join(format!("{name}-{stop_in}"));
        let (code, stderr) = common::run_until_sigterm(&dir, "metrics.jsonl", args, |r| {
            r["type"] == "step" && r["phase"] == stop_in && r["epoch"].as_u64() >= Some(2)
        });
        assert_eq!(code, Some(128 + 15), "{stderr}");
        let ckpt: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("checkpoint.json")).unwrap())
                .unwrap();
        assert_eq!(ckpt["phase"], stop_in, "{ckpt}");
        // The head's state (`hint`'s regressor, `crd`'s heads and banks) goes with it.
        let headed = name == "hint" || name == "crd";
        assert_eq!(ckpt["hint"].is_object(), headed, "{ckpt}");
        let resumed = run(["--batch".as_ref(), "--resume".as_ref(), dir.as_os_str()]);
        assert_eq!(resumed.code, Some(0), "{}", resumed.stderr);
        assert!(
            final_weights(&dir) == expected,
            "{name}, stopped in the {stop_in} phase at epoch {} example {}: the resumed run's weights differ",
            ckpt["epoch"],
            ckpt["epoch_cursor"]
        );
    }
}

#[test]
fn a_second_run_in_a_folder_that_is_training_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let child = kd_tui_on(["--batch", "--set", "teacher.epochs=100000", "--out"])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut job = ChildGuard(child);
    wait_for("the first job's first epoch", || {
        std::fs::read_to_string(dir.join("metrics.jsonl"))
            .is_ok_and(|t| t.contains("\"type\":\"epoch\""))
    });
    let pid = job.0.id();
    let again = run(["--batch".as_ref(), "--out".as_ref(), dir.as_os_str()]);
    assert_eq!(again.code, Some(2), "{}", again.stderr);
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let status = job.0.wait().unwrap();
    assert_eq!(status.code(), Some(128 + 15));
    // Stopped, its folder resumes; while a job trains there, a resume is refused.
    let child = kd_tui()
        .args(["--batch", "--resume"])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut resumed = ChildGuard(child);
    wait_for("the resumed job to hold the folder", || {
        kd_tui::run::lock::holder(&dir) == Some(resumed.0.id())
    });
    let twice = run(["--batch".as_ref(), "--resume".as_ref(), dir.as_os_str()]);
    assert_eq!(twice.code, Some(2), "{}", twice.stderr);
    assert!(
        twice.stderr.contains(&format!(
            "another kd-tui job (pid {}) is training",
            resumed.0.id()
        )),
        "{}",
        twice.stderr
    );
    let _ = resumed.0.kill();
}

#[test]
fn a_completed_run_goes_on_for_more_student_epochs_and_only_those() {
    let done = Run::digits(&FEW_EPOCHS);
    let teacher_only = run([
        "--batch".as_ref(),
        "--resume".as_ref(),
        done.dir.as_os_str(),
        "--set".as_ref(),
        "teacher.epochs=5".as_ref(),
    ]);
    assert_eq!(teacher_only.code, Some(2), "{}", teacher_only.stderr);
    let more = run([
        "--batch".as_ref(),
        "--resume".as_ref(),
        done.dir.as_os_str(),
        "--set".as_ref(),
        "student.epochs=5".as_ref(),
    ]);
    assert_eq!(more.code, Some(0), "{}", more.stderr);
    let records = read_metrics(&done.dir);
    let resumed = records.iter().rposition(common::is_resume_record).unwrap();
    let epochs: Vec<(String, u64)> = records[resumed..]
        .iter()
        .filter(|r| r["type"] == "epoch")
        .map(|r| {
            (
                r["phase"].as_str().unwrap().to_string(),
                r["epoch"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected: Vec<(String, u64)> = ["baseline", "distilled"]
        .iter()
        .flat_map(|p| [4, 5].map(|e| (p.to_string(), e)))
        .collect();
    assert_eq!(
        epochs, expected,
        "only the extra epochs run, the teacher not at all"
    );
    // The same weights as a run that had 5 student epochs from the start.
    let direct = Run::digits(&["teacher.epochs=3", "student.epochs=5"]);
    assert!(final_weights(&done.dir) == final_weights(&direct.dir));
    assert_eq!(read_summary(&done.dir).status, RunStatus::Completed);
}

#[test]
fn a_real_enospc_stops_the_run_and_it_resumes_once_there_is_room() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let (code, stderr) = common::run_until_sigterm(
        &dir,
        "metrics.jsonl",
        &["--set", "teacher.epochs=100000"],
        |r| r["type"] == "epoch",
    );
    assert_eq!(code, Some(128 + 15), "{stderr}");
    let checkpoint = std::fs::read(dir.join("checkpoint.json")).unwrap();
    // The teacher's weights go through this temporary file: on /dev/full every write fails
    // with ENOSPC, as on a full disk.
    let tmp_weights = dir.join(".teacher.tmp.safetensors");
    std::os::unix::fs::symlink("/dev/full", &tmp_weights).unwrap();
    let resume = || {
        run([
            "--batch".as_ref(),
            "--resume".as_ref(),
            dir.as_os_str(),
            "--set".as_ref(),
            "teacher.epochs=1".as_ref(),
        ])
    };
    let full = resume();
    assert_eq!(full.code, Some(1), "{}", full.stderr);
    assert!(
        full.stderr.contains("teacher.safetensors")
            && full.stderr.contains("No space left on device")
            && full.stderr.contains("the run stopped"),
        "{}",
        full.stderr
    );
    assert!(!dir.join("teacher.safetensors").exists(), "no half file");
    assert_eq!(
        std::fs::read(dir.join("checkpoint.json")).unwrap(),
        checkpoint
    );
    assert_eq!(read_summary(&dir).status, RunStatus::Failed);
    // Room again: the run goes on from the same checkpoint and completes.
    let _ = std::fs::remove_file(&tmp_weights);
    let again = resume();
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert_eq!(read_summary(&dir).status, RunStatus::Completed);
}
