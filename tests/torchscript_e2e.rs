//! TorchScript teachers and students (`model = { kind = "torchscript", path = ... }`): modules
//! written by the set-up's PyTorch (scripts/torchscript_teachers.py) on the digits splits as
//! kd-tui makes them. A teacher runs end to end loaded, scored as PyTorch scores it; students
//! (a scripted CNN, a traced MLP) are distilled from it and their modules predict in PyTorch
//! as kd-tui scored them; a stopped student resumes bit-identical; the other modules are
//! refused at set-up (exit 2) with the file named.

mod common;

use common::{run, Run, FEW_EPOCHS};
use kd_tui::config::{load, DIGITS_PRESET, DIGITS_PRESET_NAME};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use tch::{Kind, Tensor};

/// Writes the modules (and, with `predict`, runs kd-tui's students in PyTorch).
const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/scripts/torchscript_teachers.py"
);

/// The modules' folder and what PyTorch says of the trained teacher.
struct Modules {
    dir: PathBuf,
    report: serde_json::Value,
}

fn write_raw(path: &Path, t: &Tensor) {
    let bytes: Vec<u8> = match t.kind() {
        Kind::Int64 => Vec::<i64>::try_from(t.flatten(0, -1))
            .unwrap()
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        _ => Vec::<f32>::try_from(t.to_kind(Kind::Float).flatten(0, -1))
            .unwrap()
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
    };
    std::fs::write(path, bytes).unwrap();
}

/// Written once for all the tests here: the digits preset's splits, then the modules.
fn modules() -> &'static Modules {
    static MODULES: OnceLock<Modules> = OnceLock::new();
    MODULES.get_or_init(|| {
        // Shared by this binary's tests, so kept past any one of them: in cargo's scratch
        // folder for integration tests, made afresh by each run.
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("torchscript_e2e");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let preset = load(DIGITS_PRESET, DIGITS_PRESET_NAME, &[]).unwrap();
        let data = kd_tui::data::load(&preset.data, preset.seed).unwrap();
        write_raw(&dir.join("train_x"), &data.train.features.all());
        write_raw(
            &dir.join("train_y"),
            &data.train.labels.to_kind(Kind::Int64),
        );
        write_raw(&dir.join("test_x"), &data.test.features.all());
        write_raw(&dir.join("test_y"), &data.test.labels.to_kind(Kind::Int64));
        let shape = serde_json::json!({ "input": data.input.dims() });
        std::fs::write(dir.join("shape.json"), shape.to_string()).unwrap();
        let stdout = common::run_python([OsStr::new(SCRIPT), dir.as_os_str()]);
        let report = serde_json::from_slice(&stdout).unwrap();
        Modules { dir, report }
    })
}

fn teacher_at(path: &Path) -> String {
    format!(
        r#"teacher.model={{ kind = "torchscript", path = "{}" }}"#,
        path.display()
    )
}

