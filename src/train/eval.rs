//! Scoring a model: accuracy and loss on a split, and inference latency.

use super::{RunError, Trainer};
use crate::collective::World;
use crate::data::{FeatureRows, Split};
use crate::distill;
use crate::model::Model;
use crate::protocol::stats::PairedTest;
use crate::protocol::summary::Latency;
use crate::protocol::Phase;
use std::time::{Duration, Instant};
use tch::{Device, Tensor};

/// Examples per forward pass when scoring a whole split, at most: bounds memory for large
/// models (and `FeatureRows::chunk_rows` for large inputs).
const EVAL_CHUNK: i64 = 1024;

/// Accuracy and loss of a model on a split.
pub struct Evaluation {
    pub acc: f64,
    pub loss: f64,
    /// `None` for a class the split does not hold.
    pub per_class: Vec<Option<f64>>,
}

/// The model's logits (evaluation mode) over `xs`, in chunks of bounded memory. With several
/// ranks each computes its shard of the rows and all get the whole: every example once in all.
pub fn logits_in_chunks(model: &Model, xs: &FeatureRows, world: Option<&World>) -> Tensor {
    logits_reporting(model, xs, world, &mut |_, _| {})
}

/// `logits_in_chunks`, telling `done(examples, total)` after each chunk (a rank's share of its
/// shard, scaled to the whole).
pub fn logits_reporting(
    model: &Model,
    xs: &FeatureRows,
    world: Option<&World>,
    done: &mut dyn FnMut(usize, usize),
) -> Tensor {
    logits_of_rows(
        model,
        xs.len() as usize,
        xs.chunk_rows(EVAL_CHUNK),
        world,
        &mut |s, l| xs.narrow(s, l),
        done,
    )
}

/// The model's logits over `n` inputs, `rows(start, len)` making those from `start` on, `chunk`
/// at a time: as `logits_reporting` (shards, progress), for inputs made as they are needed.
pub fn logits_of_rows(
    model: &Model,
    n: usize,
    chunk: i64,
    world: Option<&World>,
    rows: &mut dyn FnMut(i64, i64) -> Tensor,
    done: &mut dyn FnMut(usize, usize),
) -> Tensor {
    World::map_rows(
        world,
        n,
        chunk,
        "logits",
        |start, len| model.logits(&rows(start, len)),
        done,
    )
}

pub fn evaluate(
    model: &Model,
    split: &Split,
    num_classes: usize,
    world: Option<&World>,
) -> Evaluation {
    let n = split.len() as i64;
    if n == 0 {
        return Evaluation {
            acc: f64::NAN,
            loss: f64::NAN,
            per_class: vec![None; num_classes],
        };
    }
    let logits = logits_in_chunks(model, &split.features, world);
    let y = &split.labels;
    let loss = distill::cross_entropy(&logits, y).double_value(&[]);
    let hits = logits.argmax(-1, false).eq_tensor(y);
    let correct: Vec<i64> = Vec::try_from(
        y.masked_select(&hits)
            .bincount::<Tensor>(None, num_classes as i64),
    )
    .unwrap_or_default();
    let totals: Vec<i64> =
        Vec::try_from(y.bincount::<Tensor>(None, num_classes as i64)).unwrap_or_default();
    let per_class = correct
        .iter()
        .zip(&totals)
        .map(|(&c, &t)| (t > 0).then(|| c as f64 / t as f64))
        .collect();
    Evaluation {
        acc: correct.iter().sum::<i64>() as f64 / n as f64,
        loss,
        per_class,
    }
}

/// Whether the model gets each example of the split right.
pub fn correct(model: &Model, split: &Split, world: Option<&World>) -> Vec<bool> {
    let hits = logits_in_chunks(model, &split.features, world)
        .argmax(-1, false)
        .eq_tensor(&split.labels);
    Vec::try_from(hits).unwrap_or_default()
}

impl Trainer {
    /// `evaluate` on one of this run's splits, over all ranks (batch-norm running statistics
    /// averaged over them first).
    pub(super) fn score(&self, model: &Model, split: &Split) -> Result<Evaluation, RunError> {
        self.sync_buffers(&model.vs)?;
        // A collective that fails inside the logits' gather panics (tch-style); caught here.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            evaluate(model, split, self.data.num_classes, self.world())
        }))
        .map_err(|panic| {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_else(|| "evaluation failed".into());
            RunError::Distributed(message.into())
        })
    }

    /// Baseline against distilled on the same test examples, from their reported weights in
    /// the run folder (so a resumed run compares phases trained in different processes).
    pub(super) fn paired_test(&self) -> Option<PairedTest> {
        let results = self.reported_results();
        let correct_of = |phase: Phase| {
            let result = results.iter().find(|r| r.phase == phase)?;
            let mut model = self.build(phase, self.device).ok()?;
            model.vs.load(self.run.path(&result.weights)).ok()?;
            Some(correct(&model, &self.data.test, self.world()))
        };
        let (baseline, distilled) = (correct_of(Phase::Baseline)?, correct_of(Phase::Distilled)?);
        (baseline.len() == self.data.test.len() && distilled.len() == baseline.len())
            .then(|| PairedTest::of(&baseline, &distilled))
    }
}

/// Median forward time at batch 1 and per example at a large batch.
pub fn measure_latency(model: &Model, test: &Split, device: Device) -> Latency {
    /// Median of up to `reps` timed calls after a warm-up; a slow model (a large CNN on a CPU)
    /// gets fewer calls, at least three, within about two seconds.
    fn median_us(mut f: impl FnMut(), device: Device, reps: usize) -> f64 {
        let sync = || {
            if let Device::Cuda(i) = device {
                tch::Cuda::synchronize(i as i64);
            }
        };
        let started = Instant::now();
        for _ in 0..reps.min(10) {
            f();
            if started.elapsed() > Duration::from_millis(500) {
                break;
            }
        }
        sync();
        let budget = Instant::now();
        let mut times = Vec::with_capacity(reps);
        while times.len() < reps && (times.len() < 3 || budget.elapsed() < Duration::from_secs(2)) {
            let t = Instant::now();
            f();
            sync();
            times.push(t.elapsed().as_secs_f64() * 1e6);
        }
        times.sort_by(f64::total_cmp);
        times[times.len() / 2]
    }
    let one = test.features.narrow(0, 1);
    // As many as a chunk of scoring takes: large images are not made floats a thousand at once.
    let batch_size = (test.len() as i64).min(test.features.chunk_rows(EVAL_CHUNK)) as usize;
    let many = test.features.narrow(0, batch_size as i64);
    // One example is served by one CPU thread: splitting a tiny matmul over threads only adds
    // wake-up latency, which on a busy machine swamps the figure.
    let threads = tch::get_num_threads();
    tch::set_num_threads(1);
    let batch1_us = median_us(|| drop(model.logits(&one)), device, 200);
    tch::set_num_threads(threads);
    let batch_us = median_us(|| drop(model.logits(&many)), device, 20);
    Latency {
        batch1_us,
        per_sample_us: batch_us / batch_size as f64,
        batch_size,
    }
}
