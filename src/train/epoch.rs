//! The step loop of one epoch: shuffled batches, augmentation, the loss of the phase, one
//! optimizer step each, step metrics every `log_every` steps.

use super::control::Interrupt;
use super::optim::Optimizer;
use super::targets::{feature, TeacherTargets};
use super::{RunError, Trainer};
use crate::data::augment;
use crate::distill::{self, StepLoss};
use crate::model::Model;
use crate::protocol::{Event, Phase};
use crate::random;

use rand::{rngs::StdRng, seq::SliceRandom, SeedableRng};
use std::collections::BTreeMap;
use std::time::Instant;
use tch::Tensor;

/// What the distilled phase adds to a step: the teacher's targets (`hint`'s regressor is the
/// trainer's `hint` while the phase runs).
#[derive(Clone, Copy)]
pub struct Distilling<'t, 'k> {
    pub targets: &'k TeacherTargets<'t>,
}

/// Mean training loss of an epoch, in total and per part.
pub struct EpochLoss {
    pub total: f64,
    pub parts: BTreeMap<String, f64>,
}

/// A running sum of losses: autograd ones stay on the device (read back only when logging, so
/// training does not wait on a device sync every step), fused ones are already on the host.
#[derive(Default)]
struct Sum {
    device: Option<Tensor>,
    host: f64,
}

impl Sum {
    fn add(&mut self, value: &Tensor) {
        let value = value.detach();
        self.device = Some(match self.device.take() {
            Some(sum) => sum + value,
            None => value,
        });
    }

    fn value(&self) -> f64 {
        self.host + self.device.as_ref().map_or(0.0, |t| t.double_value(&[]))
    }
}

/// Losses summed between two step records.
struct Window {
    total: Sum,
    parts: BTreeMap<&'static str, (Sum, usize)>,
    steps: usize,
    samples: usize,
    started: Instant,
}

impl Window {
    fn new() -> Window {
        Window {
            total: Sum::default(),
            parts: BTreeMap::new(),
            steps: 0,
            samples: 0,
            started: Instant::now(),
        }
    }

    /// Adds a step's loss (`objective` is its trained tensor).
    fn add(&mut self, loss: &StepLoss, objective: &Tensor, samples: usize) {
        match loss {
            StepLoss::Parts(parts) => {
                self.total.add(objective);
                for p in parts {
                    let (sum, n) = self.parts.entry(p.name).or_default();
                    sum.add(&p.value);
                    *n += 1;
                }
                self.steps += 1;
                self.samples += samples;
            }
            StepLoss::Fused { parts, .. } => {
                let total = parts.iter().map(|(_, weight, value)| weight * value).sum();
                self.add_host(total, parts.iter().map(|p| (p.0, p.2)), samples);
            }
        }
    }