#[test]
fn a_torchscript_teacher_is_loaded_not_trained_and_scored_as_pytorch_scores_it() {
    let modules = modules();
    let path = modules.dir.join("teacher.pt");
    let run = Run::new(
        None,
        &[&FEW_EPOCHS[..], &[teacher_at(&path).as_str()]].concat(),
    );
    let summary = run.summary();
    let teacher = summary.teacher.expect("a teacher result");
    assert!(
        !teacher.trained,
        "a TorchScript teacher is loaded, not trained"
    );
    assert_eq!(teacher.epochs_run, 0);
    let params = modules.report["params"].as_u64().unwrap() as usize;
    assert_eq!(teacher.size.params, params);
    assert_eq!(teacher.size.bytes, params * 4);
    assert!(teacher.latency.batch1_us > 0.0);
    let want = modules.report["test_acc"].as_f64().unwrap();
    assert!(want > 0.5, "the scripted teacher learned: {want}");
    assert!(
        (teacher.test_acc - want).abs() < 1e-6,
        "kd-tui scores the teacher {}, PyTorch {want}",
        teacher.test_acc
    );
    assert_eq!(
        teacher.model,
        format!("torchscript {}", path.display()),
        "the teacher is named by its file"
    );
    // The students learned from it.
    let distilled = summary.distilled.expect("a distilled student");
    assert!(distilled.test_acc > 0.5, "{}", distilled.test_acc);
    assert!(!run.outcome.stderr.contains("panicked"));

    // Its students train on (the teacher rebuilt from its file, its result kept) ...
    let dir = run.dir.display().to_string();
    let more = common::run(["--batch", "--resume", &dir, "--set", "student.epochs=4"]);
    assert_eq!(more.code, Some(0), "{}", more.stderr);
    let again = common::read_summary(&run.dir);
    assert_eq!(again.distilled.unwrap().epochs_run, 4);
    assert_eq!(again.teacher.unwrap().test_acc, teacher.test_acc);
    // ... and a completed run points a new one at the teacher's file, not teacher.safetensors.
    let done = common::run(["--batch", "--resume", &dir]);
    assert_eq!(done.code, Some(2), "{}", done.stderr);
    let named = format!(r#"kind = "torchscript", path = "{}""#, path.display());
    assert!(done.stderr.contains(&named), "{}", done.stderr);
}

/// `kd-tui --batch` with `overrides`, which must be refused at set-up naming `file`.
fn refused(overrides: &[&str], file: &Path, says: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let mut args = vec![
        "--batch".to_string(),
        "--out".into(),
        tmp.path().join("run").display().to_string(),
    ];
    for o in overrides {
        args.extend(["--set".to_string(), o.to_string()]);
    }
    let out = run(&args);
    assert_eq!(out.code, Some(2), "{args:?}: {}", out.stderr);
    let name = file.display().to_string();
    assert!(out.stderr.contains(&name), "names {name}: {}", out.stderr);
    for phrase in says {
        assert!(
            out.stderr.contains(phrase),
            "says `{phrase}`: {}",
            out.stderr
        );
    }
    assert!(!tmp.path().join("run").exists(), "no run folder");
}

#[test]
fn a_missing_file_is_refused() {
    let missing = std::env::temp_dir().join("kd-tui-no-such-teacher.pt");
    refused(
        &[&teacher_at(&missing)],
        &missing,
        &["cannot be loaded as TorchScript"],
    );
}

#[test]
fn a_module_of_another_input_shape_is_refused() {
    let path = modules().dir.join("flat.pt");
    refused(
        &[&teacher_at(&path)],
        &path,
        &["[1, 8, 8]", "mat1 and mat2 shapes cannot be multiplied"],
    );
}

#[test]
fn a_module_with_another_class_count_is_refused() {
    let path = modules().dir.join("classes.pt");
    refused(&[&teacher_at(&path)], &path, &["[2, 7]"]);
}

#[test]
fn a_module_returning_a_tuple_is_refused() {
    let path = modules().dir.join("tuple.pt");
    refused(&[&teacher_at(&path)], &path, &["a tuple of 2 values"]);
}

#[test]
fn hint_with_a_torchscript_teacher_is_refused() {
    let path = modules().dir.join("teacher.pt");
    refused(
        &[
            &teacher_at(&path),
            "distill.method=\"hint\"",
            "distill.teacher_layer=\"fc1\"",
            "distill.student_layer=\"fc1\"",
        ],
        &path,
        &["has no named features"],
    );
}

#[test]
fn hint_with_a_torchscript_student_is_refused() {
    let path = modules().dir.join("student_cnn.pt");
    refused(
        &[
            &student_at(&path),
            "distill.method=\"hint\"",
            "distill.teacher_layer=\"layers.1\"",
            "distill.student_layer=\"fc\"",
        ],
        &path,
        &["needs a named student layer", "has no named features"],
    );
}

#[test]
fn a_torchscript_student_is_probed_as_a_teacher_is() {
    let path = modules().dir.join("classes.pt");
    refused(
        &[&student_at(&path)],
        &path,
        &["key `student.model`", "[2, 7]"],
    );
}

fn student_at(path: &Path) -> String {
    teacher_at(path).replacen("teacher.", "student.", 1)
}

/// What PyTorch makes of students kd-tui trained from `original`: for each `(weights, module)`,
/// the module as `torch.jit.load` gives it, against `original` with `weights` loaded by name.
fn predict(original: &Path, pairs: &[(PathBuf, PathBuf)]) -> Vec<serde_json::Value> {
    let args = [
        OsStr::new(SCRIPT),
        modules().dir.as_os_str(),
        OsStr::new("predict"),
        original.as_os_str(),
    ];
    let pairs = pairs
        .iter()
        .flat_map(|(w, m)| [w.as_os_str(), m.as_os_str()]);
    serde_json::from_slice(&common::run_python(args.into_iter().chain(pairs))).unwrap()
}

/// Distils the TorchScript teacher into the TorchScript student `file` with `overrides`; checks
/// that each student's module, and its export, predicts in PyTorch exactly as kd-tui scored it.
fn distil_into(file: &str, overrides: &[&str]) -> Run {
    let modules = modules();
    let (teacher, student) = (modules.dir.join("teacher.pt"), modules.dir.join(file));
    let sets = [teacher_at(&teacher), student_at(&student)];
    let run = Run::new(
        None,
        &[&sets.each_ref().map(String::as_str)[..], overrides].concat(),
    );
    let summary = run.summary();
    let results = [summary.baseline, summary.distilled].map(Option::unwrap);
    let mut pairs = Vec::new();
    for result in &results {
        assert_eq!(result.model, format!("torchscript {}", student.display()));
        assert!(result.trained && result.test_acc > 0.5, "{result:?}");
        let phase = result.phase.as_str();
        let dir = run.dir.display().to_string();
        let export = common::run(["export", &dir, "--model", phase]);
        assert_eq!(export.code, Some(0), "{}", export.stderr);
        let weights = run.dir.join(&result.weights);
        // The run's module, then its export (the same module).
        pairs.push((weights.clone(), weights.with_extension("pt")));
        pairs.push((weights, run.dir.join(format!("export/{phase}.pt"))));
    }
    let torch = predict(&student, &pairs);
    // The same counts over the same examples (JSON's decimals aside).
    let same = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => (a - b).abs() < 1e-12,
        (a, b) => a.is_none() && b.is_none(),
    };
    for (torch, result) in torch.iter().zip(results.iter().flat_map(|r| [r, r])) {
        let phase = result.phase.as_str();
        assert_eq!(torch["training"], false, "{phase}: in eval mode");
        assert_eq!(torch["max_logit_diff"], 0.0, "{phase}: {torch}");
        assert!(
            same(torch["test_acc"].as_f64(), Some(result.test_acc)),
            "{phase}: {torch}"
        );
        let per_class: Vec<Option<f64>> =
            serde_json::from_value(torch["per_class_acc"].clone()).unwrap();
        assert_eq!(per_class.len(), result.per_class_acc.len());
        let pairs = per_class.iter().zip(&result.per_class_acc);
        assert!(
            pairs.into_iter().all(|(a, b)| same(*a, *b)),
            "{phase}: {torch}"
        );
    }
    run
}

