//! `checkpoint.json`: where a stopped run was, so `--resume` can go on from there.
//!
//! What resumes exactly: finished phases (results and weights, never retrained), the live
//! preset with every edit, the current phase's weights, its best-by-validation weights, the
//! optimizer's state, and the position down to the example within the epoch (shuffling replays
//! from per-epoch seeds, dropout from per-batch ones): the weights end bit-identical to an
//! uninterrupted run's on CPU, `hint`'s regressor (and its optimizer) included.

use crate::protocol::summary::{BestWeights, HintState, PhaseResult};
use crate::protocol::{Phase, Role};
use serde::{Deserialize, Serialize};
use std::path::Path;

pub const FILE: &str = "checkpoint.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub phase: Phase,
    /// The epoch in progress, 1-based.
    pub epoch: usize,
    /// Optimizer steps done in the phase.
    pub step: usize,
    /// Training examples of `epoch` already used.
    pub epoch_cursor: usize,
    /// safetensors file of the current weights, relative to the run folder.
    pub weights: String,
    /// safetensors file of the optimizer's state (moments, momentum), relative to the run folder.
    #[serde(default)]
    pub optimizer: Option<String>,
    /// Optimizer steps taken (Adam's bias correction needs them).
    #[serde(default)]
    pub optimizer_steps: u64,
    /// `hint`'s regressor and its optimizer, in a distilled phase that has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<crate::protocol::summary::HintState>,
    pub best: Option<BestWeights>,
    /// Training time spent in the phase so far.
    pub train_seconds: f64,
    /// Phases that had finished, with their results.
    pub completed: Vec<PhaseResult>,
    /// While a completed run's students train for more epochs: their results as the run
    /// completed them. Until every student has its new result, these are the reported ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extending: Vec<PhaseResult>,
    /// The live preset (start preset plus accepted edits), as TOML.
    pub preset: String,
    /// Processes of the data-parallel job that wrote it (1: one process); a resume must have as
    /// many, or its global batch would differ.
    #[serde(default = "one_process")]
    pub world_size: usize,
}

fn one_process() -> usize {
    1
}

impl Checkpoint {
    /// The preset a resumed run goes on with: the live one recorded here, with `overrides`;
    /// errors name `run_dir`'s checkpoint.
    pub fn live_preset(
        &self,
        run_dir: &Path,
        overrides: &[crate::config::Override],
    ) -> Result<crate::config::Preset, crate::config::PresetError> {
        let origin = format!("{} (live preset)", run_dir.join(FILE).display());
        crate::config::load(&self.preset, &origin, overrides)
    }

    /// The most epochs a student has trained, a begun epoch counted whole: a resumed run's
    /// `student.epochs` may not be fewer (both students must end with the same count).
    pub fn student_epochs_begun(&self) -> usize {
        let stopped = (self.phase.role() == Role::Student
            && !self.completed.iter().any(|r| r.phase == self.phase))
        .then(|| match self.epoch_cursor {
            0 => self.epoch.saturating_sub(1),
            _ => self.epoch,
        });
        self.completed
            .iter()
            .filter(|r| r.phase.role() == Role::Student)
            .map(|r| r.epochs_run)
            .chain(stopped)
            .max()
            .unwrap_or(0)
    }

    /// Whether a record made at `phase`'s step `step` is held by this checkpoint (resuming
    /// does not train it again).
    pub fn covers(&self, phase: Phase, step: usize) -> bool {
        match self.completed.iter().find(|r| r.phase == phase) {
            Some(r) => r.end_state.as_ref().is_none_or(|e| step <= e.step),
            None => phase == self.phase && step <= self.step,
        }
    }

    /// Files that resuming to `student_epochs` needs and `run_dir` lacks: it would fail on them.
    pub fn missing_files(&self, run_dir: &Path, student_epochs: usize) -> Vec<String> {
        let mut needed: Vec<&str> = vec![&self.weights];
        needed.extend(self.optimizer.as_deref());
        needed.extend(self.best.as_ref().map(|b| b.weights.as_str()));
        needed.extend(self.hint.iter().flat_map(HintState::files));
        for r in &self.completed {
            needed.push(&r.weights);
            // A student given more epochs goes on from its end state.
            let goes_on = r.phase.role() == Role::Student && r.epochs_run < student_epochs;
            if let Some(end) = r.end_state.as_ref().filter(|_| goes_on) {
                needed.extend(end.files());
            }
        }
        needed.sort_unstable();
        needed.dedup();
        needed
            .into_iter()
            .filter(|f| !run_dir.join(f).is_file())
            .map(String::from)
            .collect()
    }

    pub fn read(run_dir: &Path) -> Result<Checkpoint, String> {
        let path = run_dir.join(FILE);
        let text = crate::run::files::text(&path).map_err(|e| {
            format!(
                "{}: cannot read ({e}); only runs stopped with a checkpoint can be resumed",
                path.display()
            )
        })?;
        serde_json::from_str(&text)
            .map_err(|e| format!("{}: not a kd-tui checkpoint ({e})", path.display()))
    }
}