    /// Adds a step's loss known on the host: its total and each named part's value.
    fn add_host(
        &mut self,
        total: f64,
        parts: impl IntoIterator<Item = (&'static str, f64)>,
        samples: usize,
    ) {
        self.total.host += total;
        for (name, value) in parts {
            let (sum, n) = self.parts.entry(name).or_default();
            sum.host += value;
            *n += 1;
        }
        self.steps += 1;
        self.samples += samples;
    }

    /// Mean loss and mean of each part over the window.
    fn means(&self) -> (f64, BTreeMap<String, f64>) {
        let parts = self
            .parts
            .iter()
            .map(|(name, (sum, n))| (name.to_string(), sum.value() / *n as f64))
            .collect();
        (self.total.value() / self.steps.max(1) as f64, parts)
    }
}

impl Trainer {
    /// One pass over the training data; returns the mean training loss.
    pub(super) fn train_epoch(
        &mut self,
        phase: Phase,
        model: &Model,
        opt: &mut Optimizer,
        distilling: Option<Distilling>,
        start_cursor: usize,
    ) -> Result<EpochLoss, Interrupt> {
        let s = self.preset.seed;
        let tag = phase.as_str();
        // An epoch's shuffling replays from (seed, phase, epoch) alone, each batch's dropout
        // from its place in the epoch: a resumed epoch draws exactly what it would have.
        let dropout_tag = format!("dropout/{tag}/{}", self.at.epoch);
        let mut order: Vec<i64> = (0..self.data.train.len() as i64).collect();
        order.shuffle(&mut StdRng::seed_from_u64(random::derive(
            s,
            &format!("shuffle/{tag}"),
            self.at.epoch as u64,
        )));
        let order = Tensor::from_slice(&order).to_device(self.device);
        let n = order.size()[0];
        let mut epoch_sums: BTreeMap<String, (f64, usize)> = BTreeMap::new();
        let (mut epoch_loss, mut epoch_batches) = (0.0, 0usize);
        let mut window = Window::new();
        // A resumed epoch skips the examples it had already used (same order: same seed).
        let mut cursor = start_cursor as i64;
        while cursor < n {
            self.epoch_cursor = cursor as usize;
            let paused_for = self.poll_commands(phase, model, opt)?;
            tch::manual_seed(random::torch_seed(s, &dropout_tag, cursor as u64));
            window.started += paused_for;
            self.paused_total += paused_for;
            let cfg = self.net_config(phase);
            // With several ranks the global batch is batch_size per rank; each takes its share.
            let (batch, augment) = ((cfg.batch_size * self.world_size()) as i64, cfg.augment);
            // Progress through the phase's (live-editable) epochs, for the schedule.
            let progress =
                (self.at.epoch as f64 - 1.0 + cursor as f64 / n as f64) / cfg.epochs.max(1) as f64;
            let lr = cfg.lr * cfg.schedule.factor(progress);
            let global = batch.min(n - cursor);
            // A rank left without examples by a last, small batch runs one with weight 0, so
            // that every rank adds gradients and losses of the same shapes.
            let (share, weight) = match self.batch_share(global as usize) {
                share if share.is_empty() => (global as usize - 1..global as usize, 0.0),
                share => (share.clone(), share.len() as f64 / global as f64),
            };
            let idx = order.narrow(0, cursor + share.start as i64, share.len() as i64);
            let mut x = self.data.train.features.index_select(0, &idx);
            if !augment.is_none() {
                // Seeded by the batch's place in the epoch: a resumed epoch draws the same.
                let mut rng = StdRng::seed_from_u64(random::derive(
                    s,
                    &format!("augment/{tag}/{}", self.at.epoch),
                    cursor as u64,
                ));
                x = augment::apply(&x, &self.data.input, &augment, &mut rng);
            }
            cursor += batch;
            let y = self.data.train.labels.index_select(0, &idx);
            // The step seam: this batch's gradients, then the update. With several ranks, each
            // weights its loss by its share of the global batch and the gradients are summed
            // between backward and step: the step of one process with the global batch.
            opt.set_lr(lr);
            opt.zero_grad();
            if let Some(r) = self.hint.as_mut().map(|h| &mut h.opt) {
                r.set_lr(lr);
                r.zero_grad();
            }
            let loss = match &distilling {
                Some(d) => self.distilled_loss(model, d, &idx, &x, &y),
                None => StepLoss::Parts(distill::plain_parts(&model.net.forward_t(&x, true), &y)),
            };
            let objective = loss.objective();
            if self.parallel.is_none() {
                objective.backward();
                window.add(&loss, &objective, global as usize);
            } else {
                (&objective * weight).backward();
                let grads = opt.grads();
                let grads: Vec<Tensor> = match self.hint.as_ref() {
                    Some(h) => grads.into_iter().chain(h.opt.grads()).collect(),
                    None => grads,
                };
                let summed = match self.all_reduce_step(&grads, &loss.values(weight)) {
                    Ok(summed) => summed,
                    Err(e) => {
                        // The weights are as they were before this step: a clean checkpoint.
                        self.checkpoint(phase, model, opt);
                        return Err(e);
                    }
                };
                // Summed over the ranks: the total, then each part in `names` order.
                let (total, parts) = summed.split_first().expect("the total comes first");
                let named = loss.names().into_iter().zip(parts.iter().copied());
                window.add_host(*total, named, global as usize);
            }
            if self.loss_reference.is_none() {
                let floor = (self.data.num_classes as f64).ln();
                self.loss_reference = Some(window.means().0.max(floor));
            }
            let regressor_opt = self.hint.as_mut().map(|h| &mut h.opt);
            opt.step();
            if let Some(r) = regressor_opt {
                r.step();
            }
            self.at.step += 1;
            if self.at.step == 3 && crate::fault::injected("trainer-panic") {
                panic!("injected fault: trainer-panic");
            }
            if window.steps >= self.preset.log_every || cursor >= n {
                let (mean, parts) = window.means();
                let factor = self.preset.diverge_factor;
                let reference = self.loss_reference.unwrap_or(f64::INFINITY);
                if !mean.is_finite() || (factor > 0.0 && mean > factor * reference) {
                    // Nothing after this step is worth keeping: no record, no checkpoint.
                    return Err(Interrupt::Fail(RunError::Diverged {
                        phase,
                        epoch: self.at.epoch,
                        step: self.at.step,
                        loss: mean,
                    }));
                }
                let samples_per_sec =
                    window.samples as f64 / window.started.elapsed().as_secs_f64().max(1e-9);
                for (name, value) in &parts {
                    let e = epoch_sums.entry(name.clone()).or_insert((0.0, 0));
                    *e = (e.0 + value * window.steps as f64, e.1 + window.steps);
                }
                epoch_loss += mean * window.steps as f64;
                epoch_batches += window.steps;
                self.emit_step(Event::Step {
                    loss: mean,
                    lr,
                    samples_per_sec,
                    parts,
                });
                window = Window::new();
            }
        }
        // All of the epoch's examples are used: a checkpoint from here resumes at its evaluation.
        self.epoch_cursor = n as usize;
        Ok(EpochLoss {
            total: epoch_loss / epoch_batches.max(1) as f64,
            parts: epoch_sums
                .into_iter()
                .map(|(k, (sum, n))| (k, sum / n.max(1) as f64))
                .collect(),
        })
    }

    /// The distillation method's loss for one batch, with the hint layers when it asks.
    fn distilled_loss(
        &self,
        model: &Model,
        d: &Distilling,
        idx: &Tensor,
        x: &Tensor,
        labels: &Tensor,
    ) -> StepLoss {
        let method = distill::build(&self.preset.distill);
        let epoch = self.at.epoch;
        let layers = method.hint_layers(epoch).zip(self.hint.as_ref());
        let (student, teacher, hint) = match layers {
            Some(((teacher_layer, student_layer), kit)) => {
                let (student, features) = model.net.forward_features(x, true);
                let (teacher, guided) = d.targets.for_batch(idx, x, Some(teacher_layer));
                let mapped = kit.regressor.apply(&feature(features, student_layer));
                let guided = kit
                    .regressor
                    .target(&guided.expect("asked for the guided layer"));
                (student, teacher, Some((mapped, guided)))
            }
            None => {
                let (teacher, _) = d.targets.for_batch(idx, x, None);
                (model.net.forward_t(x, true), teacher, None)
            }
        };
        method.step_loss(&distill::Batch {
            student: &student,
            teacher: &teacher,
            labels,
            epoch,
            hint,
        })
    }
}