#[test]
fn a_traced_mlp_student_is_distilled_and_predicts_in_pytorch_as_in_kd_tui() {
    distil_into("student_mlp.pt", &FEW_EPOCHS);
}

#[test]
fn a_scripted_cnn_student_trains_its_batch_norm_and_resumes_mid_epoch_bit_identical() {
    // Epochs enough that the signal lands while the distilled student trains.
    let overrides = ["student.epochs=12"];
    let full = distil_into("student_cnn.pt", &overrides);
    // Its batch-norm statistics moved, saved under the module's names.
    let weights: std::collections::HashMap<String, Tensor> =
        Tensor::read_safetensors(full.file("distilled.safetensors"))
            .unwrap()
            .into_iter()
            .collect();
    assert!(weights["bn.num_batches_tracked"].int64_value(&[]) > 0);
    assert!(
        weights["bn.running_mean"]
            .abs()
            .sum(Kind::Float)
            .double_value(&[])
            > 0.0
    );

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let sets = [
        teacher_at(&modules().dir.join("teacher.pt")),
        student_at(&modules().dir.join("student_cnn.pt")),
        overrides[0].to_string(),
    ];
    let args: Vec<&str> = sets.iter().flat_map(|s| ["--set", s.as_str()]).collect();
    let (code, stderr) = common::run_until_sigterm(&dir, "metrics.jsonl", &args, |r| {
        r["type"] == "step" && r["phase"] == "distilled" && r["epoch"].as_u64() >= Some(2)
    });
    assert_eq!(code, Some(128 + 15), "{stderr}");
    let ckpt = common::read_checkpoint(&dir);
    assert_eq!(ckpt["phase"], "distilled", "{ckpt}");
    let resumed = run(["--batch".as_ref(), "--resume".as_ref(), dir.as_os_str()]);
    assert_eq!(resumed.code, Some(0), "{}", resumed.stderr);
    assert!(
        common::final_weights(&dir) == common::final_weights(&full.dir),
        "stopped at epoch {} example {}: the resumed run's weights differ",
        ckpt["epoch"],
        ckpt["epoch_cursor"]
    );
    // The resumed modules hold the uninterrupted run's tensors, buffers included.
    let input = full.summary().input;
    let tensors = |path: PathBuf| {
        let vs = tch::nn::VarStore::new(tch::Device::Cpu);
        kd_tui::model::Torchscript::load(&vs, &path, &input).unwrap();
        vs.variables()
    };
    for module in ["baseline.pt", "distilled.pt"] {
        let (resumed, whole) = (tensors(dir.join(module)), tensors(full.file(module)));
        assert_eq!(resumed.len(), whole.len(), "{module}");
        for (name, t) in &whole {
            assert!(resumed[name].equal(t), "{module}: {name} differs");
        }
    }
}

#[test]
fn two_ranks_average_torchscript_batch_norm_statistics_name_by_name() {
    common::ranks::require_gloo();
    let modules = modules();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("two");
    let sets = [
        teacher_at(&modules.dir.join("teacher.pt")),
        student_at(&modules.dir.join("student_cnn.pt")),
        "student.epochs=3".to_string(),
    ];
    let args: Vec<&str> = sets.iter().flat_map(|s| ["--set", s.as_str()]).collect();
    let mut job = common::ranks::start_ranks(&dir, &args);
    let log = || std::fs::read_to_string(dir.with_extension("log")).unwrap_or_default();
    assert_eq!(common::wait_exit(&mut job), 0, "{}", log());
    // Each rank adds up the same buffers: averaged in another order, means and variances
    // mixed, the teacher scored 0% and the students diverged.
    let summary = common::read_summary(&dir);
    let want = modules.report["test_acc"].as_f64().unwrap();
    let teacher = summary.teacher.unwrap().test_acc;
    assert!((teacher - want).abs() < 1e-6, "{teacher} against {want}");
    for student in [summary.baseline, summary.distilled].map(Option::unwrap) {
        assert!(student.test_acc > 0.5, "{student:?}");
    }
}
