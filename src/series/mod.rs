//! A series of runs (repeated seeds, a sweep), each in its own folder under one parent, driven by
//! a front end: headless, or the cockpit with the series' queue beside the running one.
//!
//! The parent records the series' preset (`preset.toml`, with its seeds and sweep) and its report
//! after every run, so a stopped, killed or crashed series resumes where it stopped
//! (`--resume PARENT`): a run whose folder holds a completed summary is read back, one with a
//! checkpoint goes on from it, and the rest train afresh.

pub mod queue;
pub mod seeds;
pub mod sweep;

use crate::config::{self, Preset};
use crate::exit::Failure;
use crate::protocol::summary::{RunStatus, RunSummary};
use crate::run::checkpoint::{self, Checkpoint};
use crate::run::RunFolder;
use crate::train::{self, Ended, RunOutcome, TrainerHandle, TrainerSetup};
use queue::Queue;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// What drives one run of a series to its end, and where the series' own text goes.
pub trait Front {
    /// Runs one trainer, of the run in `dir` (`resumed` from its checkpoint), to its end;
    /// `queue` says where it stands in the series.
    fn drive(
        &mut self,
        handle: TrainerHandle,
        dir: &Path,
        resumed: bool,
        queue: &Queue,
    ) -> Result<Ended, String>;
    /// Text for standard output (tables): at once, or (a full-screen front) once the screen
    /// is given back.
    fn print(&mut self, text: String) {
        crate::console::say(&text);
    }
    /// A progress or error line for standard error, likewise.
    fn note(&mut self, text: String) {
        crate::console::note(&text);
    }
    /// Runs one job of the series in processes of its own (the ranks of a data-parallel job)
    /// and returns their exit code, going on from `dir`'s checkpoint when `resume`; `None`:
    /// this front drives a trainer in this process instead.
    fn launch(
        &mut self,
        _preset: &Preset,
        _dir: &Path,
        _resume: bool,
    ) -> Option<Result<i32, String>> {
        None
    }
}

/// How one run of a series ended.
pub enum OneRun {
    Completed(RunSummary),
    /// A signal or a stop: the runs after it are not started.
    Stopped {
        summary: RunSummary,
        code: i32,
    },
    Failed {
        code: i32,
    },
}

impl OneRun {
    pub fn summary(&self) -> Option<&RunSummary> {
        match self {
            OneRun::Completed(summary) | OneRun::Stopped { summary, .. } => Some(summary),
            OneRun::Failed { .. } => None,
        }
    }

    /// The series' exit code if this run ends it.
    pub fn stop_code(&self) -> Option<i32> {
        match self {
            OneRun::Completed(_) => None,
            OneRun::Stopped { code, .. } | OneRun::Failed { code } => Some(*code),
        }
    }
}

/// A started run's folder that can neither be read back nor resumed (killed before its first
/// checkpoint, or failed) is kept beside, renamed, and the run starts again.
fn set_aside(dir: &Path) -> std::io::Result<Option<PathBuf>> {
    if !dir.read_dir().is_ok_and(|mut d| d.next().is_some()) {
        return Ok(None);
    }
    let name = dir.file_name().unwrap_or_default().to_string_lossy();
    let aside = (1..)
        .map(|n| dir.with_file_name(format!("{name}.partial-{n}")))
        .find(|p| !p.exists())
        .expect("a free name");
    std::fs::rename(dir, &aside)?;
    Ok(Some(aside))
}

/// Whether the run in `dir` goes on from its checkpoint; a started folder without one is set
/// aside first, to start afresh.
fn resumes(dir: &Path, front: &mut dyn Front) -> Result<bool, Failure> {
    if dir.join(checkpoint::FILE).exists() {
        return Ok(true);
    }
    let aside =
        set_aside(dir).map_err(|e| Failure::bad_input(format!("{}: {e}", dir.display())))?;
    if let Some(aside) = aside {
        front.note(format!(
            "kd-tui: {} had neither a completed summary nor a checkpoint; kept as {} and started again",
            dir.display(),
            aside.display()
        ));
    }
    Ok(false)
}

/// Sets up one run of the series in `dir`: resumed from its checkpoint, or afresh.
fn setup(preset: Preset, dir: &Path, resume: bool) -> Result<TrainerSetup, Failure> {
    let resume = resume
        .then(|| Checkpoint::read(dir))
        .transpose()
        .map_err(Failure::bad_input)?;
    let preset = match &resume {
        Some(ckpt) => ckpt.live_preset(dir, &[]).map_err(Failure::bad_input)?,
        None => preset,
    };
    crate::setup::setup_in(preset, dir, resume)
}

/// How a run launched in processes of its own ended: its exit code, and the summary it left.
fn launched(code: Result<i32, String>, dir: &Path, front: &mut dyn Front) -> OneRun {
    let code = match code {
        Ok(code) => code,
        Err(e) => {
            front.note(format!("kd-tui: {}: {e}", dir.display()));
            return OneRun::Failed { code: 1 };
        }
    };
    let summary = crate::run::read_summary(dir);
    match summary {
        Some(summary) if code == 0 && summary.status == RunStatus::Completed => {
            OneRun::Completed(summary)
        }
        Some(summary) if summary.status == RunStatus::Interrupted => {
            front.note(format!(
                "kd-tui: {} stopped; the runs after it were not started",
                dir.display()
            ));
            OneRun::Stopped { summary, code }
        }
        _ => OneRun::Failed { code: code.max(1) },
    }
}

