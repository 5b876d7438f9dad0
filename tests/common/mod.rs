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

/// The embedded default preset with the first `from` replaced by `to`.
pub fn edit_default_preset(from: &str, to: &str) -> String {
    let text = kd_tui::preset::DEFAULT_PRESET;
    assert!(
        text.contains(from),
        "presets/digits.toml no longer contains `{from}`"
    );
    text.replacen(from, to, 1)
}

/// Writes a preset file `dir/name` and returns its path.
pub fn write_preset(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("writing a preset");
    path
}
