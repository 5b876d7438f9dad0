//! A sweep end to end: 2 x 2 points over 2 seeds on digits with few epochs, every output file,
//! the teacher trained once per seed and reused, and bad points refused before training.

mod common;

use common::{kd_tui, read_metrics, read_summary, run, run_until_sigterm, write_preset, Outcome};
use kd_tui::protocol::summary::{RunStatus, TeacherOutputs};
use kd_tui::protocol::Phase;
use kd_tui::series::sweep::SweepReport;

const SWEEP: &str = r#"
name = "digits-sweep"
[data]
source = "digits"
[teacher]
model = { kind = "mlp", hidden = [64] }
epochs = 2
batch_size = 64
lr = 1e-3
[student]
model = { kind = "mlp", hidden = [16] }
epochs = 2
batch_size = 64
lr = 3e-3
[distill]
method = "soft"
[sweep]
"distill.temperature" = [2, 8]
"distill.alpha" = [0.5, 0.9]
"#;

#[test]
fn a_two_by_two_sweep_over_two_seeds() {
    let tmp = tempfile::tempdir().unwrap();
    let preset = write_preset(tmp.path(), "sweep.toml", SWEEP);
    let parent = tmp.path().join("sweep");
    // A cache of its own: the first point of each seed computes the teacher's outputs.
    let output = kd_tui()
        .arg("--batch")
        .arg(&preset)
        .args(["--seeds", "2", "--out"])
        .arg(&parent)
        .env("KD_TUI_CACHE", tmp.path().join("cache"))
        .output()
        .unwrap();
    let outcome = Outcome::of(output);
    assert_eq!(outcome.code, Some(0), "{}", outcome.stderr);
    for seed in [7, 8] {
        for point in 0..4 {
            let s = read_summary(&parent.join(format!("seed-{seed}/point-{point}")));
            assert_eq!(s.seed, seed);
            let teacher = s.teacher.as_ref().unwrap();
            let distilled = s.distilled.as_ref().unwrap();
            // The first point trains the teacher and the baseline; the others reuse both.
            assert_eq!(teacher.trained, point == 0, "seed {seed} point {point}");
            assert_eq!(
                s.baseline.is_some(),
                point == 0,
                "seed {seed} point {point}"
            );
            let expected = if point == 0 {
                TeacherOutputs::Computed
            } else {
                TeacherOutputs::FromCache
            };
            assert_eq!(
                distilled.teacher_outputs,
                Some(expected),
                "seed {seed} point {point}"
            );
        }
    }
    let report: SweepReport =
        serde_json::from_str(&std::fs::read_to_string(parent.join("sweep.json")).unwrap()).unwrap();
    assert!(report.completed);
    assert_eq!(report.rows.len(), 8);
    // The best point has the best mean validation accuracy (test plays no part).
    let val = |p: usize| {
        let v: Vec<f64> = report
            .rows
            .iter()
            .filter(|r| r.point == p)
            .map(|r| r.distilled_val_acc.unwrap())
            .collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    let best = report.best_point.unwrap();
    assert!((0..4).all(|p| val(p) <= val(best)));
    // Every row of a seed compares with that seed's baseline.
    for r in &report.rows {
        let reference = report
            .rows
            .iter()
            .find(|x| x.seed == r.seed && x.point == 0)
            .unwrap();
        assert_eq!(r.baseline_test_acc, reference.baseline_test_acc);
    }
    let csv = std::fs::read_to_string(parent.join("sweep.csv")).unwrap();
    assert_eq!(csv.lines().count(), 9, "{csv}");
    assert!(
        csv.starts_with("point,seed,distill.alpha,distill.temperature,"),
        "{csv}"
    );
    let svg = std::fs::read_to_string(parent.join("sweep.svg")).unwrap();
    assert!(svg.starts_with("<svg"), "sweep.svg");
    assert!(
        outcome.stdout.contains("(best by val)"),
        "{}",
        outcome.stdout
    );

    // A value the preset would refuse stops the sweep before anything trains.
    let stderr = refused(
        tmp.path(),
        "bad",
        &SWEEP.replace("[0.5, 0.9]", "[0.5, 1.5]"),
    );
    assert!(
        stderr.contains(
            "[sweep] point 2 (distill.alpha = 1.5, distill.temperature = 2): key `distill.alpha`: must be within [0, 1]"
        ),
        "{stderr}"
    );
    // A point whose model the data cannot take (a CNN that shrinks 8x8 digits to nothing) is
    // refused as well, before point 0 trains.
    let shrinks = r#"{ kind = "cnn", channels = [8, 8, 8, 8], kernel = 3, pool = "max" }"#;
    let points = format!(
        "{}[sweep]\npoints = [{{}}, {{ \"student.model\" = {shrinks} }}]\n",
        &SWEEP[..SWEEP.find("[sweep]").unwrap()]
    );
    let stderr = refused(tmp.path(), "bad-model", &points);
    assert!(
        stderr.contains("[sweep] point 1") && stderr.contains("student.model"),
        "{stderr}"
    );
}

/// Runs the sweep preset `text` (as `name.toml`), which must be refused with exit 2 before it
/// makes its folder; its stderr.
fn refused(tmp: &std::path::Path, name: &str, text: &str) -> String {
    let preset = write_preset(tmp, &format!("{name}.toml"), text);
    let out = tmp.join(name);
    let refused = run([
        "--batch".as_ref(),
        preset.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
    assert_eq!(refused.code, Some(2), "{}", refused.stderr);
    assert!(!out.exists());
    refused.stderr
}

/// Point 0 is quick; point 1's students train long enough to be stopped while they do.
fn two_points() -> String {
    let start = SWEEP.find("[sweep]").unwrap();
    format!(
        "{}[sweep]\n\"student.epochs\" = [2, 400]\n",
        &SWEEP[..start]
    )
}

#[test]
fn a_stopped_sweep_resumes_at_the_point_where_it_stopped() {
    let tmp = tempfile::tempdir().unwrap();
    let preset = write_preset(tmp.path(), "sweep.toml", &two_points());
    let parent = tmp.path().join("sweep");
    let preset_arg = preset.to_str().unwrap();
    let (code, stderr) = run_until_sigterm(
        &parent,
        "seed-7/point-1/metrics.jsonl",
        &[preset_arg],
        |r| r["type"] == "step",
    );
    assert_eq!(code, Some(128 + 15), "{stderr}");
    let partial: SweepReport =
        serde_json::from_str(&std::fs::read_to_string(parent.join("sweep.json")).unwrap()).unwrap();
    assert!(!partial.completed);
    assert_eq!(partial.rows.len(), 2, "point 0 done, point 1 stopped");
    let point0 = parent.join("seed-7/point-0");
    let point0_metrics = std::fs::read(point0.join("metrics.jsonl")).unwrap();
    assert!(parent.join("seed-7/point-1/checkpoint.json").is_file());

    // --set would change the plan: refused.
    let refused = run([
        "--batch",
        "--resume",
        parent.to_str().unwrap(),
        "--set",
        "student.lr=1e-2",
    ]);
    assert_eq!(refused.code, Some(2), "{}", refused.stderr);

    let resumed = run(["--batch", "--resume", parent.to_str().unwrap()]);
    assert_eq!(resumed.code, Some(0), "{}", resumed.stderr);
    assert!(
        resumed
            .stderr
            .contains("point-0 completed before; read back"),
        "{}",
        resumed.stderr
    );
    assert_eq!(
        std::fs::read(point0.join("metrics.jsonl")).unwrap(),
        point0_metrics,
        "the finished point is not trained again"
    );
    let point1 = read_summary(&parent.join("seed-7/point-1"));
    assert_eq!(point1.status, RunStatus::Completed);
    assert_eq!(point1.distilled.as_ref().unwrap().epochs_run, 400);
    let metrics = read_metrics(&parent.join("seed-7/point-1"));
    assert!(
        metrics.iter().any(common::is_resume_record),
        "point 1 goes on from its checkpoint"
    );
    let report: SweepReport =
        serde_json::from_str(&std::fs::read_to_string(parent.join("sweep.json")).unwrap()).unwrap();
    assert!(report.completed);
    assert_eq!(report.rows.len(), 2);
    assert_eq!(
        report.rows[1].distilled_test_acc,
        point1.test_acc_pct(Phase::Distilled)
    );
    assert!(
        resumed.stdout.contains("(best by val)"),
        "{}",
        resumed.stdout
    );
}
