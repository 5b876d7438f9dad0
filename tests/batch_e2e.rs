//! End-to-end runs of the real binary in batch mode: exit codes, the final table and every file of
//! the run folder (preset.toml, metrics.jsonl, summary.json, weights, checkpoints).

mod common;

use common::{
    default_preset_with, read_metrics, read_preset, read_summary, run, run_until_sigterm,
    write_preset, Run, FEW_EPOCHS,
};
use kd_tui::config::{self, ModelConfig, Override};
use kd_tui::protocol::summary::{PhaseResult, RunStatus, TeacherOutputs};
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The default preset trains on digits: 64 pixels, 10 classes.
const DIGITS_SHAPE: (usize, usize) = (64, 10);

fn of_type<'a>(metrics: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> {
    metrics.iter().filter(move |r| r["type"] == kind)
}

fn in_phase<'a>(
    metrics: &'a [Value],
    kind: &'a str,
    phase: &'a str,
) -> impl Iterator<Item = &'a Value> {
    of_type(metrics, kind).filter(move |r| r["phase"] == phase)
}

fn phases_of(metrics: &[Value], kind: &str) -> Vec<String> {
    of_type(metrics, kind)
        .map(|r| r["phase"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn as_u64(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("{v} is not a count"))
}

fn as_f64(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("{v} is not a number"))
}

fn is_fraction(x: f64) -> bool {
    (0.0..=1.0).contains(&x)
}

/// The event stream of a completed run that trained `phases` for `epochs` epochs each.
fn check_completed_metrics(
    metrics: &[Value],
    phases: &[&str],
    epochs: u64,
    log_every: u64,
    summary_json: &Value,
) {
    assert_eq!(metrics.first().unwrap()["type"], "run_started");
    assert_eq!(metrics.last().unwrap()["type"], "finished");
    assert_eq!(of_type(metrics, "run_started").count(), 1);
    assert_eq!(of_type(metrics, "finished").count(), 1);
    let wall: Vec<f64> = metrics.iter().map(|r| as_f64(&r["wall_time"])).collect();
    assert!(
        wall.windows(2).all(|w| w[0] <= w[1]),
        "wall_time goes back: {wall:?}"
    );
    assert_eq!(phases_of(metrics, "phase_started"), phases);
    assert_eq!(phases_of(metrics, "phase_finished"), phases);
    for &phase in phases {
        let started = in_phase(metrics, "phase_started", phase).next().unwrap();
        assert_eq!(as_u64(&started["epochs"]), epochs, "{phase}");
        let steps_per_epoch = as_u64(&started["steps_per_epoch"]);
        assert!(steps_per_epoch > 0, "{phase}");

        let epoch_records: Vec<&Value> = in_phase(metrics, "epoch", phase).collect();
        let numbers: Vec<u64> = epoch_records.iter().map(|r| as_u64(&r["epoch"])).collect();
        assert_eq!(
            numbers,
            (1..=epochs).collect::<Vec<_>>(),
            "{phase} epoch records"
        );
        for r in &epoch_records {
            assert_eq!(
                as_u64(&r["step"]),
                as_u64(&r["epoch"]) * steps_per_epoch,
                "{phase}: {r}"
            );
            assert!(is_fraction(as_f64(&r["val_acc"])), "{phase}: {r}");
            assert!(
                as_f64(&r["train_loss"]).is_finite() && as_f64(&r["val_loss"]).is_finite(),
                "{phase}: {r}"
            );
        }

        let steps: Vec<u64> = in_phase(metrics, "step", phase)
            .map(|r| as_u64(&r["step"]))
            .collect();
        assert!(
            steps.windows(2).all(|w| w[0] < w[1]),
            "{phase} steps not increasing: {steps:?}"
        );
        assert_eq!(
            steps.last(),
            Some(&(epochs * steps_per_epoch)),
            "{phase} steps: {steps:?}"
        );
        assert!(
            steps
                .iter()
                .all(|s| s % log_every == 0 || s % steps_per_epoch == 0),
            "{phase}: a step record every {log_every} steps and at each epoch end: {steps:?}"
        );
        assert!(
            in_phase(metrics, "step", phase).all(|r| as_f64(&r["loss"]).is_finite()),
            "{phase}"
        );
    }
    let finished = of_type(metrics, "finished").next().unwrap();
    assert_eq!(
        &finished["summary"], summary_json,
        "the finished event carries summary.json"
    );
}

/// Expected tensor names and shapes of an MLP (PyTorch `nn.Linear` layout: weight `[out, in]`).
/// The hidden sizes of an mlp model.
fn hidden(model: &ModelConfig) -> &[usize] {
    match model {
        ModelConfig::Mlp(mlp) => &mlp.hidden,
        other => panic!("expected an mlp, found {other}"),
    }
}

fn mlp_shapes(inputs: usize, hidden: &[usize], classes: usize) -> BTreeMap<String, Vec<usize>> {
    let sizes: Vec<usize> = std::iter::once(inputs)
        .chain(hidden.iter().copied())
        .chain([classes])
        .collect();
    sizes
        .windows(2)
        .enumerate()
        .flat_map(|(i, w)| {
            [
                (format!("layers.{i}.weight"), vec![w[1], w[0]]),
                (format!("layers.{i}.bias"), vec![w[1]]),
            ]
        })
        .collect()
}

/// Tensor names -> (shape, raw f32 data) of a safetensors file.
fn read_safetensors(path: &Path) -> BTreeMap<String, (Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let tensors = SafeTensors::deserialize(&bytes)
        .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
    tensors
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            assert_eq!(view.dtype(), Dtype::F32, "{} {name}", path.display());
            (name, (view.shape().to_vec(), view.data().to_vec()))
        })
        .collect()
}

