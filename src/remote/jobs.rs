//! `kd-tui ls`: the runs under a folder with their state, read from their run folders alone:
//! a live job holds the folder's lock (`run::lock`), a finished run's last record is `finished`,
//! and a run that neither trains nor finished died (`kill -9`, a crash, a power cut).

use crate::protocol::summary::RunStatus;
use crate::protocol::{Event, Phase, Stamped};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    Running,
    /// A live job whose current phase's network is paused: it waits for a resume.
    Paused,
    Completed,
    Interrupted,
    Failed,
    /// Neither training nor finished: killed or crashed. `--resume` goes on from its last
    /// checkpoint, if it wrote one.
    Dead,
}

impl RunState {
    /// A job trains (or waits, paused) in the folder.
    pub fn is_live(self) -> bool {
        matches!(self, RunState::Running | RunState::Paused)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Paused => "paused",
            RunState::Completed => "completed",
            RunState::Interrupted => "interrupted",
            RunState::Failed => "failed",
            RunState::Dead => "dead",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub dir: PathBuf,
    pub state: RunState,
    /// The live job's process.
    pub pid: Option<u32>,
    /// Where the run is (or stopped): its latest phase and epoch.
    pub phase: Option<Phase>,
    pub epoch: usize,
    pub epochs: usize,
    /// Best validation accuracy of each phase so far, in % (over the records `ls` reads: the
    /// last `crate::run::files::LS_BYTES` of `metrics.jsonl`).
    pub best_val_acc: BTreeMap<String, f64>,
    /// Seconds since the run last wrote a record.
    pub age_seconds: f64,
    /// The job's ranks: rank 0 writes the folder, each other rank its own `rank-N/` in it.
    #[serde(default = "crate::protocol::one_rank")]
    pub world_size: usize,
}

/// The ranks of the job that wrote `dir`: 1 + its `rank-N` folders.
pub fn world_size(dir: &Path) -> usize {
    let others = std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .filter(|e| {
                let name = e.file_name();
                let rank = name.to_str().and_then(|n| n.strip_prefix("rank-"));
                rank.is_some_and(|n| n.parse::<usize>().is_ok()) && e.path().is_dir()
            })
            .count()
    });
    1 + others
}

/// What `dir`'s records say, or `None` if it is not a run folder.
pub fn inspect(dir: &Path) -> Option<RunInfo> {
    let metrics = dir.join("metrics.jsonl");
    let age_seconds = std::fs::metadata(&metrics)
        .ok()?
        .modified()
        .ok()
        .and_then(|t| t.elapsed().ok())
        .map_or(0.0, |d| d.as_secs_f64());
    // The tail is enough for where the run is; a bounded read whatever the file is.
    let records = crate::run::files::records(&metrics, crate::run::files::LS_BYTES).ok()?;
    let pid = crate::run::lock::holder(dir);
    let mut info = RunInfo {
        dir: dir.to_path_buf(),
        state: RunState::Dead,
        pid,
        phase: None,
        epoch: 0,
        epochs: 0,
        best_val_acc: BTreeMap::new(),
        age_seconds,
        world_size: world_size(dir),
    };
    let mut paused_roles = [false; 2];
    for Stamped { at, event, .. } in &records {
        info.phase = at.phase.or(info.phase);
        match event {
            Event::Epoch {
                val_acc, epochs, ..
            } => {
                (info.epoch, info.epochs) = (at.epoch, *epochs);
                if let Some(phase) = at.phase {
                    let best = info
                        .best_val_acc
                        .entry(phase.as_str().to_string())
                        .or_insert(0.0);
                    *best = best.max(100.0 * val_acc);
                }
            }
            Event::PhaseStarted { epochs, .. } => (info.epoch, info.epochs) = (at.epoch, *epochs),
            // The epoch in progress, as the cockpit shows it (a distilled phase computing the
            // teacher's outputs has not started its first).
            Event::Step { .. } | Event::TeacherOutputs { .. } => info.epoch = at.epoch,
            Event::Paused { role, paused } => paused_roles[role.index()] = *paused,
            _ => {}
        }
    }
    let waits = info.phase.is_some_and(|p| paused_roles[p.role().index()]);
    info.state = match (pid, records.last().map(|r| &r.event)) {
        (Some(_), _) if waits => RunState::Paused,
        (Some(_), _) => RunState::Running,
        (None, Some(Event::Finished { summary })) => match summary.status {
            RunStatus::Completed => RunState::Completed,
            RunStatus::Interrupted => RunState::Interrupted,
            RunStatus::Failed => RunState::Failed,
        },
        // Records an older kd-tui wrote may not parse; a completed summary is written last.
        (None, _) if completed_summary(dir) => RunState::Completed,
        (None, _) => RunState::Dead,
    };
    Some(info)
}

