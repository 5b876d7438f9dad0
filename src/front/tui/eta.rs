//! The run's time left: the current phase's own estimate, then every phase still to come.
//!
//! A phase to come is predicted as its epochs × its steps per epoch (from the live preset, so
//! edits count) × a rate in seconds per step: the one measured for the same network (the
//! distilled student takes the baseline's), else the current phase's. During the teacher phase
//! the students are thus predicted at the teacher's rate, which overestimates them when the
//! teacher is the larger network; the estimate tightens once the baseline has a measured rate.
//! The distilled phase's computation of the teacher's outputs is not counted.

use super::app::App;
use crate::protocol::{Phase, Role};

impl App {
    /// Keeps the current phase's measured seconds per step for the phases to come of its role.
    pub(super) fn measure_rate(&mut self) {
        if let (Some(phase), Some(rate)) = (self.progress.phase, self.progress.seconds_per_step()) {
            self.step_seconds[phase.role().index()] = Some(rate);
        }
    }

    /// Seconds left in the whole run, once the current phase has a measured rate.
    pub fn run_eta_seconds(&self) -> Option<f64> {
        let current = self.progress.phase?;
        let phase_left = self.progress.eta_seconds()?;
        let rate =
            |role: Role| self.step_seconds[role.index()].or(self.progress.seconds_per_step());
        let preset = self.preset.as_ref()?;
        let to_come: f64 = Phase::ALL[current.index() + 1..]
            .iter()
            .filter(|p| self.series[p.index()].result.is_none())
            .filter(|p| **p != Phase::Baseline || preset.student.trains_baseline())
            .map(|p| {
                let net = preset.net(p.role());
                let steps = net.epochs * self.train_examples.div_ceil(net.batch_size.max(1));
                rate(p.role()).unwrap_or(0.0) * steps as f64
            })
            .sum();
        Some(phase_left + to_come)
    }
}
