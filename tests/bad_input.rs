//! Bad input never starts a run: the binary exits with code 2 and says which file (or `--set`
//! flag), line and key is wrong and what is allowed, before it creates a run folder.

mod common;

use common::inputs::{idx_file, rejected, rejected_data, rejected_override, tiny_mnist};
use common::{default_preset_with, write_preset};
use std::path::Path;

/// The 1-based number of the one line of `text` that contains `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    let hits: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains(needle))
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(hits.len(), 1, "`{needle}` should be on exactly one line");
    hits[0]
}

/// Writes `text` as a preset and runs it; the one-line message must point at the line holding
/// `line_with`, name `key` (syntax errors have none) and say each of `says`.
fn check_preset(text: &str, line_with: &str, key: Option<&str>, says: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let path = write_preset(tmp.path(), "broken.toml", text);
    let message = rejected(tmp.path(), &[path.clone().into()]);
    assert_eq!(message.trim_end().lines().count(), 1, "one line: {message}");
    let location = format!("{}:{}:", path.display(), line_of(text, line_with));
    assert!(
        message.contains(&location),
        "expected `{location}` in: {message}"
    );
    if let Some(key) = key {
        let key = format!("key `{key}`");
        assert!(message.contains(&key), "expected {key} in: {message}");
    }
    for says in says {
        assert!(message.contains(says), "expected `{says}` in: {message}");
    }
}

#[test]
fn unknown_key_lists_the_allowed_keys() {
    check_preset(
        &default_preset_with(&[("distill.temprature", "3.0")]),
        "temprature",
        Some("distill.temprature"),
        &[
            "unknown field `temprature`",
            "`method`, `temperature`, `alpha`",
        ],
    );
}

