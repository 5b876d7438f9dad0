//! Helpers shared by the integration tests that drive the real `kd-tui` binary.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The `kd-tui` binary built for these tests.
pub fn kd_tui() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kd-tui"))
}

/// How a finished `kd-tui` process ended.
#[derive(Debug)]
pub struct Outcome {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `kd-tui` with `args` to completion (stdout and stderr captured, so neither is a terminal).
pub fn run<I, S>(args: I) -> Outcome
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let output = kd_tui().args(args).output().expect("starting kd-tui");
    Outcome {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The embedded default preset with `edits` applied: (dotted key, value in TOML syntax) pairs,
/// each set in place or added to its table, so that every other line keeps its number.
pub fn default_preset_with(edits: &[(&str, &str)]) -> String {
    let mut doc: toml_edit::DocumentMut = kd_tui::config::DEFAULT_PRESET
        .parse()
        .expect("the default preset parses");
    for (key, value) in edits {
        let value: toml_edit::Value = value
            .parse()
            .unwrap_or_else(|e| panic!("`{value}` is not a TOML value: {e}"));
        let parts: Vec<&str> = key.split('.').collect();
        let (leaf, tables) = parts.split_last().expect("a key");
        let mut item = doc.as_item_mut();
        for table in tables {
            assert!(
                item.get(table).is_some(),
                "the default preset has no `{table}` in `{key}`"
            );
            item = &mut item[table];
        }
        item[leaf] = toml_edit::value(value);
    }
    doc.to_string()
}

/// Writes a preset file `dir/name` and returns its path.
pub fn write_preset(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("writing a preset");
    path
}