/// Checks a weights file against the MLP it should hold; returns its parameter count.
fn check_weights(path: &Path, expected: &BTreeMap<String, Vec<usize>>) -> usize {
    let shapes: BTreeMap<String, Vec<usize>> = read_safetensors(path)
        .into_iter()
        .map(|(n, (s, _))| (n, s))
        .collect();
    assert_eq!(&shapes, expected, "{}", path.display());
    shapes.values().map(|s| s.iter().product::<usize>()).sum()
}

fn check_result(r: &PhaseResult, phase: &str, epochs: usize, params: usize) {
    assert_eq!(r.phase.as_str(), phase);
    assert!(r.trained, "{phase}");
    assert_eq!(r.epochs_run, epochs, "{phase}");
    assert!(
        (1..=epochs).contains(&r.best_epoch),
        "{phase}: best epoch {}",
        r.best_epoch
    );
    for acc in [r.test_acc, r.test_acc_last, r.best_val_acc] {
        assert!(is_fraction(acc), "{phase}: accuracy {acc}");
    }
    assert_eq!(r.per_class_acc.len(), DIGITS_SHAPE.1, "{phase}");
    assert!(
        r.per_class_acc.iter().all(|a| a.is_some_and(is_fraction)),
        "{phase}: {:?}",
        r.per_class_acc
    );
    assert_eq!(
        (r.size.params, r.size.bytes),
        (params, 4 * params),
        "{phase}"
    );
    assert!(
        r.latency.batch1_us > 0.0 && r.latency.per_sample_us > 0.0,
        "{phase}: {:?}",
        r.latency
    );
    assert_eq!(r.weights, format!("{phase}.safetensors"));
}

/// What a run must reproduce exactly from its preset and seed: everything but timings.
#[derive(Debug, PartialEq)]
struct Figures {
    /// summary.json's per-phase results without latency and training time.
    results: Vec<Value>,
    /// metrics.jsonl's epoch records without wall time.
    epochs: Vec<Value>,
}

fn without(record: &Value, keys: &[&str]) -> Value {
    let mut record = record.clone();
    let fields = record.as_object_mut().expect("a JSON object");
    for key in keys {
        fields.remove(*key);
    }
    record
}

