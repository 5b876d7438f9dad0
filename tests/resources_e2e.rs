//! A full disk at the end of a run or during an export: the write that fails says so, leaves no
//! half file, and what can still be written (the summary) is. Too little memory: a model that
//! cannot fit is refused before anything is allocated, and an allocation that fails in training
//! fails the run with its summary, never a panic.

mod common;

use common::{kd_tui, read_summary, Run};
use kd_tui::protocol::summary::RunStatus;
use std::path::Path;
use std::process::Command;

/// Makes the temporary file that `name` is written through (`.{stem}.tmp.{ext}`) a full disk.
fn full_disk_for(dir: &Path, name: &str) {
    let (stem, ext) = name.rsplit_once('.').unwrap();
    std::os::unix::fs::symlink("/dev/full", dir.join(format!(".{stem}.tmp.{ext}"))).unwrap();
}

#[test]
fn a_plot_that_cannot_be_written_leaves_no_half_file_and_the_summary_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let out = dir.to_str().unwrap();
    let args = ["--out", out, "--set", "teacher.epochs=100000"];
    let mut job = common::start_batch_until(&args, &dir, 0, |r| r["type"] == "epoch");
    full_disk_for(&dir, "loss.svg");
    common::signal(job.0.id(), "-TERM");
    assert_eq!(common::wait_exit(&mut job), 128 + 15);
    assert!(!dir.join("loss.svg").exists(), "no truncated plot");
    assert!(dir.join("accuracy.svg").exists());
    assert_eq!(read_summary(&dir).status, RunStatus::Interrupted);
    let warned = common::read_metrics(&dir).iter().any(|r| {
        r["type"] == "log"
            && r["message"]
                .as_str()
                .is_some_and(|m| m.contains("loss.svg") && m.contains("No space left"))
    });
    assert!(warned, "the failed plot is reported");
}

#[test]
fn an_export_onto_a_full_disk_fails_with_the_path_and_leaves_nothing() {
    let done = Run::digits(&[]);
    let export = done.dir.join("export");
    std::fs::create_dir_all(&export).unwrap();
    full_disk_for(&export, "distilled.pt");
    let out = kd_tui().arg("export").arg(&done.dir).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("distilled.pt") && stderr.contains("No space left"),
        "{stderr}"
    );
    let left: Vec<_> = std::fs::read_dir(&export).unwrap().flatten().collect();
    assert!(left.is_empty(), "{left:?}");
    // With room, the same export succeeds.
    let again = kd_tui().arg("export").arg(&done.dir).output().unwrap();
    assert_eq!(again.status.code(), Some(0));
    assert!(export.join("distilled.pt").is_file());
}

#[test]
fn an_mlp_larger_than_memory_is_refused_before_it_is_allocated() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let refused = common::run([
        "--batch".as_ref(),
        "--out".as_ref(),
        out.as_os_str(),
        "--set".as_ref(),
        "student.model.hidden=[2000000000]".as_ref(),
    ]);
    assert_eq!(refused.code, Some(2), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("parameters need about") && !refused.stderr.contains("frame #"),
        "{}",
        refused.stderr
    );
    assert!(!out.exists());
}

#[test]
fn an_allocation_that_fails_in_training_fails_the_run_with_its_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    // 4 GB of address space: the 768 MB first layer is built, its optimizer state is not.
    let script = format!(
        "ulimit -v 4000000; exec {} {} --batch --out {} --set 'teacher.model.hidden=[3000000]' --set teacher.epochs=1",
        env!("CARGO_BIN_EXE_kd-tui"),
        common::DIGITS,
        dir.display()
    );
    let out = Command::new("bash")
        .args(["-c", &script])
        .env("KD_TUI_CACHE", tmp.path().join("cache"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("ran out of memory: you tried to allocate"),
        "{stderr}"
    );
    let summary = read_summary(&dir);
    assert_eq!(summary.status, RunStatus::Failed);
    assert!(summary.teacher.is_none());
}
