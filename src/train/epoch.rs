//! One epoch: its batches in a shuffled order (`Trainer::step_batch`), one optimizer step each
//! (`Trainer::step`), a step record every `log_every` steps (`Trainer::record_window`).

use super::control::Interrupt;
use super::optim::Optimizer;
use super::phase_run::PhaseRun;
use super::targets::TeacherTargets;
use super::window::{EpochLoss, EpochSums, Window};
use super::{RunError, Trainer};
use crate::data::augment;
use crate::distill::{self, StepLoss};
use crate::model::{features_named, Model};
use crate::protocol::{Event, Phase};
use crate::random;

use rand::{rngs::StdRng, seq::SliceRandom, SeedableRng};
use tch::Tensor;

/// What the distilled phase adds to a step: the teacher's targets (the method's head is the
/// phase's `head`).
#[derive(Clone, Copy)]
pub struct Distilling<'t, 'k> {
    pub targets: &'k TeacherTargets<'t>,
}

/// One step's examples: this rank's share of a global batch, drawn and augmented.
struct StepBatch {
    /// Rows of the training set.
    idx: Tensor,
    /// The view of each row that `x` holds, when the phase augments (`augment::View::index`).
    views: Option<Tensor>,
    x: Tensor,
    y: Tensor,
    /// Examples in the global batch (every rank's share).
    global: usize,
    /// This rank's share of the global batch, as its loss's weight.
    weight: f64,
    /// The learning rate of the step (the schedule at its place in the phase).
    lr: f64,
    /// How far the epoch's cursor moves on: the global batch size.
    stride: i64,
}

impl Trainer {
    /// One pass over the training data (from where a resumed epoch stopped); returns the mean
    /// training loss.
    pub(super) fn train_epoch(
        &mut self,
        run: &mut PhaseRun,
        model: &Model,
        opt: &mut Optimizer,
        distilling: Option<Distilling>,
    ) -> Result<EpochLoss, Interrupt> {
        let phase = run.phase;
        // An epoch's shuffling replays from (seed, phase, epoch) alone, each batch's dropout
        // from its place in the epoch: a resumed epoch draws exactly what it would have.
        let dropout_tag = format!("dropout/{}/{}", phase.as_str(), self.at.epoch);
        let order = self.shuffled_order(phase);
        let n = order.size()[0];
        let mut epoch = EpochSums::default();
        let mut window = Window::new();
        // A resumed epoch skips the examples it had already used (same order: same seed).
        let mut cursor = std::mem::take(&mut run.start_cursor) as i64;
        while cursor < n {
            run.epoch_cursor = cursor as usize;
            let paused_for = self.poll_commands(run, model, opt)?;
            tch::manual_seed(random::torch_seed(
                self.preset.seed,
                &dropout_tag,
                cursor as u64,
            ));
            window.started += paused_for;
            run.clock.paused(paused_for);
            let batch = self.step_batch(phase, &order, cursor);
            cursor += batch.stride;
            if cursor < n {
                // Rows decoded from files (a large image folder) are decoded while this trains.
                let next = || self.batch_rows(phase, &order, cursor).0;
                self.data.train.features.will_read(next);
            }
            self.step(run, model, opt, distilling, &batch, &mut window)?;
            if window.steps >= self.preset.log_every || cursor >= n {
                self.record_window(run, &window, batch.lr, &mut epoch)?;
                window = Window::new();
            }
        }
        // All of the epoch's examples are used: a checkpoint from here resumes at its evaluation.
        run.epoch_cursor = n as usize;
        Ok(epoch.means())
    }

    /// The training examples' order in this epoch, on the device.
    fn shuffled_order(&self, phase: Phase) -> Tensor {
        let mut order: Vec<i64> = (0..self.data.train.len() as i64).collect();
        order.shuffle(&mut StdRng::seed_from_u64(random::derive(
            self.preset.seed,
            &format!("shuffle/{}", phase.as_str()),
            self.at.epoch as u64,
        )));
        Tensor::from_slice(&order).to_device(self.device)
    }

    /// This rank's rows of the batch at `cursor` of the epoch's `order`, with the global
    /// batch's size, this rank's weight in it, and the batch size the cursor moves on by.
    fn batch_rows(&self, phase: Phase, order: &Tensor, cursor: i64) -> (Tensor, i64, f64, i64) {
        let n = order.size()[0];
        // With several ranks the global batch is batch_size per rank; each takes its share.
        let batch = (self.net_config(phase).batch_size * self.world_size()) as i64;
        let global = batch.min(n - cursor);
        // A rank left without examples by a last, small batch runs one with weight 0, so
        // that every rank adds gradients and losses of the same shapes.
        let (share, weight) = match self.batch_share(global as usize) {
            share if share.is_empty() => (global as usize - 1..global as usize, 0.0),
            share => (share.clone(), share.len() as f64 / global as f64),
        };
        let idx = order.narrow(0, cursor + share.start as i64, share.len() as i64);
        (idx, global, weight, batch)
    }

