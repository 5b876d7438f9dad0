//! `student.init` and `student.baseline_init` end to end on digits: a student that starts from
//! the teacher's selected weights (weight selection), each student's init in the summary.
//! With an lr of 1e-12 a student's saved weights are, to float precision, the ones it started
//! from.

mod common;

use common::{weights, Run};
use kd_tui::protocol::WeightInit;

const FROZEN: [&str; 3] = ["teacher.epochs=3", "student.epochs=1", "student.lr=1e-12"];

fn digits_run(overrides: &[&str]) -> Run {
    Run::new(None, &[&FROZEN[..], overrides].concat())
}

/// The floats of `name` in a run's `file`.
fn tensor(run: &Run, file: &str, name: &str) -> Vec<f32> {
    let all = weights(&run.file(file));
    all.into_iter().find(|(n, _)| n == name).unwrap().1
}

fn close(a: &[f32], b: &[f32], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    let worst = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    assert!(worst < 1e-5, "{what}: differs by {worst}");
}

#[test]
fn a_student_of_the_teachers_shape_starts_as_the_teacher() {
    let run = digits_run(&[
        r#"student.model={ kind = "mlp", hidden = [256, 256] }"#,
        r#"student.init="teacher""#,
    ]);
    let summary = run.summary();
    let (teacher, baseline, distilled) = (
        summary.teacher.unwrap(),
        summary.baseline.unwrap(),
        summary.distilled.unwrap(),
    );
    assert_eq!(teacher.init, None);
    assert_eq!(baseline.init, Some(WeightInit::Random));
    assert_eq!(distilled.init, Some(WeightInit::Teacher));
    assert!(teacher.test_acc > 0.8, "{}", teacher.test_acc);
    // Before (and, at this lr, after) its one epoch the distilled student is the teacher.
    assert!(
        (distilled.test_acc - teacher.test_acc).abs() < 0.01,
        "distilled {} teacher {}",
        distilled.test_acc,
        teacher.test_acc
    );
    assert!(baseline.test_acc < 0.5, "random: {}", baseline.test_acc);
    for name in ["layers.0.weight", "layers.1.bias", "layers.2.weight"] {
        let t = tensor(&run, "teacher.safetensors", name);
        close(&tensor(&run, "distilled.safetensors", name), &t, name);
    }
}

#[test]
fn smaller_students_start_from_the_teachers_evenly_spaced_units() {
    // The teacher: 64 inputs, [256, 256], 10 classes. The students [64, 32] keep units
    // 0, 4, 8, ... of the first hidden layer and 0, 8, 16, ... of the second.
    let run = digits_run(&[
        r#"student.model={ kind = "mlp", hidden = [64, 32] }"#,
        r#"student.init="teacher""#,
        r#"student.baseline_init="teacher""#,
    ]);
    let summary = run.summary();
    assert_eq!(summary.baseline.unwrap().init, Some(WeightInit::Teacher));
    assert_eq!(summary.distilled.unwrap().init, Some(WeightInit::Teacher));
    let at = |name: &str, cols: usize, pick: &dyn Fn(usize, usize) -> usize, rows: usize| {
        let t = tensor(&run, "teacher.safetensors", name);
        (0..rows * cols)
            .map(|i| t[pick(i / cols, i % cols)])
            .collect::<Vec<f32>>()
    };
    let first = at("layers.0.weight", 64, &|r, c| 4 * r * 64 + c, 64);
    let second = at("layers.1.weight", 64, &|r, c| 8 * r * 256 + 4 * c, 32);
    let head = at("layers.2.weight", 32, &|r, c| r * 256 + 8 * c, 10);
    let bias = at("layers.1.bias", 1, &|r, _| 8 * r, 32);
    for file in ["baseline.safetensors", "distilled.safetensors"] {
        close(&tensor(&run, file, "layers.0.weight"), &first, file);
        close(&tensor(&run, file, "layers.1.weight"), &second, file);
        close(&tensor(&run, file, "layers.1.bias"), &bias, file);
        close(&tensor(&run, file, "layers.2.weight"), &head, file);
    }
}

#[test]
fn a_run_stopped_in_its_baseline_resumes_to_the_same_selected_students() {
    let sets = [
        "teacher.epochs=3",
        "student.epochs=20",
        r#"student.model={ kind = "mlp", hidden = [64, 32] }"#,
        r#"student.init="teacher""#,
        r#"student.baseline_init="teacher""#,
    ];
    let whole = Run::new(None, &sets);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("stopped");
    let args: Vec<&str> = sets.iter().flat_map(|s| ["--set", s]).collect();
    let (code, stderr) = common::run_until_sigterm(&dir, "metrics.jsonl", &args, |r| {
        r["type"] == "epoch" && r["phase"] == "baseline"
    });
    assert_eq!(code, Some(128 + 15), "{stderr}");
    let resumed = common::run(["--batch".as_ref(), "--resume".as_ref(), dir.as_os_str()]);
    assert_eq!(resumed.code, Some(0), "{}", resumed.stderr);
    // The distilled student selects again, from the teacher read back from its file.
    for file in ["baseline.safetensors", "distilled.safetensors"] {
        assert_eq!(
            std::fs::read(dir.join(file)).unwrap(),
            std::fs::read(whole.file(file)).unwrap(),
            "{file}"
        );
    }
    let summary = common::read_summary(&dir);
    assert_eq!(summary.distilled.unwrap().init, Some(WeightInit::Teacher));
}