/// Runs one job of the series in `dir`: read back if it completed before, resumed from its
/// checkpoint if it has one, else trained afresh.
pub fn run_job(preset: Preset, dir: &Path, front: &mut dyn Front, queue: &Queue) -> OneRun {
    if let Some(summary) = crate::run::completed_summary(dir) {
        front.note(format!(
            "kd-tui: {} completed before; read back",
            dir.display()
        ));
        return OneRun::Completed(summary);
    }
    let failed = |failure: Failure, front: &mut dyn Front| {
        front.note(format!("kd-tui: {failure}"));
        OneRun::Failed {
            code: failure.exit_code(),
        }
    };
    let resume = match resumes(dir, front) {
        Ok(resume) => resume,
        Err(failure) => return failed(failure, front),
    };
    if let Some(code) = front.launch(&preset, dir, resume) {
        return launched(code, dir, front);
    }
    let setup = match setup(preset, dir, resume) {
        Ok(s) => s,
        Err(failure) => return failed(failure, front),
    };
    let ended = match front.drive(train::spawn(setup), dir, resume, queue) {
        Ok(ended) => ended,
        Err(e) => {
            front.note(format!("kd-tui: {e}"));
            return OneRun::Failed { code: 1 };
        }
    };
    match ended.outcome {
        RunOutcome::Completed(summary) => {
            let width = crate::protocol::fit::stdout_columns();
            front.print(format!("{}:\n{}", dir.display(), summary.table(width)));
            OneRun::Completed(summary)
        }
        RunOutcome::Stopped { reason, summary } => {
            front.note(format!(
                "kd-tui: {} stopped ({reason}); the runs after it were not started",
                dir.display()
            ));
            // A user's stop is not an error; a signal's code says which.
            OneRun::Stopped {
                summary,
                code: ended.signal.map_or(0, |s| 128 + s),
            }
        }
        RunOutcome::Failed(error) => {
            front.note(format!("kd-tui: {}: {error}", dir.display()));
            OneRun::Failed {
                code: error.exit_code(),
            }
        }
    }
}

/// Runs (or, `resuming`, goes on with) the series `preset` plans under `parent`: its sweep, or
/// its seeds; returns the exit code.
pub fn run(
    preset: Preset,
    parent: &Path,
    front: &mut dyn Front,
    resuming: bool,
) -> Result<i32, Failure> {
    match preset.sweep.is_some() {
        true => sweep::run(preset, parent, front, resuming),
        false => seeds::run(preset, parent, front, resuming),
    }
}

/// Opens the parent of a new series: refuses one that already holds files (but the log that a
/// detached series' launcher opened there), then records the series' preset (seeds and sweep
/// included) for `--resume`.
pub fn create_parent(parent: &Path, preset: &Preset) -> Result<(), Failure> {
    if crate::run::holds_files(parent) {
        return Err(Failure::bad_input(format!(
            "run folder: {} already exists and is not empty; pick another --out (or --resume it)",
            parent.display()
        )));
    }
    std::fs::create_dir_all(parent)
        .and_then(|()| std::fs::write(parent.join("preset.toml"), preset.to_toml()))
        .map_err(|e| Failure::bad_input(format!("run folder: {}: {e}", parent.display())))
}

/// The series' preset of a parent folder being resumed, if `dir` is one (a single run's folder
/// holds a checkpoint instead and a preset without seeds or a sweep).
pub fn parent_preset(dir: &Path) -> Option<Result<Preset, Failure>> {
    if dir.join(checkpoint::FILE).exists() {
        return None;
    }
    let path = dir.join("preset.toml");
    if !path.exists() {
        return None;
    }
    match config::load_file(&path, &[]) {
        Ok(p) if p.seeds.is_none() && p.sweep.is_none() => None,
        Ok(p) => Some(Ok(p)),
        Err(e) => Some(Err(Failure::bad_input(e))),
    }
}

/// Writes `<name>.json` and `<name>.csv` in `parent`; `Err(1)` (after saying why) if it cannot.
fn write_report(
    front: &mut dyn Front,
    parent: &Path,
    name: &str,
    report: &impl Serialize,
    csv: String,
) -> Result<(), i32> {
    std::fs::create_dir_all(parent)
        .and_then(|()| RunFolder::write_json_at(parent, &format!("{name}.json"), report))
        .and_then(|()| {
            let tmp = parent.join(format!(".{name}.csv.tmp"));
            std::fs::write(&tmp, csv)?;
            std::fs::rename(tmp, parent.join(format!("{name}.csv")))
        })
        .map_err(|e| {
            front.note(format!(
                "kd-tui: writing {name}.json / {name}.csv in {}: {e}",
                parent.display()
            ));
            1
        })
}

/// A series' bookkeeping after each run: the queue's row, whether it goes on, the exit code,
/// and its report rewritten (a killed series keeps the report of its finished runs).
pub struct Tally {
    code: i32,
    /// Every run so far completed.
    pub complete: bool,
    written: Result<(), i32>,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            code: 0,
            complete: true,
            written: Ok(()),
        }
    }
}

impl Tally {
    /// Marks run `k`'s row in the queue; returns whether the series goes on.
    pub fn record(&mut self, queue: &mut Queue, k: usize, outcome: &OneRun) -> bool {
        match outcome.summary() {
            Some(summary) => queue.finish_running(summary),
            None => queue.set(k, queue::JobState::Failed, String::new()),
        }
        if let Some(code) = outcome.stop_code() {
            (self.code, self.complete) = (code, false);
        }
        self.complete
    }

    /// Writes `<name>.json` and `<name>.csv` in `parent`.
    pub fn write(
        &mut self,
        front: &mut dyn Front,
        parent: &Path,
        name: &str,
        report: &impl Serialize,
        csv: String,
    ) {
        self.written = write_report(front, parent, name, report, csv);
    }

    /// A run's failure or stop first, then a report that was not written.
    pub fn exit_code(&self) -> i32 {
        match self.written {
            Err(failed) if self.code == 0 => failed,
            _ => self.code,
        }
    }
}