#[test]
fn unknown_key_in_an_inline_table() {
    check_preset(
        &default_preset_with(&[("student.model.actvation", r#""gelu""#)]),
        "actvation",
        Some("student.model.actvation"),
        &["unknown field `actvation`", "`activation`"],
    );
}

#[test]
fn wrong_type() {
    check_preset(
        &default_preset_with(&[("teacher.epochs", r#""ten""#)]),
        r#""ten""#,
        Some("teacher.epochs"),
        &[r#"string "ten""#, "expected a non-negative integer"],
    );
}

#[test]
fn temperature_must_be_positive() {
    for bad in ["0.0", "-2.5"] {
        check_preset(
            &default_preset_with(&[("distill.temperature", bad)]),
            &format!("temperature = {bad}"),
            Some("distill.temperature"),
            &["must be a number > 0"],
        );
    }
}

#[test]
fn alpha_must_be_within_0_and_1() {
    for bad in ["1.5", "-0.1"] {
        check_preset(
            &default_preset_with(&[("distill.alpha", bad)]),
            &format!("alpha = {bad}"),
            Some("distill.alpha"),
            &["within [0, 1]"],
        );
    }
}

#[test]
fn hidden_layers_cannot_be_empty() {
    check_preset(
        &default_preset_with(&[("student.model.hidden", "[]")]),
        "hidden = []",
        Some("student.model.hidden"),
        &["at least one hidden layer"],
    );
}

#[test]
fn epochs_must_be_at_least_one() {
    check_preset(
        &default_preset_with(&[("student.epochs", "0")]),
        "epochs = 0",
        Some("student.epochs"),
        &["must be at least 1 (got 0)"],
    );
}

#[test]
fn batch_size_must_be_at_least_one() {
    check_preset(
        &default_preset_with(&[("teacher.batch_size", "0")]),
        "batch_size = 0",
        Some("teacher.batch_size"),
        &["must be at least 1 (got 0)"],
    );
}

#[test]
fn toml_syntax_error() {
    let text = kd_tui::config::DIGITS_PRESET.replacen("[student]", "[student", 1);
    check_preset(&text, "[student", None, &["expected `]`"]);
}

#[test]
fn file_based_source_needs_a_path() {
    check_preset(
        &default_preset_with(&[("data.source", r#""mnist""#)]),
        "[data]",
        Some("data.path"),
        &["required for this source"],
    );
}

#[test]
fn missing_preset_file() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("absent.toml");
    let message = rejected(tmp.path(), &[path.clone().into()]);
    assert!(
        message.contains(&format!("{}: no such preset file", path.display())),
        "{message}"
    );
    assert!(
        message.contains("mnist-cnn"),
        "the shipped names: {message}"
    );
}

#[test]
fn missing_csv_file_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let message = rejected_data(tmp.path(), "csv", Path::new("/nonexistent.csv"));
    assert!(
        message.contains("/nonexistent.csv: cannot read"),
        "{message}"
    );
}

#[test]
fn missing_mnist_folder_names_the_expected_file() {
    let tmp = tempfile::tempdir().unwrap();
    let message = rejected_data(tmp.path(), "mnist", Path::new("/nonexistent-mnist"));
    assert!(
        message.contains(
            "/nonexistent-mnist/train-images-idx3-ubyte: not found, nor train-images-idx3-ubyte.gz"
        ),
        "{message}"
    );
    assert!(message.contains("MNIST-format IDX file"), "{message}");
}

#[test]
fn truncated_mnist_file_names_the_file_and_the_expected_size() {
    let tmp = tempfile::tempdir().unwrap();
    let mnist = tmp.path().join("mnist");
    std::fs::create_dir(&mnist).unwrap();
    let images = mnist.join("train-images-idx3-ubyte");
    // The header promises 100 images of 28 x 28 bytes; the file stops after 1000 bytes of pixels.
    std::fs::write(&images, idx_file(&[100, 28, 28], 1000)).unwrap();
    std::fs::write(mnist.join("train-labels-idx1-ubyte"), idx_file(&[100], 100)).unwrap();
    let message = rejected_data(tmp.path(), "mnist", &mnist);
    let expected = format!(
        "{}: truncated, padded or empty: header says 100 x 28 x 28 = 78400 data bytes, found 1000",
        images.display()
    );
    assert!(
        message.contains(&expected),
        "expected `{expected}` in: {message}"
    );
}

#[test]
fn malformed_set_flags() {
    let message = rejected_override("teacher.lr");
    assert!(
        message.contains("`teacher.lr` is not of the form key.path=value"),
        "{message}"
    );
    let message = rejected_override(".lr=1");
    assert!(
        message.contains("is not a dotted key path like teacher.lr"),
        "{message}"
    );
    let message = rejected_override("teacher.lr.x=1");
    assert!(
        message.contains("--set teacher.lr.x=1: key `teacher.lr.x`: `teacher.lr` is not a table"),
        "{message}"
    );
}

#[test]
fn set_values_are_validated_and_blamed_on_the_flag() {
    for (set, key, says) in [
        (
            "teacher.epochs=ten",
            "teacher.epochs",
            "expected a non-negative integer",
        ),
        ("distill.alpha=2", "distill.alpha", "within [0, 1]"),
        ("distill.temperature=0", "distill.temperature", "> 0"),
        (
            "teacher.lrr=1",
            "teacher.lrr",
            "unknown field `lrr`, expected one of",
        ),
    ] {
        let message = rejected_override(set);
        let blame = format!("kd-tui: --set {set}: key `{key}`: ");
        assert!(
            message.starts_with(&blame),
            "expected `{blame}` in: {message}"
        );
        assert!(message.contains(says), "expected `{says}` in: {message}");
    }
}

#[test]
fn an_empty_test_split_is_refused() {
    let message = rejected_override("data.test_fraction=0");
    assert!(
        message.contains("key `data.test_fraction`: must be within (0, 1)"),
        "{message}"
    );
}

#[test]
fn a_model_no_memory_can_hold_is_refused_before_training() {
    let message = rejected_override("student.model.hidden=[100000000000]");
    assert!(
        message.contains("key `student.model`") && message.contains("parameters need about"),
        "{message}"
    );
}

#[test]
fn a_test_label_the_training_data_lacks_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mnist = tmp.path().join("mnist");
    std::fs::create_dir(&mnist).unwrap();
    tiny_mnist(&mnist, &[0, 1, 0, 1, 0, 1, 0, 1, 0, 1], &[0, 1, 7]);
    let message = rejected_data(tmp.path(), "mnist", &mnist);
    assert!(
        message.contains("test label 7 never occurs in the training data"),
        "{message}"
    );
}

#[test]
fn an_idx_header_whose_sizes_overflow_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mnist = tmp.path().join("mnist");
    std::fs::create_dir(&mnist).unwrap();
    let huge = u32::MAX;
    std::fs::write(
        mnist.join("train-images-idx3-ubyte"),
        idx_file(&[huge, huge, huge], 16),
    )
    .unwrap();
    std::fs::write(mnist.join("train-labels-idx1-ubyte"), idx_file(&[1], 1)).unwrap();
    let message = rejected_data(tmp.path(), "mnist", &mnist);
    assert!(
        message.contains("an impossible number of data bytes"),
        "{message}"
    );
}

#[test]
fn student_init_is_refused_where_the_teachers_weights_cannot_map() {
    let cnn = |kernel: usize| {
        format!("{{ kind = \"cnn\", channels = [8], kernel = {kernel}, hidden = [16] }}")
    };
    let (teacher_cnn, student_cnn) = (
        format!("teacher.model={}", cnn(3)),
        format!("student.model={}", cnn(5)),
    );
    let init = r#"student.init="teacher""#;
    for (sets, key, says) in [
        (
            vec![teacher_cnn.as_str(), init],
            "student.init",
            "the cnn teacher's weights do not map onto the mlp student",
        ),
        (
            vec![
                teacher_cnn.as_str(),
                student_cnn.as_str(),
                r#"student.baseline_init="teacher""#,
            ],
            "student.baseline_init",
            "the teacher's kernel is 3 and the student's 5",
        ),
        // digits.toml: a teacher of two hidden layers, a student of one.
        (
            vec![init],
            "student.init",
            "the teacher has 2 hidden layers and the student 1",
        ),
        (
            vec![r#"student.init="copy""#],
            "student.init",
            "unknown variant `copy`, expected `random` or `teacher`",
        ),
        (
            vec![r#"teacher.init="teacher""#],
            "teacher.init",
            "only the student starts from the teacher's weights",
        ),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let args: Vec<std::ffi::OsString> = sets
            .iter()
            .flat_map(|s| ["--set".into(), (*s).into()])
            .collect();
        let message = rejected(tmp.path(), &args);
        assert!(message.contains(&format!("key `{key}`")), "{message}");
        assert!(message.contains(says), "expected `{says}` in: {message}");
    }
}

/// What kd-tui says when it rejects the digits preset with these `--set` edits.
fn rejected_with(set: &[&str]) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let args: Vec<std::ffi::OsString> = set
        .iter()
        .flat_map(|s| ["--set".into(), (*s).into()])
        .collect();
    rejected(tmp.path(), &args)
}

#[test]
fn attention_transfer_pairs_as_many_student_layers_as_teacher_layers() {
    let set = [
        r#"teacher.model={ kind = "cnn", channels = [8, 16] }"#,
        r#"student.model={ kind = "cnn", channels = [4, 8] }"#,
        "distill.method=at",
        r#"distill.teacher_layer=["features.0", "features.1"]"#,
        r#"distill.student_layer="features.1""#,
    ];
    let message = rejected_with(&set);
    for says in [
        "key `distill.student_layer`",
        "1 student layer(s) for 2 teacher layer(s)",
    ] {
        assert!(message.contains(says), "expected `{says}` in: {message}");
    }
}

#[test]
fn attention_transfer_needs_feature_maps_on_both_sides() {
    // A CNN teacher's map against the MLP student's vector: the student's layer is named.
    let set = [
        r#"teacher.model={ kind = "cnn", channels = [8, 16] }"#,
        "distill.method=at",
        r#"distill.teacher_layer="features.1""#,
        r#"distill.student_layer="layers.0""#,
    ];
    let message = rejected_with(&set);
    for says in [
        "key `distill.student_layer`",
        "`at` needs feature maps on both sides",
        "layer `layers.0`",
        "outputs [32] per example, not a map",
    ] {
        assert!(message.contains(says), "expected `{says}` in: {message}");
    }
}
