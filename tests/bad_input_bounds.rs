//! Every input kd-tui reads is bounded and checked against what it claims to be: data files
//! that disagree with each other or with their format, values past what a machine or a preset
//! can hold, files without end. Each is refused with exit code 2 and a message that names it,
//! before a run folder exists.

mod common;

use common::inputs::{idx_pair, rejected, rejected_data, rejected_override};
use common::{default_preset_with, run, write_preset};
use kd_tui::config::bounds::max_threads;
use std::path::Path;

const LABELS: [u8; 10] = [0, 1, 0, 1, 0, 1, 0, 1, 0, 1];

/// An MNIST folder whose test images are `height` x `width` (the training images 2 x 2).
fn mnist_with_test_images(tmp: &Path, height: u32, width: u32) -> std::path::PathBuf {
    let mnist = tmp.join("mnist");
    std::fs::create_dir(&mnist).unwrap();
    idx_pair(&mnist, "train", &LABELS, 2, 2);
    idx_pair(&mnist, "t10k", &[0, 1], height, width);
    mnist
}

#[test]
fn mnist_test_images_of_another_shape_are_refused() {
    // 3 x 3 crashed the loader; 1 x 4 (as many bytes as 2 x 2) misread every test image.
    for (h, w) in [(3, 3), (1, 4)] {
        let tmp = tempfile::tempdir().unwrap();
        let mnist = mnist_with_test_images(tmp.path(), h, w);
        let message = rejected_data(tmp.path(), "mnist", &mnist);
        let expected = format!(
            "{}: images of {h} x {w} pixels, but the training images are 2 x 2",
            mnist.join("t10k-images-idx3-ubyte").display()
        );
        assert!(
            message.contains(&expected),
            "expected `{expected}` in: {message}"
        );
    }
}

#[test]
fn an_mnist_label_past_9_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mnist = tmp.path().join("mnist");
    std::fs::create_dir(&mnist).unwrap();
    let mut train = LABELS;
    train[6] = 200;
    idx_pair(&mnist, "train", &train, 2, 2);
    idx_pair(&mnist, "t10k", &[0, 1], 2, 2);
    let message = rejected_data(tmp.path(), "mnist", &mnist);
    let expected = format!(
        "{}: label 200 at index 6 is not a class of MNIST-format data (0-9)",
        mnist.join("train-labels-idx1-ubyte").display()
    );
    assert!(
        message.contains(&expected),
        "expected `{expected}` in: {message}"
    );
}

#[test]
fn a_class_listed_twice_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("t.csv");
    std::fs::write(&csv, "1,0\n2,1\n3,0\n4,1\n5,0\n6,1\n7,0\n8,1\n9,0\n10,1\n").unwrap();
    let text = default_preset_with(&[
        ("data.source", "\"csv\""),
        (
            "data.path",
            &toml::Value::String(csv.display().to_string()).to_string(),
        ),
    ]);
    for (classes, says) in [
        ("[\"0\", \"1\", \"0\"]", "lists the class `0` twice"),
        (
            "[\"0\", \"1\", \"1.0\"]",
            "lists the class `1.0` twice (as `1`: equal numbers are one class)",
        ),
    ] {
        let text = text.replace("[data]", &format!("[data]\nclasses = {classes}"));
        let preset = write_preset(tmp.path(), "csv.toml", &text);
        let message = rejected(tmp.path(), &[preset.into()]);
        assert!(
            message.contains("key `data.classes`") && message.contains(says),
            "expected `{says}` in: {message}"
        );
    }
}

#[test]
fn threads_past_four_per_cpu_are_refused() {
    let max = max_threads();
    let cpus = std::thread::available_parallelism().unwrap().get();
    assert_eq!(max, 4 * cpus);
    for n in [max + 1, 5000, 20000] {
        let message = rejected_override(&format!("threads={n}"));
        let expected = format!(
            "--set threads={n}: key `threads`: must be at most {max} (4 x the {cpus} CPU threads of this machine; got {n})"
        );
        assert!(
            message.contains(&expected),
            "expected `{expected}` in: {message}"
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let preset = write_preset(
        tmp.path(),
        "t.toml",
        &default_preset_with(&[("threads", "20000")]),
    );
    let message = rejected(tmp.path(), &[preset.into()]);
    assert!(
        message.contains("key `threads`: must be at most"),
        "{message}"
    );
}

#[test]
fn the_seeds_flag_is_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    for n in ["4294967295", "1001"] {
        let message = rejected(tmp.path(), &["--seeds".into(), n.into()]);
        assert!(
            message.contains(&format!("'{n}' for '--seeds <N>'")) && message.contains("1..=1000"),
            "{message}"
        );
    }
}

#[test]
fn seeds_past_what_toml_holds_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let max = i64::MAX.to_string();
    let message = rejected(
        tmp.path(),
        &[
            "--seeds".into(),
            "2".into(),
            "--set".into(),
            format!("seed={max}").into(),
        ],
    );
    assert!(
        message.contains(&format!(
            "--seeds 2: seeds {max} to {max} + 1 go past {max}"
        )),
        "{message}"
    );
}