fn completed_summary(dir: &Path) -> bool {
    crate::run::files::small(&dir.join("summary.json"), crate::run::files::SUMMARY_BYTES)
        .ok()
        .and_then(|t| serde_json::from_slice::<serde_json::Value>(&t).ok())
        .is_some_and(|s| s["status"] == "completed")
}

/// Every run folder under `root` (a series' runs too, two levels down), newest first.
pub fn scan(root: &Path) -> Vec<RunInfo> {
    fn walk(dir: &Path, depth: usize, out: &mut Vec<RunInfo>) {
        if let Some(info) = inspect(dir) {
            out.push(info);
            return;
        }
        if depth == 0 {
            return;
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut dirs: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort();
        for d in dirs {
            walk(&d, depth - 1, out);
        }
    }
    let mut runs = Vec::new();
    walk(root, 3, &mut runs);
    runs.sort_by(|a, b| a.age_seconds.total_cmp(&b.age_seconds));
    runs
}

/// The most recently active live run under `root`.
pub fn latest_live(root: &Path) -> Option<PathBuf> {
    scan(root)
        .into_iter()
        .find(|r| r.state.is_live())
        .map(|r| r.dir)
}

fn age(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    match s {
        0..=59 => format!("{s}s ago"),
        60..=3599 => format!("{}m ago", s / 60),
        3600..=86399 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86400),
    }
}

