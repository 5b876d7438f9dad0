//! The run folder: `preset.toml`, `metrics.jsonl`, `summary.json`, weights and checkpoints.

pub mod checkpoint;
pub mod files;
pub mod history;
pub mod lock;
pub mod plots;
pub mod root;

use crate::config::Preset;
use crate::protocol::summary::{RunStatus, RunSummary};
use crate::protocol::Stamped;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

pub struct RunFolder {
    dir: PathBuf,
    metrics: BufWriter<File>,
    _lock: lock::JobLock,
}

/// What a detached job's launcher writes before the job creates its folder.
pub const JOB_LOG: &str = "job.log";

/// Whether `dir` holds files, but the log that a detached job's launcher opens there first.
pub fn holds_files(dir: &Path) -> bool {
    dir.read_dir()
        .is_ok_and(|d| d.flatten().any(|e| e.file_name() != JOB_LOG))
}

/// The summary of a run in `dir` that completed, if it did.
pub fn completed_summary(dir: &Path) -> Option<RunSummary> {
    read_summary(dir).filter(|summary| summary.status == RunStatus::Completed)
}

/// The summary `dir` holds, however its run ended (`None` without a readable one).
pub fn read_summary(dir: &Path) -> Option<RunSummary> {
    let text = files::text(&dir.join("summary.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// `name` with only letters, digits, `-`, `_` and inner dots (anything else becomes `-`).
pub fn safe_name(name: &str) -> String {
    let mapped: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = mapped.trim_start_matches(['.', '-']);
    if trimmed.is_empty() {
        "run".into()
    } else {
        trimmed.to_string()
    }
}

impl RunFolder {
    /// `<runs folder>/<name>-<local time>`, in the folder `ls` reads (`root::RunsRoot`).
    /// The run's name is made safe for a folder name (no separators, `..`, control characters or
    /// leading dots); a folder that exists already gets a numbered suffix.
    pub fn default_dir(name: &str) -> PathBuf {
        let base = format!(
            "{}-{}",
            safe_name(name),
            chrono::Local::now().format("%Y%m%d-%H%M%S")
        );
        let runs = root::RunsRoot::find().dir;
        std::iter::once(base.clone())
            .chain((2..).map(|n| format!("{base}-{n}")))
            .map(|candidate| runs.join(candidate))
            .find(|dir| !dir.exists())
            .expect("a free name")
    }

    /// Creates the folder (refusing one that already holds files, but for a detached job's
    /// `job.log`), takes its job lock and records the preset.
    pub fn create(dir: &Path, preset: &Preset) -> io::Result<RunFolder> {
        if holds_files(dir) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} already exists and is not empty; pick another --out",
                    dir.display()
                ),
            ));
        }
        std::fs::create_dir_all(dir.join("checkpoints"))?;
        let lock = lock::JobLock::acquire(dir)?;
        std::fs::write(dir.join("preset.toml"), preset.to_toml())?;
        let metrics = BufWriter::new(File::create(dir.join("metrics.jsonl"))?);
        Ok(RunFolder {
            dir: dir.to_path_buf(),
            metrics,
            _lock: lock,
        })
    }

    /// Opens an existing run folder to go on with it (`--resume`); metrics are appended, after
    /// a half-written last line (a killed run's) is cut off.
    pub fn reopen(dir: &Path) -> io::Result<RunFolder> {
        let lock = lock::JobLock::acquire(dir)?;
        let metrics_path = dir.join("metrics.jsonl");
        cut_partial_line(&metrics_path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", metrics_path.display())))?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&metrics_path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", metrics_path.display())))?;
        Ok(RunFolder {
            dir: dir.to_path_buf(),
            metrics: BufWriter::new(file),
            _lock: lock,
        })
    }

    /// A run folder that a run created and that has no checkpoint: it stopped (was killed)
    /// before its first one.
    pub fn never_checkpointed(dir: &Path) -> bool {
        dir.join("preset.toml").is_file() && !dir.join(checkpoint::FILE).exists()
    }

    /// Empties a run folder that never wrote a checkpoint (a detached job's log is kept), so
    /// the run starts over there; refused while a job holds the folder.
    pub fn clear_for_restart(dir: &Path) -> io::Result<()> {
        let _held = lock::JobLock::acquire(dir)?;
        for entry in dir.read_dir()? {
            let entry = entry?;
            if entry.file_name() == JOB_LOG {
                continue;
            }
            match entry.file_type()?.is_dir() {
                true => std::fs::remove_dir_all(entry.path())?,
                false => std::fs::remove_file(entry.path())?,
            }
        }
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// Appends one event to `metrics.jsonl`.
    pub fn record(&mut self, event: &Stamped) -> io::Result<()> {
        serde_json::to_writer(&mut self.metrics, event)?;
        self.metrics.write_all(b"\n")
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.metrics.flush()
    }

    /// Writes `file` atomically (write then rename), so a kill never leaves half a JSON file.
    pub fn write_json(&self, file: &str, value: &impl serde::Serialize) -> io::Result<()> {
        RunFolder::write_json_at(&self.dir, file, value)
    }

    /// `write_json` in any folder (the parent of a multi-seed run).
    pub fn write_json_at(dir: &Path, file: &str, value: &impl serde::Serialize) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(value)?;
        replace_file(&dir.join(file), |tmp| std::fs::write(tmp, &bytes))
    }
}

