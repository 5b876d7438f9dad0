//! The run folder: `preset.toml`, `metrics.jsonl`, `summary.json`, weights and checkpoints.

pub mod checkpoint;
pub mod lock;
pub mod plots;
pub mod stats;
pub mod summary;

use crate::config::Preset;
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

impl RunFolder {
    /// `runs/<name>-<local time>` under the current directory.
    pub fn default_dir(name: &str) -> PathBuf {
        PathBuf::from("runs").join(format!(
            "{name}-{}",
            chrono::Local::now().format("%Y%m%d-%H%M%S")
        ))
    }

    /// Creates the folder (refusing one that already holds files, but for a detached job's
    /// `job.log`), takes its job lock and records the preset.
    pub fn create(dir: &Path, preset: &Preset) -> io::Result<RunFolder> {
        let others = |d: std::fs::ReadDir| d.flatten().any(|e| e.file_name() != JOB_LOG);
        if dir.read_dir().is_ok_and(others) {
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

    /// Opens an existing run folder to go on with it (`--resume`); metrics are appended.
    pub fn reopen(dir: &Path) -> io::Result<RunFolder> {
        let lock = lock::JobLock::acquire(dir)?;
        let metrics_path = dir.join("metrics.jsonl");
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
        let tmp = dir.join(format!(".{file}.tmp"));
        std::fs::write(&tmp, serde_json::to_vec_pretty(value)?)?;
        std::fs::rename(tmp, dir.join(file))
    }
}
