//! End-to-end runs with the models real work needs: a CNN or ResNet teacher distilled into an
//! MLP student, augmentation, CSV files as people have them, refused model/data combinations,
//! and exporting the result (TorchScript checked by PyTorch itself).

mod common;

use common::{default_preset_with, run, write_preset, Run};
use kd_tui::protocol::summary::{RunStatus, TeacherOutputs};
use kd_tui::protocol::Phase;
use std::path::Path;

/// A small CNN teacher with batch norm, trained on shifted images.
const CNN_TEACHER: &str = r#"teacher.model={ kind = "cnn", channels = [8, 16], kernel = 3, batch_norm = true, hidden = [32] }"#;

fn digits_run(overrides: &[&str]) -> Run {
    let few = ["teacher.epochs=2", "student.epochs=2"];
    Run::new(None, &[&few[..], overrides].concat())
}

#[test]
fn cnn_teacher_distils_into_an_mlp_student_that_sees_the_same_augmented_batches() {
    let unaugmented = [CNN_TEACHER, "teacher.epochs=5", "teacher.lr=3e-3"];
    let augments = [
        "teacher.augment={ shift = 1 }",
        "student.augment={ shift = 1 }",
    ];
    let overrides = [&unaugmented[..], &augments[..]].concat();
    let run = digits_run(&overrides);
    let summary = run.summary();
    assert_eq!(summary.status, RunStatus::Completed);
    let teacher = summary.teacher.as_ref().unwrap();
    let distilled = summary.distilled.as_ref().unwrap();
    assert_eq!(teacher.model, "cnn 8-16/32 bn");
    assert_eq!(distilled.model, "mlp 32");
    // conv 1*8*9 + bn 16, conv 8*16*9 + bn 32, 8 -> 4 -> 2: head 16*2*2*32 + 32, 32*10 + 10.
    assert_eq!(teacher.size.params, 72 + 16 + 1152 + 32 + 2080 + 330);
    assert!(
        teacher.test_acc > 0.5,
        "the CNN teacher learns: {}",
        teacher.test_acc
    );
    // 9 views for 2 epochs: the teacher scores each augmented batch (fewer passes than over
    // every view).
    assert_eq!(distilled.teacher_outputs, Some(TeacherOutputs::PerBatch));
    assert!(
        run.outcome.stdout.contains("computed on every batch"),
        "{}",
        run.outcome.stdout
    );
    // The teacher's batch-norm statistics are saved with its weights.
    let weights = std::fs::read(run.file("teacher.safetensors")).unwrap();
    let names = safetensors::SafeTensors::deserialize(&weights)
        .unwrap()
        .names()
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    assert!(
        names.contains(&"features.1.bn.running_var".to_string()),
        "{names:?}"
    );

    // Augmentation is drawn from the seed: the same seed replays the run bit for bit.
    let again = digits_run(&overrides);
    for file in ["teacher.safetensors", "distilled.safetensors"] {
        assert_eq!(
            std::fs::read(run.file(file)).unwrap(),
            std::fs::read(again.file(file)).unwrap(),
            "{file}"
        );
    }
    // And it really moves pixels: without it, all else equal, the teacher ends elsewhere.
    let plain = digits_run(&unaugmented);
    assert_ne!(
        std::fs::read(run.file("teacher.safetensors")).unwrap(),
        std::fs::read(plain.file("teacher.safetensors")).unwrap()
    );
    assert_eq!(
        plain.summary().distilled.unwrap().teacher_outputs,
        Some(TeacherOutputs::Computed)
    );
}

#[test]
fn resnet_teacher_runs_end_to_end() {
    let run = digits_run(&[
        r#"teacher.model={ kind = "resnet", depth = 8 }"#,
        "teacher.epochs=1",
        "student.baseline=false",
    ]);
    let summary = run.summary();
    let teacher = summary.teacher.unwrap();
    assert_eq!(teacher.model, "resnet8");
    assert_eq!(teacher.epochs_run, 1);
    assert!(summary.distilled.is_some() && summary.baseline.is_none());
}

