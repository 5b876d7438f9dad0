//! What lasts for one phase: built fresh when the phase starts (from its checkpoint on a resume)
//! and dropped at its end, so nothing of a phase reaches the next one and nothing is reset by
//! hand. The `Trainer` keeps what lasts for the run.

use super::targets::HeadKit;
use crate::config::Preset;
use crate::distill::{self, Distiller};
use crate::protocol::summary::BestWeights;
use crate::protocol::Phase;
use crate::run::RunFolder;
use std::time::{Duration, Instant};
use tch::{nn, Tensor};

/// One phase's state while it trains.
pub(super) struct PhaseRun {
    pub phase: Phase,
    /// Intra-op CPU threads of the phase (0 on a GPU, and for a loaded teacher).
    pub threads: usize,
    /// The distillation method of the preset's `distill` (used by the distilled phase): built
    /// when the phase starts and rebuilt when a `distill.*` edit is applied, not per step.
    pub method: Box<dyn Distiller>,
    /// The method's head (`hint`'s regressor, `crd`'s heads and banks) and its optimizer, in a
    /// distilled phase whose method has one.
    pub head: Option<HeadKit>,
    /// The best-by-validation weights so far.
    pub best: Option<Best>,
    /// Where the first epoch this process trains starts: the examples a resumed epoch had
    /// already used (0 otherwise). Taken by that epoch.
    pub start_cursor: usize,
    /// Training examples of the current epoch already used.
    pub epoch_cursor: usize,
    pub clock: PhaseClock,
    /// When the phase's last checkpoint was written (or the phase started).
    pub last_checkpoint: Instant,
    /// The phase's first loss (at least ln(classes)): what divergence is measured against.
    pub loss_reference: Option<f64>,
    /// The latest automatic checkpoint's weights, removed when a newer one is written.
    pub last_auto_checkpoint: Option<String>,
}

impl PhaseRun {
    /// A phase starting now (its clock started at `clock`), with the preset's method.
    pub fn new(phase: Phase, clock: PhaseClock, threads: usize, preset: &Preset) -> PhaseRun {
        PhaseRun {
            phase,
            threads,
            method: distill::build(&preset.distill),
            head: None,
            best: None,
            start_cursor: 0,
            epoch_cursor: 0,
            clock,
            last_checkpoint: Instant::now(),
            loss_reference: None,
            last_auto_checkpoint: None,
        }
    }

    /// After an edit of `key` was applied to `preset`: a `distill.*` one rebuilds the method,
    /// so that the next step uses the new values.
    pub fn edited(&mut self, key: &str, preset: &Preset) {
        if key.starts_with("distill.") {
            self.method = distill::build(&preset.distill);
        }
    }
}

/// A phase's training time: pauses left out, earlier processes (a resumed phase) included.
pub(super) struct PhaseClock {
    started: Instant,
    /// Training time of the phase before this process.
    before: f64,
    /// Time the phase spent paused.
    paused: Duration,
}

impl PhaseClock {
    pub fn start() -> PhaseClock {
        PhaseClock {
            started: Instant::now(),
            before: 0.0,
            paused: Duration::ZERO,
        }
    }

    /// A resumed phase had trained for `seconds` before this process.
    pub fn trained_before(&mut self, seconds: f64) {
        self.before = seconds;
    }

    pub fn paused(&mut self, d: Duration) {
        self.paused += d;
    }

    pub fn train_seconds(&self) -> f64 {
        self.before + (self.started.elapsed() - self.paused).as_secs_f64()
    }
}

/// The best-by-validation weights seen so far in a phase.
pub struct Best {
    pub epoch: usize,
    pub val_acc: f64,
    pub weights: Vec<(String, Tensor)>,
}

impl Best {
    pub(super) fn snapshot(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
        tch::no_grad(|| {
            vs.variables()
                .into_iter()
                .map(|(k, v)| (k, v.copy()))
                .collect()
        })
    }

    pub fn save(&self, path: &std::path::Path) -> std::io::Result<()> {
        crate::run::replace_file(path, |tmp| {
            Tensor::write_safetensors(&self.weights, tmp).map_err(std::io::Error::other)
        })
    }

    pub fn load(record: &BestWeights, run: &RunFolder) -> Result<Best, tch::TchError> {
        Ok(Best {
            epoch: record.epoch,
            val_acc: record.val_acc,
            weights: Tensor::read_safetensors(run.path(&record.weights))?,
        })
    }

    pub(super) fn restore(&self, vs: &mut nn::VarStore) {
        let vars = vs.variables();
        tch::no_grad(|| {
            for (name, saved) in &self.weights {
                vars[name].shallow_clone().copy_(saved);
            }
        });
    }
}
