//! Where training is, as the cockpit has followed it: epochs, steps, rates, paused time.

use crate::protocol::summary::TeacherOutputs;
use crate::protocol::{teacher_layers, Phase};

/// The distilled phase's pass over the training set for the teacher's outputs, before its
/// first step.
#[derive(Debug, Clone, PartialEq)]
pub struct TeacherPass {
    /// Training examples done, of `total`.
    pub done: usize,
    pub total: usize,
    pub source: TeacherOutputs,
    /// The pass over this layer's output (`hint`'s guided layer), after the logits'.
    pub layer: Option<String>,
    /// Trainer wall time when this pass started.
    pub started: f64,
}

impl TeacherPass {
    pub fn ratio(&self) -> f64 {
        if self.total == 0 {
            return 1.0;
        }
        (self.done as f64 / self.total as f64).clamp(0.0, 1.0)
    }

    /// Seconds per example, measured once the pass has done some by `now`.
    pub fn seconds_per_example(&self, now: f64) -> Option<f64> {
        (self.done > 0 && self.done < self.total && now > self.started)
            .then(|| (now - self.started) / self.done as f64)
    }

    /// What the header says of it, e.g. `computing the teacher's outputs 45%`.
    pub fn text(&self) -> String {
        if let Some(layer) = &self.layer {
            return match self.done >= self.total {
                true => format!("{} computed", teacher_layers(layer)),
                false => format!(
                    "computing {} {:.0}%",
                    teacher_layers(layer),
                    100.0 * self.ratio()
                ),
            };
        }
        match self.source {
            source if source.from_cache() => "the teacher's outputs read from the cache".into(),
            _ if self.done >= self.total => "the teacher's outputs computed".into(),
            TeacherOutputs::Views { views, .. } => format!(
                "computing the teacher's outputs over {views} views {:.0}%",
                100.0 * self.ratio()
            ),
            _ => format!(
                "computing the teacher's outputs {:.0}%",
                100.0 * self.ratio()
            ),
        }
    }
}

/// Where training is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    pub phase: Option<Phase>,
    /// The epoch in progress (1-based) as the latest step says.
    pub epoch: usize,
    pub epochs: usize,
    /// Epochs finished in this phase, and the step at which the last one ended.
    pub epochs_done: usize,
    pub epoch_start_step: usize,
    pub step: usize,
    pub steps_per_epoch: usize,
    /// Intra-op CPU threads of the phase (0: a GPU, or not known).
    pub threads: usize,
    pub samples_per_sec: f64,
    /// Trainer wall time of the latest event and of the current phase's start.
    pub wall_time: f64,
    pub phase_started: f64,
    /// Epochs finished and the step reached when this process started the phase (both 0
    /// unless it was resumed): the rate is measured from there.
    pub start_epochs_done: usize,
    pub start_step: usize,
    /// Time this phase spent paused, and since when it is paused now.
    pub paused_seconds: f64,
    pub paused_since: Option<f64>,
    /// The teacher's outputs as the distilled phase computes them, until its training starts.
    pub teacher_pass: Option<TeacherPass>,
}

impl Progress {
    /// Fraction of the current epoch done; a phase past its last epoch has it done.
    pub fn epoch_ratio(&self) -> f64 {
        if self.epochs > 0 && self.epochs_done >= self.epochs {
            return 1.0;
        }
        if self.steps_per_epoch == 0 {
            return 0.0;
        }
        let into_epoch = self.step.saturating_sub(self.epoch_start_step);
        (into_epoch as f64 / self.steps_per_epoch as f64).clamp(0.0, 1.0)
    }

    /// Fraction of the phase done: finished epochs plus the share of the current one (right
    /// after a batch-size or epochs edit too).
    pub fn phase_ratio(&self) -> f64 {
        if self.epochs == 0 {
            return 0.0;
        }
        ((self.epochs_done as f64 + self.epoch_ratio()) / self.epochs as f64).clamp(0.0, 1.0)
    }

    /// Training seconds of this phase so far in this process, paused time left out.
    pub fn training_seconds(&self) -> f64 {
        let paused_now = self.paused_since.map_or(0.0, |t| self.wall_time - t);
        self.wall_time - self.phase_started - self.paused_seconds - paused_now
    }

    /// Seconds per optimizer step, once an epoch has ended in this process: a stable rate,
    /// measured over the steps this process took (a resumed phase's earlier steps took no
    /// time here).
    pub fn seconds_per_step(&self) -> Option<f64> {
        let steps = self.step.saturating_sub(self.start_step);
        let spent = self.training_seconds();
        (self.epochs_done > self.start_epochs_done && steps > 0 && spent > 0.0)
            .then(|| spent / steps as f64)
    }

    /// Optimizer steps left in this phase at the current steps per epoch.
    pub fn steps_left(&self) -> usize {
        let into_epoch = self.step.saturating_sub(self.epoch_start_step);
        (self.epochs.saturating_sub(self.epochs_done) * self.steps_per_epoch)
            .saturating_sub(into_epoch)
    }

    /// Seconds left in this phase, once its rate is measured.
    pub fn eta_seconds(&self) -> Option<f64> {
        self.seconds_per_step()
            .map(|rate| rate * self.steps_left() as f64)
    }

    pub fn set_paused(&mut self, paused: bool, at: f64) {
        match (paused, self.paused_since) {
            (true, None) => self.paused_since = Some(at),
            (false, Some(since)) => {
                self.paused_seconds += at - since;
                self.paused_since = None;
            }
            _ => {}
        }
    }
}