fn figures(run: &Run) -> Figures {
    let summary = serde_json::to_value(run.summary()).unwrap();
    let results = ["teacher", "baseline", "distilled"]
        .iter()
        .map(|phase| without(&summary[phase], &["latency", "train_seconds"]))
        .collect();
    let epochs = of_type(&run.metrics(), "epoch")
        .map(|r| without(r, &["wall_time"]))
        .collect();
    Figures { results, epochs }
}

#[test]
fn default_preset_leaves_a_complete_run_folder() {
    let run = Run::digits(&[]);
    let (inputs, classes) = DIGITS_SHAPE;

    let mut entries: Vec<String> = std::fs::read_dir(&run.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    let expected_entries = [
        "accuracy.svg",
        "baseline.safetensors",
        "checkpoint.json",
        "checkpoints",
        "distilled.safetensors",
        "job.lock",
        "loss.svg",
        "metrics.jsonl",
        "preset.toml",
        "summary.json",
        "teacher.safetensors",
    ];
    assert_eq!(entries, expected_entries);
    for plot in ["loss.svg", "accuracy.svg"] {
        let svg = std::fs::read_to_string(run.file(plot)).unwrap();
        assert!(
            svg.starts_with("<svg")
                && ["teacher", "baseline", "distilled"]
                    .iter()
                    .all(|p| svg.contains(p)),
            "{plot} has a line per phase"
        );
    }
    // Once a phase is done its checkpoints go; the students keep their end state (last weights,
    // optimizer, best weights), from which a completed run can give them more epochs.
    let mut kept: Vec<String> = std::fs::read_dir(run.file("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    kept.sort();
    let summary = run.summary();
    let mut expected: Vec<String> = [&summary.baseline, &summary.distilled]
        .into_iter()
        .flatten()
        .flat_map(|r| {
            let p = r.phase.as_str();
            [
                format!("{p}-best-e{}.safetensors", r.best_epoch),
                format!("{p}-last.optimizer.safetensors"),
                format!("{p}-last.safetensors"),
            ]
        })
        .collect();
    expected.sort();
    assert_eq!(kept, expected);

    // preset.toml is the resolved preset, overrides included.
    let recorded = run.preset();
    let overrides: Vec<Override> = FEW_EPOCHS.iter().map(|o| o.parse().unwrap()).collect();
    let expected = config::load(
        config::DIGITS_PRESET,
        config::DIGITS_PRESET_NAME,
        &overrides,
    )
    .unwrap();
    assert_eq!((recorded.teacher.epochs, recorded.student.epochs), (3, 3));
    assert_eq!(recorded, expected);

    // Weights: PyTorch-style names, shapes of the configured models (teacher [256, 256] and
    // student [32] as the digits preset stands).
    let teacher_shapes = mlp_shapes(inputs, hidden(&recorded.teacher.model), classes);
    let teacher_params = check_weights(&run.file("teacher.safetensors"), &teacher_shapes);
    let student_shapes = mlp_shapes(inputs, hidden(&recorded.student.model), classes);
    let student_params = check_weights(&run.file("baseline.safetensors"), &student_shapes);
    assert_eq!(
        check_weights(&run.file("distilled.safetensors"), &student_shapes),
        student_params
    );
    assert!(
        teacher_params > 10 * student_params,
        "{teacher_params} vs {student_params}"
    );

    // summary.json
    let summary = run.summary();
    assert_eq!(summary.status, RunStatus::Completed);
    assert_eq!((summary.name.as_str(), summary.seed), ("digits", 7));
    assert!(summary.data.starts_with("digits"), "{}", summary.data);
    let (teacher, baseline, distilled) = (
        summary.teacher.as_ref().expect("teacher result"),
        summary.baseline.as_ref().expect("baseline result"),
        summary.distilled.as_ref().expect("distilled result"),
    );
    check_result(teacher, "teacher", 3, teacher_params);
    check_result(baseline, "baseline", 3, student_params);
    check_result(distilled, "distilled", 3, student_params);
    assert_eq!(summary.input.dims(), [1, 8, 8]);
    assert_eq!(summary.classes.len(), 10);
    assert_eq!(
        (teacher.model.as_str(), distilled.model.as_str()),
        ("mlp 256-256", "mlp 32")
    );
    // No augmentation: the teacher's outputs are computed once.
    assert_eq!(distilled.teacher_outputs, Some(TeacherOutputs::Computed));
    assert_eq!(baseline.teacher_outputs, None);
    let comparison = summary.comparison.as_ref().expect("comparison");
    assert!((comparison.compression - teacher_params as f64 / student_params as f64).abs() < 1e-9);
    assert!((comparison.bytes_ratio - comparison.compression).abs() < 1e-9);
    assert!(comparison.speedup_batch1 > 0.0 && comparison.speedup_batch > 0.0);
    let gain = comparison.gain_pp.expect("gain over the baseline");
    // The paired test scores both students on the same test examples: its counts give the gain.
    let paired = comparison.paired.expect("paired test");
    // The whole test split (latency's large batch is min(1024, test size)).
    assert_eq!(paired.n, baseline.latency.batch_size);
    let (b, c) = (paired.only_baseline as f64, paired.only_distilled as f64);
    assert!(
        (100.0 * (c - b) / paired.n as f64 - gain).abs() < 1e-9,
        "{paired:?} vs {gain}"
    );
    assert!((paired.gain_pp - gain).abs() < 1e-9);
    assert!(paired.p_value > 0.0 && paired.p_value <= 1.0);
    assert!(paired.ci_pp[0] <= gain && gain <= paired.ci_pp[1]);
    assert!(
        run.outcome.stdout.contains(&paired.describe()),
        "{}",
        run.outcome.stdout
    );
    assert!((gain - 100.0 * (distilled.test_acc - baseline.test_acc)).abs() < 1e-9);
    let gap = comparison.gap_to_teacher_pp.expect("gap to the teacher");
    assert!((gap - 100.0 * (teacher.test_acc - distilled.test_acc)).abs() < 1e-9);
    let teacher_gap = teacher.test_acc - baseline.test_acc;
    match comparison.gap_closed {
        Some(closed) => {
            assert!(teacher_gap > 0.0);
            let expected = (distilled.test_acc - baseline.test_acc) / teacher_gap;
            assert!((closed - expected).abs() < 1e-9, "{closed} vs {expected}");
            let line = format!("gap closed: {:.0}%", 100.0 * closed);
            assert!(run.outcome.stdout.contains(&line), "{}", run.outcome.stdout);
        }
        None => assert!(
            teacher_gap <= 0.0,
            "no gap_closed with a gap of {teacher_gap}"
        ),
    }

    // The final table on stdout: one row per model, with its size and accuracy.
    for r in summary.results() {
        let row = run
            .table_row(r.phase.as_str())
            .unwrap_or_else(|| panic!("no {:?} row in\n{}", r.phase, run.outcome.stdout));
        assert_eq!(row[2], r.model);
        assert_eq!(row[3], r.size.params.to_string());
        assert_eq!(row[5], format!("{:.2}%", 100.0 * r.test_acc));
    }

    // metrics.jsonl
    let metrics = run.metrics();
    let started = of_type(&metrics, "run_started").next().unwrap();
    assert_eq!(as_u64(&started["teacher"]["params"]), teacher_params as u64);
    assert_eq!(as_u64(&started["student"]["params"]), student_params as u64);
    assert_eq!(started["run_dir"], run.dir.display().to_string());
    let summary_json: Value =
        serde_json::from_str(&std::fs::read_to_string(run.file("summary.json")).unwrap()).unwrap();
    check_completed_metrics(
        &metrics,
        &["teacher", "baseline", "distilled"],
        3,
        recorded.log_every as u64,
        &summary_json,
    );
    for phase in ["teacher", "baseline", "distilled"] {
        let finished = in_phase(&metrics, "phase_finished", phase).next().unwrap();
        assert_eq!(
            &finished["result"], &summary_json[phase],
            "phase_finished carries the {phase} result"
        );
    }
}

#[test]
fn same_seed_reproduces_the_run_and_another_seed_changes_it() {
    let first = Run::digits(&[]);
    let again = Run::digits(&[]);
    assert_eq!(
        figures(&first),
        figures(&again),
        "same preset and seed, same results"
    );
    for weights in [
        "teacher.safetensors",
        "baseline.safetensors",
        "distilled.safetensors",
    ] {
        assert_eq!(
            read_safetensors(&first.file(weights)),
            read_safetensors(&again.file(weights)),
            "{weights}"
        );
    }

    let other = Run::digits(&["seed=8"]);
    assert_eq!(other.summary().seed, 8);
    let (first_figures, other_figures) = (figures(&first), figures(&other));
    // Another split and initialisation: other losses and accuracies, epoch by epoch and on test.
    assert_ne!(first_figures.epochs, other_figures.epochs);
    assert_ne!(first_figures.results, other_figures.results);
    assert_ne!(
        read_safetensors(&first.file("teacher.safetensors")),
        read_safetensors(&other.file("teacher.safetensors"))
    );
}

#[test]
fn baseline_false_skips_the_baseline_phase() {
    let with_baseline = Run::digits(&[]);
    let run = Run::digits(&["student.baseline=false"]);
    let summary = run.summary();
    assert_eq!(summary.status, RunStatus::Completed);
    assert!(summary.baseline.is_none());
    assert!(!run.file("baseline.safetensors").exists());
    assert!(
        run.table_row("baseline").is_none(),
        "{}",
        run.outcome.stdout
    );
    assert!(
        run.table_row("distilled").is_some(),
        "{}",
        run.outcome.stdout
    );
    let comparison = summary
        .comparison
        .as_ref()
        .expect("teacher vs distilled comparison");
    assert_eq!(comparison.gain_pp, None);
    assert!(comparison.gap_to_teacher_pp.is_some());

    let metrics = run.metrics();
    let summary_json: Value = serde_json::to_value(&summary).unwrap();
    let log_every = run.preset().log_every as u64;
    check_completed_metrics(
        &metrics,
        &["teacher", "distilled"],
        3,
        log_every,
        &summary_json,
    );
    assert_eq!(in_phase(&metrics, "step", "baseline").count(), 0);

    // Skipping the baseline changes nothing about the distilled student.
    let distilled = summary.distilled.as_ref().unwrap();
    assert_eq!(
        distilled.test_acc,
        with_baseline.summary().distilled.unwrap().test_acc
    );
    assert_eq!(
        read_safetensors(&run.file("distilled.safetensors")),
        read_safetensors(&with_baseline.file("distilled.safetensors"))
    );
}

#[test]
fn teacher_loaded_from_a_checkpoint_is_not_retrained() {
    let trained = Run::digits(&[]);
    let weights = trained.file("teacher.safetensors");
    let loaded = Run::digits(&[&format!(
        "teacher.checkpoint={:?}",
        weights.display().to_string()
    )]);

    assert_eq!(
        loaded.preset().teacher.checkpoint.as_deref(),
        Some(weights.as_path())
    );

    let (before, after) = (trained.summary(), loaded.summary());
    let (t0, t1) = (
        before.teacher.as_ref().unwrap(),
        after.teacher.as_ref().unwrap(),
    );
    assert!(!t1.trained);
    assert_eq!(t1.epochs_run, 0);
    assert_eq!(
        t1.test_acc, t0.test_acc,
        "the loaded teacher is the saved one"
    );
    assert_eq!(t1.per_class_acc, t0.per_class_acc);
    assert_eq!(
        read_safetensors(&loaded.file("teacher.safetensors")),
        read_safetensors(&weights)
    );
    assert_eq!(
        loaded.table_row("teacher").expect("teacher row")[7],
        "loaded"
    );
    // Same teacher, same seed: the students come out the same as in the first run.
    assert_eq!(
        after.distilled.unwrap().test_acc,
        before.distilled.unwrap().test_acc
    );
    assert_eq!(
        after.baseline.unwrap().test_acc,
        before.baseline.unwrap().test_acc
    );

    let metrics = loaded.metrics();
    let started = in_phase(&metrics, "phase_started", "teacher")
        .next()
        .expect("teacher phase_started");
    assert_eq!(as_u64(&started["epochs"]), 0);
    assert_eq!(in_phase(&metrics, "epoch", "teacher").count(), 0);
    assert_eq!(in_phase(&metrics, "step", "teacher").count(), 0);
    assert!(
        in_phase(&metrics, "log", "teacher").any(|r| r["message"]
            .as_str()
            .is_some_and(|m| m.contains("teacher loaded from"))),
        "a log record says where the teacher came from"
    );
    assert_eq!(
        phases_of(&metrics, "phase_finished"),
        ["teacher", "baseline", "distilled"]
    );
}

#[test]
fn sigterm_checkpoints_and_marks_the_run_interrupted() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let (code, stderr) = run_until_sigterm(
        &dir,
        "metrics.jsonl",
        &["--set", "teacher.epochs=100000"],
        |r| r["type"] == "epoch",
    );
    assert_eq!(code, Some(128 + 15), "exit code 128 + SIGTERM\n{stderr}");
    assert!(stderr.contains("SIGTERM received"), "{stderr}");
    // The way back: the folder, the outcome and the command that goes on with the run.
    let go_on = format!("go on with: kd-tui --batch --resume {}", dir.display());
    assert!(stderr.contains(&go_on), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "interrupted (SIGTERM); run folder {}",
            dir.display()
        )),
        "{stderr}"
    );

    let summary = read_summary(&dir);
    assert_eq!(summary.status, RunStatus::Interrupted);
    assert!(
        summary.teacher.is_none() && summary.distilled.is_none(),
        "the teacher phase never finished"
    );

    let metrics = read_metrics(&dir);
    assert_eq!(metrics.last().unwrap()["type"], "finished");
    assert_eq!(metrics.last().unwrap()["summary"]["status"], "interrupted");
    assert!(of_type(&metrics, "phase_finished").next().is_none());
    let checkpoint = of_type(&metrics, "checkpoint")
        .next()
        .expect("a checkpoint record");
    let path = PathBuf::from(checkpoint["path"].as_str().unwrap());
    let (epoch, step) = (as_u64(&checkpoint["epoch"]), as_u64(&checkpoint["step"]));
    assert!(epoch >= 1 && step >= 1, "{checkpoint}");
    assert_eq!(
        path,
        dir.join(format!("checkpoints/teacher-e{epoch}-s{step}.safetensors"))
    );
    // The checkpoint the event names, and whatever else went to checkpoints/, is teacher weights.
    let (inputs, classes) = DIGITS_SHAPE;
    let teacher_shapes = mlp_shapes(inputs, hidden(&read_preset(&dir).teacher.model), classes);
    let saved: Vec<PathBuf> = std::fs::read_dir(dir.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(saved.contains(&path), "{} not in {saved:?}", path.display());
    // Beside the weights, Adam's two moments of each of them.
    let moments: BTreeMap<String, Vec<usize>> = teacher_shapes
        .iter()
        .flat_map(|(name, shape)| (0..2).map(move |i| (format!("{i}.{name}"), shape.clone())))
        .collect();
    let optimizer = path.with_extension("optimizer.safetensors");
    assert!(saved.contains(&optimizer), "{saved:?}");
    for file in &saved {
        let expected = if file.to_string_lossy().ends_with(".optimizer.safetensors") {
            &moments
        } else {
            &teacher_shapes
        };
        check_weights(file, expected);
    }
}

#[test]
fn a_stopped_run_resumes_without_retraining_finished_phases() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    // The teacher finishes; the baseline would run "forever" and is stopped in its 3rd epoch.
    let args = [
        "--set",
        "teacher.epochs=3",
        "--set",
        "student.epochs=100000",
    ];
    let (code, stderr) = run_until_sigterm(&dir, "metrics.jsonl", &args, |r| {
        r["type"] == "epoch" && r["phase"] == "baseline" && as_u64(&r["epoch"]) >= 2
    });
    assert_eq!(code, Some(128 + 15), "{stderr}");
    let stopped = read_summary(&dir);
    let teacher = stopped.teacher.clone().expect("the teacher had finished");
    let checkpoint: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("checkpoint.json")).unwrap())
            .unwrap();
    assert_eq!(checkpoint["phase"], "baseline");
    let (epoch, step) = (as_u64(&checkpoint["epoch"]), as_u64(&checkpoint["step"]));
    assert!(epoch >= 3, "{checkpoint}");

    // Go on with a finite student budget: two more epochs than were started.
    let budget = format!("student.epochs={}", epoch + 2);
    let resumed = run([
        OsString::from("--batch"),
        "--resume".into(),
        dir.clone().into(),
        "--set".into(),
        budget.into(),
    ]);
    assert_eq!(resumed.code, Some(0), "{resumed:?}");
    let summary = read_summary(&dir);
    assert_eq!(summary.status, RunStatus::Completed);
    assert_eq!(
        summary.teacher.as_ref(),
        Some(&teacher),
        "the teacher is kept, not retrained"
    );
    assert_eq!(
        summary.baseline.as_ref().unwrap().epochs_run as u64,
        epoch + 2
    );
    assert_eq!(
        summary.distilled.as_ref().unwrap().epochs_run as u64,
        epoch + 2
    );

    let metrics = read_metrics(&dir);
    let resumed_at = metrics
        .iter()
        .position(common::is_resume_record)
        .expect("a log record of the resume");
    let after = &metrics[resumed_at..];
    assert_eq!(phases_of(after, "phase_started"), ["baseline", "distilled"]);
    let first_step = after
        .iter()
        .find(|r| r["type"] == "step" && r["phase"] == "baseline")
        .unwrap();
    assert!(
        as_u64(&first_step["step"]) > step,
        "steps go on from {step}: {first_step}"
    );
    let epochs: Vec<u64> = in_phase(after, "epoch", "baseline")
        .map(|r| as_u64(&r["epoch"]))
        .collect();
    assert_eq!(
        epochs,
        (epoch..=epoch + 2).collect::<Vec<_>>(),
        "the stopped epoch is finished, then the rest"
    );
    check_weights(
        &dir.join("baseline.safetensors"),
        &mlp_shapes(64, &[32], 10),
    );
}

