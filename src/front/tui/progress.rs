//! Where training is, as the cockpit has followed it: epochs, steps, rates, paused time.

use crate::protocol::Phase;

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
    /// Time this phase spent paused, and since when it is paused now.
    pub paused_seconds: f64,
    pub paused_since: Option<f64>,
}

impl Progress {
    /// Fraction of the current epoch done.
    pub fn epoch_ratio(&self) -> f64 {
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

    /// Training seconds of this phase so far, paused time left out.
    pub fn training_seconds(&self) -> f64 {
        let paused_now = self.paused_since.map_or(0.0, |t| self.wall_time - t);
        self.wall_time - self.phase_started - self.paused_seconds - paused_now
    }

    /// Seconds left in this phase, once a whole epoch has given a stable rate.
    pub fn eta_seconds(&self) -> Option<f64> {
        let spent = self.training_seconds();
        let done = self.phase_ratio();
        (self.epochs_done >= 1 && done > 0.0 && spent > 0.0).then(|| spent * (1.0 - done) / done)
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
