//! The teacher-output cache end to end: a hit skips the teacher's pass and trains exactly as
//! computed outputs do; a file that does not prove what it holds (corrupted, resized, of
//! another shape) is recomputed, saying why, never trusted.

mod common;

use common::{kd_tui_on, Outcome};
use kd_tui::protocol::summary::TeacherOutputs;
use std::path::Path;
use tch::{Kind, Tensor};

const FEW: [&str; 3] = [
    "teacher.epochs=2",
    "student.epochs=2",
    "student.baseline=false",
];

/// `kd-tui --batch` with overrides and an explicit teacher-output cache.
fn run_with_cache(dir: &Path, cache: &Path, overrides: &[String]) -> Outcome {
    let mut command = kd_tui_on(["--batch", "--out"]);
    command.arg(dir).env("KD_TUI_CACHE", cache);
    for o in overrides {
        command.args(["--set", o]);
    }
    let outcome = Outcome::of(command.output().unwrap());
    assert_eq!(outcome.code, Some(0), "{}", outcome.stderr);
    outcome
}

#[test]
fn the_teacher_pass_is_skipped_when_the_cache_has_its_outputs() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let first = tmp.path().join("first");
    let first_out = run_with_cache(&first, &cache, &FEW.map(String::from));
    let teacher = first.join("teacher.safetensors");
    let again = |name: &str| {
        let dir = tmp.path().join(name);
        let mut o: Vec<String> = FEW.map(String::from).to_vec();
        o.push(format!(
            "teacher.checkpoint={:?}",
            teacher.display().to_string()
        ));
        let out = run_with_cache(&dir, &cache, &o);
        (common::read_summary(&dir), out)
    };
    let first_summary = common::read_summary(&first);
    assert_eq!(
        first_summary.distilled.unwrap().teacher_outputs,
        Some(TeacherOutputs::Computed)
    );
    // The loaded teacher is the same weights on the same data: its outputs come from the cache,
    // and the student trains exactly as it did on computed outputs.
    let (second, out) = again("second");
    assert_eq!(
        second.distilled.unwrap().teacher_outputs,
        Some(TeacherOutputs::FromCache)
    );
    assert!(out.stdout.contains("read from the cache"), "{}", out.stdout);
    assert_eq!(
        std::fs::read(first.join("distilled.safetensors")).unwrap(),
        std::fs::read(tmp.path().join("second/distilled.safetensors")).unwrap()
    );
    // The front ends were told of the pass as it went: stamped with the distilled phase, from
    // none done to all, and as one record when the outputs came from the cache.
    let passes = |dir: &Path| -> Vec<(u64, u64, String)> {
        let records = common::read_metrics(dir);
        let passes: Vec<_> = records
            .iter()
            .filter(|r| r["type"] == "teacher_outputs")
            .inspect(|r| assert_eq!(r["phase"], "distilled", "{r}"))
            .map(|r| {
                let n = |key: &str| r[key].as_u64().unwrap();
                (n("done"), n("total"), r["source"].as_str().unwrap().into())
            })
            .collect();
        let started = records
            .iter()
            .position(|r| r["type"] == "phase_started" && r["phase"] == "distilled");
        let last_pass = records.iter().rposition(|r| r["type"] == "teacher_outputs");
        assert!(
            last_pass < started,
            "the pass comes before the phase's training"
        );
        passes
    };
    let computed = passes(&first);
    let total = computed[0].1;
    assert!(total > 1000, "{computed:?}");
    assert_eq!(computed.first(), Some(&(0, total, "computed".into())));
    assert_eq!(computed.last(), Some(&(total, total, "computed".into())));
    assert_eq!(
        passes(&tmp.path().join("second")),
        [(total, total, "from_cache".into())]
    );
    // `--batch` says so too (in lines: stderr is not a terminal here).
    let line = "distilled the teacher's outputs: computing over";
    assert!(first_out.stderr.contains(line), "{}", first_out.stderr);
    assert!(first_out.stderr.contains("the teacher's outputs: computed"));
    assert!(
        out.stderr
            .contains("the teacher's outputs: read from the cache"),
        "{}",
        out.stderr
    );
    // Another split (seed) is other data: no hit.
    let dir = tmp.path().join("other-seed");
    let mut o: Vec<String> = FEW.map(String::from).to_vec();
    o.push(format!(
        "teacher.checkpoint={:?}",
        teacher.display().to_string()
    ));
    o.push("seed=8".into());
    run_with_cache(&dir, &cache, &o);
    assert_eq!(
        common::read_summary(&dir)
            .distilled
            .unwrap()
            .teacher_outputs,
        Some(TeacherOutputs::Computed)
    );
}