/// Writes `path` through a temporary sibling that is synced to disk, then renamed over it: a
/// crash or a full disk leaves the old file or the new one, never half of one.
pub fn replace_file(path: &Path, write: impl FnOnce(&Path) -> io::Result<()>) -> io::Result<()> {
    // The extension stays last: tch picks the weights' format by it.
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    let tmp = match path.extension() {
        Some(ext) => path.with_file_name(format!(".{stem}.tmp.{}", ext.to_string_lossy())),
        None => path.with_file_name(format!(".{stem}.tmp")),
    };
    let written = injected_full_disk(path)
        .and_then(|()| write(&tmp))
        .and_then(|()| File::open(&tmp)?.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// A model's weights as safetensors, replaced atomically.
pub fn save_weights(vs: &tch::nn::VarStore, path: &Path) -> io::Result<()> {
    replace_file(path, |tmp| vs.save(tmp).map_err(io::Error::other))
}

/// `KD_TUI_FAULT=disk-full-in-baseline`: every file of the baseline phase fails to write, as on
/// a disk that filled up after the teacher finished.
fn injected_full_disk(path: &Path) -> io::Result<()> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    if crate::fault::injected("disk-full-in-baseline") && name.starts_with("baseline") {
        return Err(io::Error::from(io::ErrorKind::StorageFull));
    }
    Ok(())
}

/// Cuts a file back to its last complete line.
fn cut_partial_line(path: &Path) -> io::Result<()> {
    let bytes = std::fs::read(path)?;
    let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if keep < bytes.len() {
        let file = std::fs::OpenOptions::new().write(true).open(path)?;
        file.set_len(keep as u64)?;
        file.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_names_never_leave_the_runs_folder_or_hide() {
        assert_eq!(safe_name("mnist-cnn_2.v1"), "mnist-cnn_2.v1");
        assert_eq!(safe_name("../../etc/passwd"), "etc-passwd");
        assert_eq!(safe_name(".hidden"), "hidden");
        assert_eq!(safe_name("a/b\\c\u{7}d\ne"), "a-b-c-d-e");
        assert_eq!(safe_name("..."), "run");
        assert_eq!(safe_name("名前"), "run");
        let dir = RunFolder::default_dir("../x\u{1b}[31m");
        assert_eq!(dir.parent(), Some(root::RunsRoot::find().dir.as_path()));
        let leaf = dir.file_name().unwrap().to_str().unwrap();
        assert!(leaf.starts_with("x--31m-"), "{leaf}");
    }
}
