//! The preset the tests run where they name none: `presets/digits.toml`, not kd-tui's own
//! default.

use super::kd_tui;
use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::process::Command;

/// `presets/digits.toml`, the seconds-long preset that the tests run where they name none:
/// kd-tui's own default (the embedded MNIST subset) takes under a minute.
pub const DIGITS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/presets/digits.toml");

/// `args` with `DIGITS` added where they name no preset: not a `--resume`, a `--help` or a
/// subcommand that takes none, and no argument ending in `.toml` or naming a file that is
/// there (a preset, or a device such as `/dev/zero` read as one).
pub fn with_digits<I, S>(args: I) -> Vec<OsString>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let named = args.iter().any(|a| {
        ["--resume", "--help", "-h", "--version"].contains(&a.to_str().unwrap_or(""))
            || a.to_string_lossy().ends_with(".toml")
            || Path::new(a).exists() && !Path::new(a).is_dir() // /dev/zero, a file named so
    });
    let at = match args.first().and_then(|a| a.to_str()) {
        Some("models" | "data") => 1,
        Some("attach" | "ls" | "doctor" | "export" | "help" | "presets") => return args,
        _ => 0,
    };
    if !named {
        args.insert(at, DIGITS.into());
    }
    args
}

/// `kd_tui()` with `args`, run on `DIGITS` where they name no preset (`with_digits`).
pub fn kd_tui_on<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = kd_tui();
    command.args(with_digits(args));
    command
}
