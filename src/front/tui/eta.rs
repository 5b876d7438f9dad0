//! The run's time left: the current phase's own estimate, then every phase still to come.
//!
//! A phase to come is predicted as its epochs × its steps per epoch (from the live preset, so
//! edits count, over the global batch of every rank) × a rate in seconds per step: the one
//! measured for the same network (the distilled student takes the baseline's), else the
//! current phase's. During the teacher phase the students are thus predicted at the teacher's
//! rate, which overestimates them when the teacher is the larger network; the estimate
//! tightens once the baseline has a measured rate.
//!
//! The distilled phase first runs the teacher over the training set (and over the guided
//! layer for a method on features). Until that pass reports, it is predicted as one pass over
//! the training set at a third of the teacher's measured step time per batch (a backward pass
//! costs about twice the forward); once it reports, its own rate counts, and with it the
//! views or the cache it found.

use super::app::App;
use crate::protocol::{Phase, Role};

impl App {
    /// Keeps the current phase's measured seconds per step for the phases to come of its role.
    pub(super) fn measure_rate(&mut self) {
        if let (Some(phase), Some(rate)) = (self.progress.phase, self.progress.seconds_per_step()) {
            self.step_seconds[phase.role().index()] = Some(rate);
        }
    }

    /// Seconds left in the whole run, once the current phase has a measured rate (or, before
    /// the distilled phase's first step, once the teacher's pass has one or can be predicted).
    pub fn run_eta_seconds(&self) -> Option<f64> {
        let current = self.progress.phase?;
        let preset = self.preset.as_ref()?;
        let rate =
            |role: Role| self.step_seconds[role.index()].or(self.progress.seconds_per_step());
        let world = self.world_size.max(1);
        let training = |phase: Phase, epochs: usize| {
            let net = preset.net(phase.role());
            let steps = epochs * self.train_examples.div_ceil(net.batch_size.max(1) * world);
            rate(phase.role()).unwrap_or(0.0) * steps as f64
        };
        // The teacher's forward pass per example, from its training steps.
        let forward = self.step_seconds[Role::Teacher.index()]
            .map(|step| step * FORWARD_SHARE / (preset.teacher.batch_size.max(1) * world) as f64);
        let on_features = preset.distill.method.on_features();
        let phase_left = match &self.progress.teacher_pass {
            Some(pass) => {
                let per_example = pass
                    .seconds_per_example(self.progress.wall_time)
                    .or(forward)?;
                // The guided layer's pass follows the logits' over the training set.
                let layer_to_come =
                    on_features && pass.layer.is_none() && !pass.source.from_cache();
                let examples = pass.total.saturating_sub(pass.done)
                    + usize::from(layer_to_come) * self.train_examples;
                let epochs = preset.net(current.role()).epochs;
                per_example * examples as f64
                    + training(current, epochs.saturating_sub(self.progress.epochs_done))
            }
            None => self.progress.eta_seconds()?,
        };
        let to_come: f64 = Phase::ALL[current.index() + 1..]
            .iter()
            .filter(|p| self.series[p.index()].result.is_none())
            .filter(|p| **p != Phase::Baseline || preset.student.trains_baseline())
            .map(|&p| {
                let passes = match p {
                    Phase::Distilled => 1 + usize::from(on_features),
                    _ => 0,
                };
                let pass = forward.unwrap_or(0.0) * (passes * self.train_examples) as f64;
                pass + training(p, preset.net(p.role()).epochs)
            })
            .sum();
        Some(phase_left + to_come)
    }
}

/// A training step's forward share: the backward pass costs about twice the forward.
const FORWARD_SHARE: f64 = 1.0 / 3.0;
