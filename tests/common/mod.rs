//! Helpers shared by the integration tests that drive the real `kd-tui` binary.
// Each test binary compiles this module and uses a part of it.
#![allow(dead_code)]
// A test's lines go through `eprintln!`, which the harness captures (clippy.toml keeps it out of
// kd-tui's own code).
#![allow(clippy::disallowed_macros)]

pub mod client;
pub mod data;
pub mod inputs;
mod preset;
pub mod ranks;
pub mod tmux;
pub mod trainer;

#[allow(unused_imports)] // each test binary uses a part
pub use preset::{kd_tui_on, with_digits, DIGITS};

use kd_tui::config::{self, Preset};
use kd_tui::protocol::summary::RunSummary;
use kd_tui::protocol::Stamped;
use serde_json::Value;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A line on the test's standard error, captured by the test harness.
pub fn say(line: impl std::fmt::Display) {
    eprintln!("{line}");
}

/// Longest wait for a process or a file before a test gives up.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// `python3` with torch and numpy, or `None` (after saying so) where the set-up provides none.
/// When kd-tui was built against python3's torch (`LIBTORCH_USE_PYTORCH`), it must be there.
pub fn python_with_torch() -> Option<&'static str> {
    let ok = Command::new("python3")
        .args(["-c", "import torch, numpy"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok && std::env::var_os("LIBTORCH_USE_PYTORCH").is_some() {
        panic!(
            "the set-up builds against python3's torch, but python3 cannot import torch and numpy"
        );
    }
    if !ok {
        eprintln!("skipping: no python3 with torch and numpy (LIBTORCH is set)");
    }
    ok.then_some("python3")
}

/// The set-up's python3 (with torch and numpy: a test that needs it fails without them) run
/// with `args`; its standard output, once it has succeeded.
pub fn run_python<I, S>(args: I) -> Vec<u8>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let python = python_with_torch().expect("python3 with torch and numpy");
    let args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let out = Command::new(python).args(&args).output().unwrap();
    assert!(
        out.status.success(),
        "python3 {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Short runs of the digits preset: 3 teacher and 3 student epochs.
pub const FEW_EPOCHS: [&str; 2] = ["teacher.epochs=3", "student.epochs=3"];

/// The `kd-tui` binary built for these tests, with its teacher-output cache and its default
/// runs folder under the target folder rather than the user's.
pub fn kd_tui() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kd-tui"));
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"));
    command
        .env("KD_TUI_CACHE", target.join("kd-tui-cache"))
        .env("KD_TUI_RUNS", target.join("kd-tui-runs"));
    command
}

/// How a finished `kd-tui` process ended.
#[derive(Debug)]
pub struct Outcome {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `kd-tui` with `args` to completion (stdout and stderr captured, so neither is a
/// terminal), on `DIGITS` where they name no preset.
pub fn run<I, S>(args: I) -> Outcome
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Outcome::of(kd_tui_on(args).output().expect("starting kd-tui"))
}

impl Outcome {
    pub fn of(output: std::process::Output) -> Outcome {
        Outcome {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// The embedded digits preset with `edits` applied: (dotted key, value in TOML syntax) pairs,
/// each set in place or added to its table, so that every other line keeps its number.
pub fn default_preset_with(edits: &[(&str, &str)]) -> String {
    let mut doc: toml_edit::DocumentMut = kd_tui::config::DIGITS_PRESET
        .parse()
        .expect("the digits preset parses");
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
                "the digits preset has no `{table}` in `{key}`"
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

/// A finished batch run and its folder, removed on drop.
pub struct Run {
    _tmp: tempfile::TempDir,
    pub dir: PathBuf,
    pub outcome: Outcome,
}

impl Run {
    /// `kd-tui --batch [preset] --set ... --out <temp>/run`; expects exit code 0.
    pub fn new(preset: Option<&Path>, overrides: &[&str]) -> Run {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        let mut args: Vec<OsString> = vec!["--batch".into(), "--out".into(), dir.clone().into()];
        args.extend(preset.map(OsString::from));
        for o in overrides {
            args.extend(["--set".into(), OsString::from(o)]);
        }
        // A cache of its own: whether the teacher's outputs come from the cache is then known.
        let output = kd_tui_on(&args)
            .env("KD_TUI_CACHE", tmp.path().join("cache"))
            .output()
            .expect("starting kd-tui");
        let outcome = Outcome::of(output);
        assert_eq!(
            outcome.code,
            Some(0),
            "kd-tui {args:?} failed:\n{}",
            outcome.stderr
        );
        Run {
            _tmp: tmp,
            dir,
            outcome,
        }
    }

    /// The default preset for a few epochs, plus `overrides`.
    pub fn digits(overrides: &[&str]) -> Run {
        Run::new(None, &[&FEW_EPOCHS[..], overrides].concat())
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn preset(&self) -> Preset {
        read_preset(&self.dir)
    }

    pub fn summary(&self) -> RunSummary {
        read_summary(&self.dir)
    }

    pub fn metrics(&self) -> Vec<Value> {
        read_metrics(&self.dir)
    }

    /// The cells of the final table's row for `phase`.
    pub fn table_row(&self, phase: &str) -> Option<Vec<&str>> {
        self.outcome
            .stdout
            .lines()
            .map(|line| line.split(['│', '┆']).map(str::trim).collect::<Vec<_>>())
            .find(|cells| cells.get(1) == Some(&phase))
    }
}

/// preset.toml, which must load as a preset.
pub fn read_preset(dir: &Path) -> Preset {
    let text = std::fs::read_to_string(dir.join("preset.toml")).expect("reading preset.toml");
    config::load(&text, "preset.toml", &[]).unwrap_or_else(|e| panic!("{e}"))
}

pub fn read_summary(dir: &Path) -> RunSummary {
    let text = std::fs::read_to_string(dir.join("summary.json")).expect("reading summary.json");
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("summary.json does not parse: {e}\n{text}"))
}

/// The bytes of each phase's final weights, as the summary names them.
pub fn final_weights(dir: &Path) -> Vec<Vec<u8>> {
    read_summary(dir)
        .results()
        .map(|r| std::fs::read(dir.join(&r.weights)).unwrap())
        .collect()
}

/// Every record of metrics.jsonl; each must be a JSON object with the common keys and must parse
/// as the trainer's `Stamped` event.
pub fn read_metrics(dir: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(dir.join("metrics.jsonl")).expect("reading metrics.jsonl");
    parse_metrics(&text)
}

/// The records of a live run's metrics.jsonl written so far: a last line still being written
/// (no line break yet) is left for the next read.
pub fn read_live_metrics(dir: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(dir.join("metrics.jsonl")).expect("reading metrics.jsonl");
    let complete = text.rfind('\n').map_or("", |end| &text[..=end]);
    parse_metrics(complete)
}

fn parse_metrics(text: &str) -> Vec<Value> {
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            let record: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("metrics.jsonl line {}: {e}\n{line}", i + 1));
            for key in ["type", "phase", "epoch", "step", "wall_time"] {
                assert!(
                    record.get(key).is_some(),
                    "metrics.jsonl line {} lacks `{key}`: {line}",
                    i + 1
                );
            }
            if let Err(e) = serde_json::from_value::<Stamped>(record.clone()) {
                panic!("metrics.jsonl line {} is not an event: {e}\n{line}", i + 1);
            }
            record
        })
        .collect()
}

/// Kills the child if a test fails while it runs.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Polls `done` until it holds, failing after `PATIENCE`.
pub fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < PATIENCE, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The window of a negative check (say, no step while paused): no event can tell that nothing
/// happened, so the test must wait the window out. Other work may run inside it (an edit while
/// paused); `close` sleeps only what is left of it.
pub struct Quiet(Instant);

impl Quiet {
    pub fn open(window: Duration) -> Quiet {
        Quiet(Instant::now() + window)
    }

    pub fn close(self) {
        std::thread::sleep(self.0.saturating_duration_since(Instant::now()));
    }
}

/// Waits for a guarded child to exit; its exit code (-1 for a signal).
pub fn wait_exit(job: &mut ChildGuard) -> i32 {
    let mut code = None;
    wait_for("the job to exit", || {
        code = job.0.try_wait().unwrap().map(|s| s.code().unwrap_or(-1));
        code.is_some()
    });
    code.unwrap()
}

/// Starts `kd-tui --batch <args> --out <dir>` (stdout discarded), killed on drop.
pub fn spawn_batch(dir: &Path, args: &[&str], stderr: Stdio) -> ChildGuard {
    let child = kd_tui_on(["--batch"].iter().chain(args))
        .arg("--out")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("starting kd-tui");
    ChildGuard(child)
}

/// Runs `kd-tui --batch <args> --out <dir>` until a record of `dir/<metrics>` (a run's
/// `metrics.jsonl`, or one of a series' runs) satisfies `ready`, then sends SIGTERM; returns the
/// exit code and stderr.
pub fn run_until_sigterm(
    dir: &Path,
    metrics: &str,
    args: &[&str],
    ready: impl Fn(&Value) -> bool,
) -> (Option<i32>, String) {
    let stderr_path = dir.with_extension("stderr.txt");
    let stderr = std::fs::File::create(&stderr_path).unwrap();
    let mut child = spawn_batch(dir, args, stderr.into());

    let metrics_path = dir.join(metrics);
    wait_for("the awaited record in metrics.jsonl", || {
        if let Some(status) = child.0.try_wait().unwrap() {
            panic!(
                "kd-tui ended early ({status}):\n{}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        std::fs::read_to_string(&metrics_path).is_ok_and(|text| {
            text.lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .any(|r| ready(&r))
        })
    });
    signal(child.0.id(), "-TERM");
    let mut status = None;
    wait_for("kd-tui to stop after SIGTERM", || {
        status = child.0.try_wait().unwrap();
        status.is_some()
    });
    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    (status.unwrap().code(), stderr)
}

/// Starts `kd-tui --batch ARGS` and returns once `dir`'s metrics hold a record `ready` accepts
/// among those after `skip` records.
pub fn start_batch_until(
    args: &[&str],
    dir: &Path,
    skip: usize,
    ready: impl Fn(&Value) -> bool,
) -> ChildGuard {
    let mut job = ChildGuard(
        kd_tui_on(["--batch"].iter().chain(args))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for("the awaited record", || {
        assert!(job.0.try_wait().unwrap().is_none(), "kd-tui ended early");
        std::fs::read_to_string(dir.join("metrics.jsonl")).is_ok_and(|text| {
            text.lines()
                .skip(skip)
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .any(|r| ready(&r))
        })
    });
    job
}

/// Sends `sig` (`-TERM`, `-KILL`, ...) to the process `pid`.
pub fn signal(pid: u32, sig: &str) {
    let sent = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

/// `checkpoint.json` of a run folder, as JSON.
pub fn read_checkpoint(dir: &Path) -> Value {
    let text =
        std::fs::read_to_string(dir.join("checkpoint.json")).expect("reading checkpoint.json");
    serde_json::from_str(&text).expect("checkpoint.json parses")
}

/// The record a resumed run writes where it goes on.
pub fn is_resume_record(r: &Value) -> bool {
    r["type"] == "log"
        && r["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("resumed from checkpoint.json"))
}

/// Every float of every tensor in a safetensors file, by name.
pub fn weights(path: &Path) -> Vec<(String, Vec<f32>)> {
    let bytes = std::fs::read(path).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut all: Vec<(String, Vec<f32>)> = tensors
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let floats = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect();
            (name, floats)
        })
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}