    /// The batch at `cursor` of the epoch's `order`: this rank's share, augmented if the phase
    /// is, with the step's learning rate.
    fn step_batch(&self, phase: Phase, order: &Tensor, cursor: i64) -> StepBatch {
        let n = order.size()[0];
        let cfg = self.net_config(phase);
        let augment = cfg.augment;
        // Progress through the phase's (live-editable) epochs, for the schedule.
        let progress =
            (self.at.epoch as f64 - 1.0 + cursor as f64 / n as f64) / cfg.epochs.max(1) as f64;
        let lr = cfg.lr * cfg.schedule.factor(progress);
        let (idx, global, weight, batch) = self.batch_rows(phase, order, cursor);
        let mut x = self.data.train.features.rows(&idx);
        let mut views = None;
        if !augment.is_none() {
            // Seeded by the batch's place in the epoch: a resumed epoch draws the same.
            let mut rng = StdRng::seed_from_u64(random::derive(
                self.preset.seed,
                &format!("augment/{}/{}", phase.as_str(), self.at.epoch),
                cursor as u64,
            ));
            let drawn = augment::apply_drawn(&x, &self.data.input, &augment, &mut rng);
            (x, views) = (drawn.0, Some(drawn.1));
        }
        let y = self.data.train.labels.index_select(0, &idx);
        StepBatch {
            idx,
            views,
            x,
            y,
            global: global as usize,
            weight,
            lr,
            stride: batch,
        }
    }

    /// The step seam: this batch's gradients, then the update; the loss goes into `window`.
    /// With several ranks, each weights its loss by its share of the global batch and the
    /// gradients are summed between backward and step: the step of one process with the global
    /// batch.
    fn step(
        &mut self,
        run: &mut PhaseRun,
        model: &Model,
        opt: &mut Optimizer,
        distilling: Option<Distilling>,
        batch: &StepBatch,
        window: &mut Window,
    ) -> Result<(), Interrupt> {
        opt.set_lr(batch.lr);
        opt.zero_grad();
        if let Some(r) = run.head.as_mut().map(|h| &mut h.opt) {
            r.set_lr(batch.lr);
            r.zero_grad();
        }
        let loss = match &distilling {
            Some(d) => self.distilled_loss(run, model, d, batch),
            None => StepLoss::Parts(distill::plain_parts(
                &model.net.forward_t(&batch.x, true),
                &batch.y,
            )),
        };
        let objective = loss.objective();
        if self.parallel.is_none() {
            objective.backward();
            window.add(&loss, &objective, batch.global);
        } else {
            (&objective * batch.weight).backward();
            let grads = opt.grads();
            let grads: Vec<Tensor> = match run.head.as_ref() {
                Some(h) => grads.into_iter().chain(h.opt.grads()).collect(),
                None => grads,
            };
            let summed = match self.all_reduce_step(&grads, &loss.values(batch.weight)) {
                Ok(summed) => summed,
                Err(e) => {
                    // The weights are as they were before this step: a clean checkpoint.
                    self.checkpoint(run, model, opt);
                    return Err(e);
                }
            };
            // Summed over the ranks: the total, then each part in `names` order.
            let (total, parts) = summed.split_first().expect("the total comes first");
            let named = loss.names().into_iter().zip(parts.iter().copied());
            window.add_host(*total, named, batch.global);
        }
        if run.loss_reference.is_none() {
            let floor = (self.data.num_classes as f64).ln();
            run.loss_reference = Some(window.means().0.max(floor));
        }
        opt.step();
        if let Some(r) = run.head.as_mut().map(|h| &mut h.opt) {
            r.step();
        }
        self.at.step += 1;
        self.beat_step(batch.x.size()[0] as usize);
        if self.at.step == 3 && crate::fault::injected("trainer-panic") {
            panic!("injected fault: trainer-panic");
        }
        Ok(())
    }

    /// Records the window's step metrics (learning rate `lr`) and adds them to the epoch's;
    /// a loss that is not finite, or `diverge_factor` times the reference, fails the phase.
    fn record_window(
        &mut self,
        run: &PhaseRun,
        window: &Window,
        lr: f64,
        epoch: &mut EpochSums,
    ) -> Result<(), Interrupt> {
        let (mean, parts) = window.means();
        let factor = self.preset.diverge_factor;
        let reference = run.loss_reference.unwrap_or(f64::INFINITY);
        if !mean.is_finite() || (factor > 0.0 && mean > factor * reference) {
            // Nothing after this step is worth keeping: no record, no checkpoint.
            return Err(Interrupt::Fail(RunError::Diverged {
                phase: run.phase,
                epoch: self.at.epoch,
                step: self.at.step,
                loss: mean,
            }));
        }
        let samples_per_sec = window.samples_per_sec();
        epoch.add(mean, &parts, window.steps);
        self.emit_step(Event::Step {
            loss: mean,
            lr,
            samples_per_sec,
            parts,
        });
        Ok(())
    }

    /// The distillation method's loss for one batch, with its layers' outputs when it asks
    /// (each pair through the method's head when the phase has one).
    fn distilled_loss(
        &self,
        run: &PhaseRun,
        model: &Model,
        d: &Distilling,
        StepBatch {
            idx, views, x, y, ..
        }: &StepBatch,
    ) -> StepLoss {
        let method = &run.method;
        let epoch = self.at.epoch;
        let (student, teacher, layers) = match method.feature_layers(epoch) {
            Some(names) => {
                let (student, features) = model.net.forward_features(x, true);
                let (teacher, guided) =
                    d.targets
                        .for_batch(idx, views.as_ref(), x, &names.teacher());
                let pairs = features_named(&features, &names.student())
                    .into_iter()
                    .zip(guided)
                    .map(|(s, t)| match run.head.as_ref() {
                        Some(kit) => kit.head.map(&s, &t, idx),
                        None => (s, t),
                    })
                    .map(|(student, teacher)| distill::LayerOutputs { student, teacher })
                    .collect();
                (student, teacher, pairs)
            }
            None => {
                let (teacher, _) = d.targets.for_batch(idx, views.as_ref(), x, &[]);
                (model.net.forward_t(x, true), teacher, Vec::new())
            }
        };
        method.step_loss(&distill::Batch {
            student: &student,
            teacher: &teacher,
            labels: y,
            epoch,
            layers,
        })
    }
}