/// The runs as a table within `width` columns (`protocol::fit`), each named by its folder
/// under `root`; `--json` keeps every field.
pub fn table(runs: &[RunInfo], root: &Path, width: Option<usize>) -> String {
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::UTF8_FULL_CONDENSED)
        .set_header([
            "run",
            "state",
            "phase",
            "epoch",
            "best val % t/b/d",
            "last record",
        ]);
    for r in runs {
        let ranks = match r.world_size {
            1 => String::new(),
            n => format!(", {n} ranks"),
        };
        let state = match r.pid {
            Some(pid) => format!("{} (pid {pid}{ranks})", r.state.as_str()),
            None if ranks.is_empty() => r.state.as_str().to_string(),
            None => format!("{} ({} ranks)", r.state.as_str(), r.world_size),
        };
        // Teacher, baseline, distilled: one short cell, so that 80 columns keep it.
        let best = Phase::ALL
            .iter()
            .map(|p| match r.best_val_acc.get(p.as_str()) {
                Some(acc) => format!("{acc:.2}"),
                None => "-".into(),
            })
            .collect::<Vec<_>>()
            .join("/");
        let name = r.dir.strip_prefix(root).unwrap_or(&r.dir);
        table.add_row([
            name.display().to_string(),
            state,
            r.phase.map_or("-", Phase::as_str).to_string(),
            format!("{}/{}", r.epoch, r.epochs),
            best,
            age(r.age_seconds),
        ]);
    }
    // The phase is the best accuracies' last; the age, then where it is, go before them.
    const DROP_ORDER: [usize; 4] = [2, 5, 3, 4];
    crate::protocol::fit::table(table, width, &DROP_ORDER, "--json")
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &[u8] = br#"{"phase":"teacher","epoch":2,"step":9,"wall_time":0.5,"type":"log","level":"info","message":"hi"}"#;

    #[test]
    fn a_run_whose_records_hold_a_bad_byte_is_listed() {
        let root = tempfile::tempdir().unwrap();
        let run = root.path().join("run");
        std::fs::create_dir(&run).unwrap();
        let mut text = LOG.to_vec();
        text.extend(b"\n{\"type\":\"log\xff\"}\n");
        std::fs::write(run.join("metrics.jsonl"), text).unwrap();
        let runs = scan(root.path());
        assert_eq!(runs.len(), 1, "{runs:?}");
        assert_eq!(runs[0].state, RunState::Dead);
        assert_eq!(runs[0].phase, Some(Phase::Teacher));
    }

    #[test]
    fn a_paused_job_is_listed_paused_at_the_epoch_the_cockpit_shows() {
        let root = tempfile::tempdir().unwrap();
        let run = root.path().join("run");
        std::fs::create_dir(&run).unwrap();
        let records = [
            r#"{"phase":"teacher","epoch":0,"step":0,"wall_time":0.1,"type":"phase_started","epochs":6,"steps_per_epoch":20}"#,
            r#"{"phase":"teacher","epoch":1,"step":5,"wall_time":0.2,"type":"step","loss":2.0,"lr":0.001,"samples_per_sec":64.0}"#,
            r#"{"phase":"teacher","epoch":1,"step":5,"wall_time":0.3,"type":"paused","role":"teacher","paused":true}"#,
        ];
        std::fs::write(run.join("metrics.jsonl"), records.join("\n") + "\n").unwrap();
        let _job = crate::run::lock::JobLock::acquire(&run).unwrap();
        let info = inspect(&run).unwrap();
        assert_eq!(
            (info.state, info.epoch, info.epochs),
            (RunState::Paused, 1, 6)
        );
        assert_eq!(latest_live(root.path()), Some(run.clone()));
        let pid = std::process::id();
        assert!(table(&[info], root.path(), None).contains(&format!("paused (pid {pid})")));
        let resumed = r#"{"phase":"teacher","epoch":1,"step":5,"wall_time":0.4,"type":"paused","role":"teacher","paused":false}"#;
        std::fs::write(
            run.join("metrics.jsonl"),
            records.join("\n") + "\n" + resumed + "\n",
        )
        .unwrap();
        assert_eq!(inspect(&run).unwrap().state, RunState::Running);
    }

    #[test]
    fn a_job_computing_the_teacher_outputs_is_listed_in_the_distilled_phase() {
        let root = tempfile::tempdir().unwrap();
        let run = root.path().join("run");
        std::fs::create_dir(&run).unwrap();
        let records = [
            r#"{"phase":"baseline","epoch":6,"step":120,"wall_time":1.0,"type":"epoch","train_loss":0.5,"val_loss":0.4,"val_acc":0.9,"epochs":6}"#,
            r#"{"phase":"distilled","epoch":0,"step":0,"wall_time":1.1,"type":"teacher_outputs","done":512,"total":1257,"source":"computed"}"#,
        ];
        std::fs::write(run.join("metrics.jsonl"), records.join("\n") + "\n").unwrap();
        let info = inspect(&run).unwrap();
        assert_eq!((info.phase, info.epoch), (Some(Phase::Distilled), 0));
    }

    #[test]
    fn records_that_are_not_files_are_not_read() {
        let root = tempfile::tempdir().unwrap();
        let zero = root.path().join("zero");
        std::fs::create_dir(&zero).unwrap();
        std::os::unix::fs::symlink("/dev/zero", zero.join("metrics.jsonl")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", zero.join("summary.json")).unwrap();
        let fifo = root.path().join("fifo");
        std::fs::create_dir(&fifo).unwrap();
        let mode = rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR;
        rustix::fs::mkfifoat(rustix::fs::CWD, fifo.join("metrics.jsonl"), mode).unwrap();
        assert!(inspect(&zero).is_none());
        assert!(inspect(&fifo).is_none());
        assert!(!completed_summary(&zero));
    }
}
