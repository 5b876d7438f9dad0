//! The step loop of one epoch: shuffled batches, augmentation, the loss of the phase, one
//! optimizer step each, step metrics every `log_every` steps.

use super::control::Interrupt;
use super::Trainer;
use crate::data::augment;
use crate::distill;
use crate::model::Model;
use crate::protocol::{Event, LogLevel, Phase};
use crate::run::summary::TeacherOutputs;
use crate::seed;
use rand::{rngs::StdRng, seq::SliceRandom, SeedableRng};
use std::time::Instant;
use tch::{nn, Kind, Tensor};

/// The teacher's outputs the distilled student learns from.
pub enum TeacherTargets<'a> {
    /// Logits over the whole training set, computed once (the student's inputs are not
    /// augmented, so the teacher's view of an example never changes).
    Cached(Tensor),
    /// The teacher runs on each (augmented) batch, so it sees what the student sees.
    PerBatch(&'a Model),
}

impl TeacherTargets<'_> {
    /// Teacher logits for the batch of training examples `idx`, whose inputs are `x`.
    fn for_batch(&self, idx: &Tensor, x: &Tensor) -> Tensor {
        match self {
            TeacherTargets::Cached(logits) => logits.index_select(0, idx),
            TeacherTargets::PerBatch(teacher) => teacher.logits(x),
        }
    }

    pub fn kind(&self) -> TeacherOutputs {
        match self {
            TeacherTargets::Cached(_) => TeacherOutputs::Cached,
            TeacherTargets::PerBatch(_) => TeacherOutputs::PerBatch,
        }
    }
}

impl Trainer {
    /// One pass over the training data; returns the mean training loss.
    pub(super) fn train_epoch(
        &mut self,
        phase: Phase,
        model: &Model,
        opt: &mut nn::Optimizer,
        targets: Option<&TeacherTargets>,
        start_cursor: usize,
    ) -> Result<f64, Interrupt> {
        let s = self.preset.seed;
        let tag = phase.as_str();
        // Per-epoch seeds: an epoch's shuffling and dropout replay from (seed, phase, epoch) alone.
        tch::manual_seed(seed::torch_seed(
            s,
            &format!("dropout/{tag}"),
            self.at.epoch as u64,
        ));
        let mut order: Vec<i64> = (0..self.data.train.len() as i64).collect();
        order.shuffle(&mut StdRng::seed_from_u64(seed::derive(
            s,
            &format!("shuffle/{tag}"),
            self.at.epoch as u64,
        )));
        let order = Tensor::from_slice(&order).to_device(self.device);
        let n = order.size()[0];
        let (mut epoch_loss, mut epoch_batches) = (0.0, 0usize);
        let mut window_loss = Tensor::zeros([], (Kind::Float, self.device));
        let (mut window_steps, mut window_samples, mut window_start) =
            (0usize, 0usize, Instant::now());
        // A resumed epoch skips the examples it had already used (same order: same seed).
        let mut cursor = start_cursor as i64;
        while cursor < n {
            self.epoch_cursor = cursor as usize;
            let paused_for = self.poll_commands(phase, model)?;
            window_start += paused_for;
            self.paused_total += paused_for;
            let cfg = self.net_config(phase);
            let (lr, batch, augment) = (cfg.lr, cfg.batch_size as i64, cfg.augment);
            opt.set_lr(lr);
            let idx = order.narrow(0, cursor, batch.min(n - cursor));
            let mut x = self.data.train.features.index_select(0, &idx);
            if !augment.is_none() {
                // Seeded by the batch's place in the epoch: a resumed epoch draws the same.
                let mut rng = StdRng::seed_from_u64(seed::derive(
                    s,
                    &format!("augment/{tag}/{}", self.at.epoch),
                    cursor as u64,
                ));
                x = augment::apply(&x, &self.data.input, &augment, &mut rng);
            }
            cursor += batch;
            let y = self.data.train.labels.index_select(0, &idx);
            let logits = model.net.forward_t(&x, true);
            let loss = match targets {
                Some(t) => distill::from_config(&self.preset.distill).loss(
                    &logits,
                    &t.for_batch(&idx, &x),
                    &y,
                ),
                None => distill::cross_entropy(&logits, &y),
            };
            opt.backward_step(&loss);
            // Summed on the device; read back only when logging, to avoid a sync every step.
            window_loss += loss.detach();
            window_steps += 1;
            window_samples += idx.size()[0] as usize;
            self.at.step += 1;
            if self.at.step == 3 && crate::fault::injected("trainer-panic") {
                panic!("injected fault: trainer-panic");
            }
            if window_steps >= self.preset.log_every || cursor >= n {
                let mean = window_loss.double_value(&[]) / window_steps as f64;
                if !mean.is_finite() {
                    self.log(
                        LogLevel::Warn,
                        format!(
                            "{tag} loss is {mean} at step {}; try a lower lr",
                            self.at.step
                        ),
                    );
                }
                let samples_per_sec =
                    window_samples as f64 / window_start.elapsed().as_secs_f64().max(1e-9);
                self.emit_step(Event::Step {
                    loss: mean,
                    lr,
                    samples_per_sec,
                });
                epoch_loss += mean * window_steps as f64;
                epoch_batches += window_steps;
                window_loss = Tensor::zeros([], (Kind::Float, self.device));
                (window_steps, window_samples, window_start) = (0, 0, Instant::now());
            }
        }
        Ok(epoch_loss / epoch_batches.max(1) as f64)
    }
}
