//! Every distillation method end to end on digits (and, where MNIST is present, `hint` with a
//! CNN teacher on MNIST): the loss parts in metrics.jsonl and the summary, hint's regressor kept
//! apart from the student; the methods on features (`at` on a small CNN pair, `sp` across
//! kinds) and logit standardisation on every logit method.

mod common;

use common::{write_preset, Run};
use kd_tui::protocol::summary::PhaseResult;
use serde_json::Value;
use std::collections::BTreeSet;

const FEW: [&str; 3] = [
    "teacher.epochs=2",
    "student.epochs=2",
    "student.baseline=false",
];

fn parts_of_steps(run: &Run) -> BTreeSet<String> {
    run.metrics()
        .iter()
        .filter(|r| r["type"] == "step" && r["phase"] == "distilled")
        .flat_map(|r| {
            r["parts"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The distilled phase of `run` trained `method` with exactly the loss `parts` (in the step
/// records and the summary, each finite and not negative), and the run folder's preset names
/// every hyperparameter the method declares (defaults filled in).
fn reports_its_parts(run: &Run, method: &str, parts: &[&str]) -> PhaseResult {
    let expected: BTreeSet<String> = parts.iter().map(|p| p.to_string()).collect();
    assert_eq!(parts_of_steps(run), expected, "{method}: step records");
    let distilled = run.summary().distilled.unwrap();
    let reported: BTreeSet<String> = distilled.loss_parts.keys().cloned().collect();
    assert_eq!(reported, expected, "{method}: summary");
    assert!(
        distilled
            .loss_parts
            .values()
            .all(|v| v.is_finite() && *v >= 0.0),
        "{method}: {:?}",
        distilled.loss_parts
    );
    let preset = run.preset();
    for p in kd_tui::distill::spec(preset.distill.method).params {
        assert!(
            preset.distill.params.contains_key(p.name),
            "{method}: {}",
            p.name
        );
    }
    distilled
}

#[test]
fn every_method_trains_and_reports_its_loss_parts() {
    for (method, extra, parts) in [
        ("hard", &[][..], &["hard"][..]),
        ("soft", &[], &["ce", "kd"]),
        ("dkd", &["distill.warmup=1"], &["ce", "nckd", "tckd"]),
        ("dist", &[], &["ce", "inter", "intra"]),
        ("soft", &["distill.standardize=true"], &["ce", "kd_std"]),
        (
            "dkd",
            &["distill.warmup=1", "distill.standardize=true"],
            &["ce", "nckd_std", "tckd_std"],
        ),
        (
            "dist",
            &["distill.standardize=true"],
            &["ce", "inter_std", "intra_std"],
        ),
        (
            "hint",
            &[
                r#"distill.teacher_layer="layers.1""#,
                r#"distill.student_layer="layers.0""#,
            ],
            &["ce", "hint", "kd"],
        ),
    ] {
        let set = format!("distill.method={method}");
        let run = Run::digits(&[&FEW[..], &[set.as_str()], extra].concat());
        let summary = run.summary();
        let distilled = reports_its_parts(&run, method, parts);
        // The teacher's parts: its cross-entropy only.
        assert_eq!(
            summary
                .teacher
                .as_ref()
                .unwrap()
                .loss_parts
                .keys()
                .collect::<Vec<_>>(),
            ["ce"]
        );
        assert!(
            distilled.test_acc > 0.3,
            "{method} learns: {}",
            distilled.test_acc
        );
        let weights = std::fs::read(run.file("distilled.safetensors")).unwrap();
        let names = safetensors::SafeTensors::deserialize(&weights)
            .unwrap()
            .names()
            .len();
        assert_eq!(
            names, 4,
            "{method}: the student's two layers only, no regressor"
        );
        match method {
            "hint" => {
                // layers.0 of the student is 32 wide, the teacher's layers.1 256: 32*256 + 256.
                assert_eq!(distilled.regressor_params, Some(32 * 256 + 256));
                assert!(run
                    .outcome
                    .stdout
                    .contains("(hint's regressor, crd's embeddings): 8448 parameters"));
                // The guided layer's pass over the training set is told, after the logits'.
                let stderr = &run.outcome.stderr;
                let logits = stderr.find("the teacher's outputs: computed");
                let layer = stderr.find("the teacher's layer layers.1: computing over 1259");
                assert!(logits.is_some() && layer > logits, "{stderr}");
                assert!(stderr.contains("the teacher's layer layers.1: computed"));
            }
            _ => assert_eq!(distilled.regressor_params, None),
        }
    }
}

/// Small CNNs for digits' 8x8 images: `features.1` is a 16x2x2 map (teacher), 8x2x2 (student).
const CNN_TEACHER: &str = r#"teacher.model={ kind = "cnn", channels = [8, 16], kernel = 3 }"#;
const CNN_STUDENT: &str = r#"student.model={ kind = "cnn", channels = [4, 8], kernel = 3 }"#;

#[test]
fn the_methods_on_features_train_and_report_their_parts() {
    // A layer's name, or a TOML list of them as given.
    let value = |l: &str| match l.starts_with('[') {
        true => l.to_string(),
        false => format!("{l:?}"),
    };
    let layers = |teacher: &str, student: &str| {
        [
            format!("distill.teacher_layer={}", value(teacher)),
            format!("distill.student_layer={}", value(student)),
        ]
    };
    for (method, models, (teacher, student), parts) in [
        // Two layer pairs, their attention losses summed.
        (
            "at",
            &[CNN_TEACHER, CNN_STUDENT][..],
            (
                r#"["features.0", "features.1"]"#,
                r#"["features.0", "features.1"]"#,
            ),
            &["at", "ce"][..],
        ),
        // Across kinds: a CNN teacher's map, an MLP student's vector.
        (
            "sp",
            &[CNN_TEACHER],
            ("features.1", "layers.0"),
            &["ce", "sp"],
        ),
        (
            "rkd",
            &[],
            ("layers.1", "layers.0"),
            &["angle", "ce", "distance"],
        ),
        ("pkt", &[], ("layers.1", "layers.0"), &["ce", "pkt"]),
        // Across kinds too: embedding heads on a CNN teacher's map and an MLP's vector.
        (
            "crd",
            &[CNN_TEACHER],
            ("features.1", "layers.0"),
            &["ce", "crd"],
        ),
    ] {
        let set = format!("distill.method={method}");
        let layers = layers(teacher, student);
        let layers: Vec<&str> = layers.iter().map(String::as_str).collect();
        let run = Run::digits(&[&FEW[..], &[set.as_str()], models, &layers].concat());
        let distilled = reports_its_parts(&run, method, parts);
        assert!(distilled.test_acc.is_finite(), "{method}");
        if method == "at" {
            // One pass over the teacher's two layers.
            let said = "the teacher's layers features.0, features.1: computed";
            assert!(run.outcome.stderr.contains(said), "{}", run.outcome.stderr);
        }
        // No head but `crd`'s: two embeddings of 128 from the teacher's 16x2x2 map and the
        // student's 32 units (its memory banks are state, not parameters).
        let head = (method == "crd").then_some((64 * 128 + 128) + (32 * 128 + 128));
        assert_eq!(distilled.regressor_params, head, "{method}");
        if method == "crd" {
            let weights = std::fs::read(run.file("distilled.safetensors")).unwrap();
            let names = safetensors::SafeTensors::deserialize(&weights)
                .unwrap()
                .names()
                .len();
            assert_eq!(names, 4, "the student's two layers only, no heads or banks");
        }
    }
}

#[test]
fn two_stage_hint_trains_the_hint_alone_first() {
    let run = Run::digits(
        &[
            &FEW[..],
            &[
                "distill.method=hint",
                r#"distill.teacher_layer="layers.0""#,
                r#"distill.student_layer="layers.0""#,
                "distill.hint_epochs=1",
            ],
        ]
        .concat(),
    );
    let epochs: Vec<(u64, Vec<String>)> = run
        .metrics()
        .iter()
        .filter(|r| r["type"] == "epoch" && r["phase"] == "distilled")
        .map(|r| {
            let parts = r["train_parts"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect();
            (r["epoch"].as_u64().unwrap(), parts)
        })
        .collect();
    assert_eq!(
        epochs,
        [
            (1, vec!["hint".to_string()]),
            (2, vec!["ce".to_string(), "kd".into()])
        ]
    );
}

#[test]
fn hint_from_a_cnn_teacher_on_mnist() {
    let Some(mnist) = common::data::mnist_dir() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let preset = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/presets/mnist-cnn.toml"
    ))
    .unwrap();
    let preset = write_preset(tmp.path(), "mnist-cnn.toml", &preset);
    let run = Run::new(
        Some(&preset),
        &[
            &format!("data.path={:?}", mnist.display().to_string()),
            "data.train_limit=3000",
            "teacher.epochs=1",
            "student.epochs=1",
            "student.model.hidden=[64]",
            "distill.method=hint",
            r#"distill.teacher_layer="features.1""#,
            r#"distill.student_layer="layers.0""#,
        ],
    );
    let summary = run.summary();
    let distilled = summary.distilled.unwrap();
    // The MLP's 64 units onto the CNN's 64x7x7 map, flattened: a linear regressor.
    assert_eq!(distilled.regressor_params, Some(64 * 3136 + 3136));
    assert!(distilled.loss_parts.contains_key("hint"));
    // One short epoch on 3000 images: well above chance (10%) is what it can show.
    assert!(distilled.test_acc > 0.3, "{}", distilled.test_acc);
    let started = run
        .metrics()
        .into_iter()
        .find(|r| r["type"] == "run_started")
        .unwrap();
    assert_eq!(started["train_examples"], Value::from(3000));
}