/// The one file in the cache folder.
fn cache_file(cache: &Path) -> std::path::PathBuf {
    let files: Vec<_> = std::fs::read_dir(cache.join("teacher-outputs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
}

#[test]
fn a_cache_file_that_does_not_prove_its_logits_is_recomputed() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let first = tmp.path().join("first");
    run_with_cache(&first, &cache, &FEW.map(String::from));
    let file = cache_file(&cache);
    let saved = Tensor::read_safetensors(&file).unwrap();
    let tensor = |name: &str| {
        saved
            .iter()
            .find(|(n, _)| n == name)
            .unwrap()
            .1
            .shallow_clone()
    };
    let (logits, digest) = (tensor("logits"), tensor("sha256"));
    let teacher = first.join("teacher.safetensors").display().to_string();
    // Each row rotated by 3 classes (a valid file of the right size: the checksum tells);
    // then shapes that do not fit, which used to panic the trainer.
    let corruptions = [
        logits.roll([3], [1]),
        Tensor::zeros([5, 10], (Kind::Float, tch::Device::Cpu)),
        Tensor::zeros([logits.size()[0], 3], (Kind::Float, tch::Device::Cpu)),
        logits.flatten(0, -1),
    ];
    for (i, corrupt) in corruptions.into_iter().enumerate() {
        Tensor::write_safetensors(&[("logits", &corrupt), ("sha256", &digest)], &file).unwrap();
        let dir = tmp.path().join(format!("corrupt-{i}"));
        let mut o: Vec<String> = FEW.map(String::from).to_vec();
        o.push(format!("teacher.checkpoint={teacher:?}"));
        let out = run_with_cache(&dir, &cache, &o);
        let summary = common::read_summary(&dir);
        assert_eq!(
            summary.distilled.unwrap().teacher_outputs,
            Some(TeacherOutputs::Computed),
            "case {i}"
        );
        assert!(out.stderr.contains("not used"), "case {i}: {}", out.stderr);
        // Recomputed outputs train the student exactly as the first run's did.
        assert_eq!(
            std::fs::read(first.join("distilled.safetensors")).unwrap(),
            std::fs::read(dir.join("distilled.safetensors")).unwrap(),
            "case {i}"
        );
        // And the cache holds the true outputs again.
        let rewritten = Tensor::read_safetensors(&file).unwrap();
        assert!(
            rewritten
                .iter()
                .any(|(n, t)| n == "logits" && t.equal(&logits)),
            "case {i}"
        );
    }
}

/// The teacher's outputs for every view of the training set that an augmented student draws
/// from: computed once, cached under a key that holds the augmentation (`[views * n, classes]`),
/// read back by the next run with the same teacher, which then trains exactly as the first.
#[test]
fn an_augmented_students_views_are_computed_once_and_then_read_from_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let shift = "student.augment={ shift = 1 }".to_string();
    // 9 views, 9 epochs: one pass over the views costs what per batch would.
    let nine = "student.epochs=9".to_string();
    let first = tmp.path().join("first");
    let out = run_with_cache(
        &first,
        &cache,
        &[&FEW.map(String::from)[..], &[shift.clone(), nine.clone()]].concat(),
    );
    let teacher_outputs = |dir: &Path| common::read_summary(dir).distilled.unwrap().teacher_outputs;
    let views = |views, from_cache| Some(TeacherOutputs::Views { views, from_cache });
    assert_eq!(teacher_outputs(&first), views(9, false));
    let note = "teacher outputs: computed once over the 9 augmented views of the training set";
    assert!(out.stdout.contains(note), "{}", out.stdout);
    assert!(out.stderr.contains("examples x 9 views"), "{}", out.stderr);
    // The pass counts every view of every example.
    let records = common::read_metrics(&first);
    let passes: Vec<_> = records
        .iter()
        .filter(|r| r["type"] == "teacher_outputs")
        .collect();
    let total = passes[0]["total"].as_u64().unwrap();
    let n = total / 9;
    assert!(total % 9 == 0 && n > 1000, "{total}");
    assert_eq!(passes.last().unwrap()["done"], total);
    let logits = Tensor::read_safetensors(cache_file(&cache)).unwrap();
    let logits = &logits.iter().find(|(name, _)| name == "logits").unwrap().1;
    assert_eq!(logits.size(), [9 * n as i64, 10]);

    let teacher = first.join("teacher.safetensors").display().to_string();
    let again = |name: &str, sets: &[&str]| {
        let dir = tmp.path().join(name);
        let mut o: Vec<String> = FEW.map(String::from).to_vec();
        o.push(format!("teacher.checkpoint={teacher:?}"));
        o.extend(sets.iter().map(|s| s.to_string()));
        let out = run_with_cache(&dir, &cache, &o);
        (dir, out)
    };
    let (second, out) = again("second", &[&shift, &nine]);
    assert_eq!(teacher_outputs(&second), views(9, true));
    assert!(
        out.stderr
            .contains("the teacher's outputs: read from the cache"),
        "{}",
        out.stderr
    );
    assert_eq!(
        std::fs::read(first.join("distilled.safetensors")).unwrap(),
        std::fs::read(second.join("distilled.safetensors")).unwrap()
    );
    // Cached views are read however few the epochs.
    let (short, _) = again("short", &[&shift]);
    assert_eq!(teacher_outputs(&short), views(9, true));
    // Another augmentation has views of its own: 18, for 2 epochs, not worth a pass over them
    // (per batch), for 18 epochs computed. The student without it, outputs of its own.
    let flips = "student.augment={ shift = 1, flip = true }";
    let (few_flips, _) = again("few-flips", &[flips]);
    assert_eq!(teacher_outputs(&few_flips), Some(TeacherOutputs::PerBatch));
    let (flips, _) = again("flips", &[flips, "student.epochs=18"]);
    assert_eq!(teacher_outputs(&flips), views(18, false));
    let (plain, _) = again("plain", &[]);
    assert_eq!(teacher_outputs(&plain), Some(TeacherOutputs::Computed));
    // `hint` needs the teacher's guided layer on the augmented batch: per batch.
    let hint = [
        shift.as_str(),
        "distill.method=hint",
        r#"distill.teacher_layer="layers.1""#,
        r#"distill.student_layer="layers.0""#,
    ];
    let (hint, out) = again("hint", &hint);
    assert_eq!(teacher_outputs(&hint), Some(TeacherOutputs::PerBatch));
    assert!(
        out.stdout.contains("computed on every batch"),
        "{}",
        out.stdout
    );
}
