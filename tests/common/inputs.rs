//! The bad-input tests' helpers: run `kd-tui` on input it must refuse, and write small data
//! files in the formats it reads.

use super::{default_preset_with, run, write_preset};
use std::ffi::OsString;
use std::path::Path;

/// Runs `kd-tui --batch <args> --out <dir>/run`, checks the rejection and returns the message.
pub fn rejected(dir: &Path, args: &[OsString]) -> String {
    let out = dir.join("run");
    let mut all = vec![
        OsString::from("--batch"),
        "--out".into(),
        out.clone().into(),
    ];
    all.extend_from_slice(args);
    let outcome = run(&all);
    assert_eq!(
        outcome.code,
        Some(2),
        "kd-tui {all:?} should reject its input: {outcome:?}"
    );
    assert!(
        outcome.stdout.is_empty(),
        "nothing on stdout: {}",
        outcome.stdout
    );
    assert!(!out.exists(), "bad input must not leave a run folder");
    outcome.stderr
}

/// Runs the digits preset with another data source and path; returns the message.
pub fn rejected_data(dir: &Path, source: &str, path: &Path) -> String {
    let quoted = |s: &str| toml::Value::String(s.into()).to_string();
    let text = default_preset_with(&[
        ("data.source", &quoted(source)),
        ("data.path", &quoted(&path.display().to_string())),
    ]);
    let preset = write_preset(dir, "data.toml", &text);
    rejected(dir, &[preset.into()])
}

/// An IDX file of unsigned bytes: magic number, big-endian dimensions, then `data_len` zeros.
pub fn idx_file(dims: &[u32], data_len: usize) -> Vec<u8> {
    let mut bytes = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        bytes.extend_from_slice(&d.to_be_bytes());
    }
    bytes.resize(bytes.len() + data_len, 0);
    bytes
}

/// Runs the digits preset with one `--set`; returns the message.
pub fn rejected_override(set: &str) -> String {
    let tmp = tempfile::tempdir().unwrap();
    rejected(tmp.path(), &["--set".into(), set.into()])
}

/// `<prefix>-images-idx3-ubyte` (zero pixels, `height` x `width`) and
/// `<prefix>-labels-idx1-ubyte` with `labels`, in `dir`.
pub fn idx_pair(dir: &Path, prefix: &str, labels: &[u8], height: u32, width: u32) {
    let n = labels.len() as u32;
    let pixels = (height * width) as usize * labels.len();
    std::fs::write(
        dir.join(format!("{prefix}-images-idx3-ubyte")),
        idx_file(&[n, height, width], pixels),
    )
    .unwrap();
    let mut label_file = idx_file(&[n], 0);
    label_file.extend_from_slice(labels);
    std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), label_file).unwrap();
}

/// A folder of MNIST-format files: `train` and `t10k` with the given labels, 2x2 images.
pub fn tiny_mnist(dir: &Path, train: &[u8], test: &[u8]) {
    idx_pair(dir, "train", train, 2, 2);
    idx_pair(dir, "t10k", test, 2, 2);
}