#[test]
fn bf16_mixed_precision_trains_every_phase_as_well_as_float32() {
    let fp32 = Run::digits(&[]);
    let bf16 = Run::digits(&[r#"precision="bf16""#]);
    let (a, b) = (fp32.summary(), bf16.summary());
    assert_eq!(b.device, format!("{}, bf16 autocast", a.device));
    assert_eq!(bf16.preset().precision, kd_tui::config::Precision::Bf16);
    for phase in [Phase::Teacher, Phase::Baseline, Phase::Distilled] {
        let acc = |s: &kd_tui::protocol::summary::RunSummary| s.test_acc_pct(phase).unwrap();
        assert!(
            (acc(&a) - acc(&b)).abs() < 2.0,
            "{phase:?}: fp32 {} vs bf16 {}",
            acc(&a),
            acc(&b)
        );
    }
    assert_ne!(fp32.metrics(), bf16.metrics(), "bf16 changed no arithmetic");
}

/// Runs a preset that must be refused before training; returns stderr.
fn refused(text: &str) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let preset = write_preset(tmp.path(), "p.toml", text);
    let out = tmp.path().join("run");
    let outcome = run([
        "--batch".as_ref(),
        preset.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
    assert_eq!(outcome.code, Some(2), "{}", outcome.stderr);
    assert!(!out.join("metrics.jsonl").exists(), "nothing trained");
    outcome.stderr
}

fn csv_file(dir: &Path) -> std::path::PathBuf {
    // Kaggle style: the label first, under a header; labels are values (0 and 5), not counts.
    let mut text = String::from("label,a,b,c,d\n");
    for i in 0..60 {
        let label = if i % 2 == 0 { 0 } else { 5 };
        let shift = if label == 5 { 2.0 } else { 0.0 };
        let x = (i % 7) as f64 / 7.0;
        text.push_str(&format!(
            "{label},{},{},{},{}\n",
            x + shift,
            1.0 - x,
            shift,
            x * x
        ));
    }
    let path = dir.join("kaggle.csv");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn models_and_augmentation_that_cannot_take_the_data_exit_2_with_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = csv_file(tmp.path());
    let csv_preset = |extra: &[(&str, &str)]| {
        let path = format!("{:?}", csv.display().to_string());
        let mut edits = vec![
            ("data.source", r#""csv""#),
            ("data.path", path.as_str()),
            ("data.label", r#""label""#),
        ];
        edits.extend_from_slice(extra);
        default_preset_with(&edits)
    };
    let e = refused(&csv_preset(&[(
        "teacher.model",
        r#"{ kind = "cnn", channels = [8] }"#,
    )]));
    assert!(
        e.contains("key `teacher.model`")
            && e.contains("cannot take [4] inputs")
            && e.contains("suit an mlp"),
        "{e}"
    );
    let e = refused(&csv_preset(&[("student.augment", "{ flip = true }")]));
    assert!(
        e.contains("key `student.augment`") && e.contains("flat [4] features"),
        "{e}"
    );
    let e = refused(&default_preset_with(&[(
        "teacher.model",
        r#"{ kind = "cnn", channels = [8, 8, 8, 8] }"#,
    )]));
    assert!(e.contains("empty after conv block 4"), "{e}");
    let e = refused(&default_preset_with(&[(
        "teacher.model",
        r#"{ kind = "resnet", depth = 9 }"#,
    )]));
    assert!(
        e.contains("key `teacher.model.depth`") && e.contains("[8, 14, 20, 32, 44, 56, 110]"),
        "{e}"
    );
    let e = refused(&default_preset_with(&[("data.label", "0")]));
    assert!(
        e.contains("key `data.label`: applies to csv files only"),
        "{e}"
    );
}

#[test]
fn csv_with_the_label_first_records_its_class_values() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = csv_file(tmp.path());
    let run = Run::new(
        None,
        &[
            "data.source=csv",
            &format!("data.path={:?}", csv.display().to_string()),
            "data.label=label",
            "data.normalize=standardize",
            "teacher.epochs=2",
            "student.epochs=2",
        ],
    );
    let summary = run.summary();
    assert_eq!(summary.classes, ["0", "5"]);
    assert_eq!(summary.input.dims(), [4]);
    // Two outputs, not six: the teacher's last layer is 256 -> 2.
    assert_eq!(summary.teacher.unwrap().per_class_acc.len(), 2);
    assert_eq!(
        run.preset().data.classes,
        Some(vec!["0".to_string(), "5".into()])
    );
}

#[test]
fn exported_torchscript_makes_the_same_predictions_in_pytorch() {
    let run = digits_run(&[CNN_TEACHER]);
    let tmp = tempfile::tempdir().unwrap();
    // Both models: the CNN teacher (batch norm in evaluation mode) and the MLP student.
    for (model, phase) in [("teacher", Phase::Teacher), ("distilled", Phase::Distilled)] {
        let script = tmp.path().join(format!("{model}.pt"));
        let outcome = run_export(
            &run.dir,
            &["--model", model, "--out", script.to_str().unwrap()],
        );
        assert_eq!(outcome.code, Some(0), "{}", outcome.stderr);
        assert_eq!(outcome.stdout.trim(), script.display().to_string());

        // kd-tui's own logits on the test split, and the inputs, as .npy for Python.
        let preset = run.preset();
        let data = kd_tui::data::load(&preset.data, preset.seed).unwrap();
        let (model_rs, summary) = kd_tui::export::load_model(&run.dir, phase).unwrap();
        let logits = model_rs.logits(&data.test.features.all());
        let mut dims = vec![data.test.len() as i64];
        dims.extend(summary.input.dims().iter().map(|&d| d as i64));
        let inputs = tmp.path().join("x.npy");
        let expected = tmp.path().join("logits.npy");
        data.test
            .features
            .all()
            .view(dims.as_slice())
            .write_npy(&inputs)
            .unwrap();
        logits.write_npy(&expected).unwrap();

        let Some(python) = common::python_with_torch() else {
            return;
        };
        let check = r#"
import sys, numpy as np, torch
m = torch.jit.load(sys.argv[1])
x = torch.from_numpy(np.load(sys.argv[2]))
want = torch.from_numpy(np.load(sys.argv[3]))
with torch.no_grad():
    got = m(x)
print(float((got - want).abs().max()), int((got.argmax(1) == want.argmax(1)).sum()), len(x))
"#;
        let out = std::process::Command::new(python)
            .args(["-c", check])
            .args([&script, &inputs, &expected])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let fields: Vec<&str> = stdout.split_whitespace().collect();
        let max_diff: f64 = fields[0].parse().unwrap();
        assert!(max_diff < 1e-4, "{model}: logits differ by {max_diff}");
        assert_eq!(
            fields[1], fields[2],
            "{model}: every prediction agrees ({stdout})"
        );
        assert_eq!(fields[2], data.test.len().to_string());
    }
}

fn run_export(dir: &Path, extra: &[&str]) -> common::Outcome {
    let mut args = vec!["export", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    run(&args)
}

#[test]
fn safetensors_export_and_export_errors() {
    let run = digits_run(&[CNN_TEACHER, "student.baseline=false"]);
    let outcome = run_export(&run.dir, &["--model", "teacher", "--format", "safetensors"]);
    assert_eq!(outcome.code, Some(0), "{}", outcome.stderr);
    let written = run.dir.join("export/teacher.safetensors");
    assert_eq!(outcome.stdout.trim(), written.display().to_string());
    let names = |p: &Path| {
        let bytes = std::fs::read(p).unwrap();
        let mut n: Vec<String> = safetensors::SafeTensors::deserialize(&bytes)
            .unwrap()
            .names()
            .into_iter()
            .map(String::from)
            .collect();
        n.sort();
        n
    };
    assert_eq!(names(&written), names(&run.file("teacher.safetensors")));

    let missing = run_export(&run.dir, &["--model", "baseline"]);
    assert_eq!(missing.code, Some(2));
    assert!(
        missing.stderr.contains("no baseline model"),
        "{}",
        missing.stderr
    );
    let nowhere = run_export(Path::new("/nonexistent/run"), &[]);
    assert_eq!(nowhere.code, Some(2));
    assert!(
        nowhere.stderr.contains("summary.json"),
        "{}",
        nowhere.stderr
    );
}

#[test]
fn a_teacher_checkpoint_that_does_not_fit_is_refused_before_training() {
    let tmp = tempfile::tempdir().unwrap();
    let other = digits_run(&["teacher.model.hidden=[16]", "student.epochs=1"]);
    let weights = other.file("teacher.safetensors");
    let not_weights = tmp.path().join("notes.safetensors");
    std::fs::write(&not_weights, "not a safetensors file").unwrap();
    for (checkpoint, says) in [
        (
            tmp.path().join("missing.safetensors"),
            "missing.safetensors: cannot be read as safetensors".to_string(),
        ),
        (
            not_weights.clone(),
            "notes.safetensors: cannot be read as safetensors".into(),
        ),
        // Another architecture: [16] hidden units where the preset says [256, 256]; every
        // difference is listed.
        (
            weights.clone(),
            "`layers.0.weight` is [16, 64] in the file, [256, 64] in `mlp 256-256`; \
             `layers.1.bias` is [10] in the file, [256] in `mlp 256-256`"
                .into(),
        ),
    ] {
        let out = tmp.path().join(format!(
            "run-{}",
            checkpoint.file_stem().unwrap().to_string_lossy()
        ));
        let outcome = run([
            "--batch".as_ref(),
            "--set".as_ref(),
            format!("teacher.checkpoint={:?}", checkpoint.display().to_string()).as_ref(),
            "--out".as_ref(),
            out.as_os_str(),
        ]);
        assert_eq!(outcome.code, Some(2), "{}", outcome.stderr);
        assert!(
            outcome.stderr.contains("key `teacher.checkpoint`") && outcome.stderr.contains(&says),
            "expected `{says}` in: {}",
            outcome.stderr
        );
        assert!(!out.exists(), "refused before a run folder is made");
    }
}