#[test]
fn resume_needs_a_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let outcome = run([
        OsString::from("--batch"),
        "--resume".into(),
        tmp.path().into(),
    ]);
    assert_eq!(outcome.code, Some(2), "{outcome:?}");
    assert!(
        outcome.stderr.contains("checkpoint.json"),
        "{}",
        outcome.stderr
    );
}

#[test]
fn tui_refuses_a_non_terminal_stdout_and_points_to_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let outcome = run([OsString::from("--out"), dir.clone().into()]);
    assert_eq!(outcome.code, Some(2), "{outcome:?}");
    assert!(
        outcome.stderr.contains("not a terminal"),
        "{}",
        outcome.stderr
    );
    assert!(outcome.stderr.contains("--batch"), "{}", outcome.stderr);
    assert!(!dir.exists(), "no run folder without a run");
}

#[test]
fn mnist_teacher_learns() {
    let Some(mnist) = common::data::mnist_dir() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let path = toml::Value::String(mnist.display().to_string()).to_string();
    let text = default_preset_with(&[
        ("data.source", r#""mnist""#),
        ("data.path", &path),
        ("data.train_limit", "5000"),
    ]);
    let preset = write_preset(tmp.path(), "mnist.toml", &text);
    let overrides = [
        "teacher.epochs=2",
        "student.epochs=2",
        "teacher.model.hidden=[128]",
        "student.model.hidden=[16]",
    ];
    let run = Run::new(Some(&preset), &overrides);

    let summary = run.summary();
    assert_eq!(summary.status, RunStatus::Completed);
    assert!(summary.data.starts_with("mnist"), "{}", summary.data);
    let started = of_type(&run.metrics(), "run_started")
        .next()
        .cloned()
        .unwrap();
    assert_eq!(as_u64(&started["train_examples"]), 5000);
    let teacher = summary.teacher.as_ref().unwrap();
    assert!(
        teacher.test_acc > 0.85,
        "MNIST teacher test accuracy {}",
        teacher.test_acc
    );
    for r in summary.results() {
        assert!(
            is_fraction(r.test_acc) && r.per_class_acc.len() == 10,
            "{r:?}"
        );
    }
    check_weights(
        &run.file("teacher.safetensors"),
        &mlp_shapes(784, &[128], 10),
    );
    check_weights(
        &run.file("distilled.safetensors"),
        &mlp_shapes(784, &[16], 10),
    );
}

#[test]
fn repeated_seeds_run_each_seed_in_its_folder_and_aggregate() {
    let tmp = tempfile::tempdir().unwrap();
    let parent = tmp.path().join("seeds");
    let outcome = run([
        "--batch",
        "--seeds",
        "2",
        "--set",
        "teacher.epochs=2",
        "--set",
        "student.epochs=2",
        "--out",
        parent.to_str().unwrap(),
    ]);
    assert_eq!(outcome.code, Some(0), "{}", outcome.stderr);
    let mut seeds = Vec::new();
    for seed in [7, 8] {
        let summary = read_summary(&parent.join(format!("seed-{seed}")));
        assert_eq!(
            (&summary.status, summary.seed),
            (&RunStatus::Completed, seed)
        );
        seeds.push(summary);
    }
    let report: kd_tui::series::seeds::SeedsReport =
        serde_json::from_str(&std::fs::read_to_string(parent.join("seeds.json")).unwrap()).unwrap();
    assert_eq!(report.rows.len(), 2);
    assert_eq!(report.status, RunStatus::Completed);
    let accs: Vec<f64> = seeds
        .iter()
        .map(|s| 100.0 * s.distilled.as_ref().unwrap().test_acc)
        .collect();
    let mean = (accs[0] + accs[1]) / 2.0;
    assert!((report.distilled.unwrap().mean - mean).abs() < 1e-9);
    let pooled = report.pooled.unwrap();
    let per_seed: Vec<_> = seeds
        .iter()
        .map(|s| s.comparison.as_ref().unwrap().paired.unwrap())
        .collect();
    assert_eq!(pooled.n, per_seed[0].n + per_seed[1].n);
    assert_eq!(
        pooled.only_distilled,
        per_seed[0].only_distilled + per_seed[1].only_distilled
    );
    let csv = std::fs::read_to_string(parent.join("seeds.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(
        csv.lines().nth(2).unwrap().starts_with("8,completed,"),
        "{csv}"
    );
    assert!(
        outcome.stdout.contains("mean ± sd (2)"),
        "{}",
        outcome.stdout
    );
    assert!(
        outcome.stdout.contains("gain over seeds:"),
        "{}",
        outcome.stdout
    );

    // The seeds can come from the preset; repeated ones are refused, as is the TUI (for now).
    let listed = tmp.path().join("listed");
    let outcome = run([
        "--batch",
        "--set",
        "seeds=[3, 3]",
        "--out",
        listed.to_str().unwrap(),
    ]);
    assert_eq!(outcome.code, Some(2));
    assert!(outcome.stderr.contains("key `seeds`"), "{}", outcome.stderr);
}