#[test]
fn a_sweep_grid_is_counted_before_it_is_expanded() {
    let tmp = tempfile::tempdir().unwrap();
    let ten = "[1e-4, 2e-4, 3e-4, 4e-4, 5e-4, 6e-4, 7e-4, 8e-4, 9e-4, 1e-3]";
    let keys = [
        "teacher.lr",
        "student.lr",
        "teacher.weight_decay",
        "student.weight_decay",
    ];
    let more = ["distill.temperature", "distill.alpha", "diverge_factor"];
    let grid: Vec<String> = keys
        .iter()
        .chain(&more)
        .map(|k| format!("\"{k}\" = {ten}"))
        .collect();
    let text = format!(
        "{}\n[sweep]\n{}\n",
        default_preset_with(&[]),
        grid.join("\n")
    );
    let preset = write_preset(tmp.path(), "sweep.toml", &text);
    let message = rejected(tmp.path(), &[preset.into()]);
    assert!(
        message.contains("key `sweep`: the sweep has 10 x 10 x 10 x 10 x 10 x 10 x 10 = 10000000 points; at most 10000"),
        "{message}"
    );
}

#[test]
fn preset_files_are_read_up_to_4_mib() {
    let tmp = tempfile::tempdir().unwrap();
    // A preset of five MiB (a valid one, padded with comments) and a file without end.
    let mut big = default_preset_with(&[]);
    while big.len() <= 5 << 20 {
        big.push_str(&format!("# {}\n", "x".repeat(1000)));
    }
    let big = write_preset(tmp.path(), "big.toml", &big);
    for path in [big.as_path(), Path::new("/dev/zero")] {
        let message = rejected(tmp.path(), &[path.into()]);
        let expected = format!(
            "{}: larger than 4 MiB, the most a preset may be",
            path.display()
        );
        assert!(
            message.contains(&expected),
            "expected `{expected}` in: {message}"
        );
    }
}

#[test]
fn a_missing_cifar_batch_is_named_as_one() {
    let tmp = tempfile::tempdir().unwrap();
    let cifar = tmp.path().join("cifar");
    std::fs::create_dir(&cifar).unwrap();
    let message = rejected_data(tmp.path(), "cifar10", &cifar);
    let expected = format!(
        "{}: not found, nor data_batch_1.bin.gz (expected a CIFAR-10 binary batch",
        cifar.join("data_batch_1.bin").display()
    );
    assert!(
        message.contains(&expected),
        "expected `{expected}` in: {message}"
    );
}

#[test]
fn a_number_that_is_not_decimal_is_not_a_number() {
    let message = rejected_override("student.epochs=0x46");
    assert!(
        message.contains(
            "key `student.epochs`: `0x46` is not a number; write integers in decimal (`70`)"
        ),
        "{message}"
    );
}

#[test]
fn a_collective_timeout_past_a_day_is_refused() {
    // 1e300 s panicked every rank of a data-parallel job when made a Duration.
    let message = rejected_override("distributed.timeout_s=1e300");
    assert!(
        message.contains("key `distributed.timeout_s`: must be within [1, 86400] seconds"),
        "{message}"
    );
}

#[test]
fn a_run_folder_that_cannot_be_made_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let long = tmp.path().join("x".repeat(300));
    let out = run([
        "--batch".as_ref(),
        "--out".as_ref(),
        long.as_os_str(),
        "--set".as_ref(),
        "teacher.epochs=1".as_ref(),
    ]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains(&*long.to_string_lossy()) && out.stderr.contains("File name too long"),
        "{}",
        out.stderr
    );
}
