//! What the distilled student learns from: the teacher's logits (and, for a method on features
//! such as `hint`, the outputs of the teacher layers it names: the guided layers), computed once
//! over the training set in chunks of bounded memory and kept in an on-disk cache. When the student's inputs are augmented the teacher must see the augmented
//! view: its logits are computed once over every view of the training set (`augment::View`) and
//! looked up by the view each example drew, or, where those do not fit or the method needs the
//! guided layers, computed on every batch.

use super::cache::{CacheMismatch, TeacherCache};
use super::eval::{logits_of_rows, logits_reporting};
use crate::collective::World;
use crate::config::Augment;
use crate::data::augment::{self, View};
use crate::data::FeatureRows;
use crate::distill::Head;
use crate::model::{features_named, Model};
use crate::protocol::summary::TeacherOutputs;
use crate::protocol::InputShape;
use tch::Tensor;

/// Cached guided-layer outputs over the training set (all layers together) are kept in memory
/// up to this size;
/// beyond it the teacher runs on every batch.
const FEATURE_CACHE_BYTES: i64 = 1 << 30;
/// The teacher's logits over every view of the training set are kept up to this size; beyond
/// it the teacher runs on every batch.
pub const VIEWS_BYTES: usize = 1 << 30;
/// Examples per teacher forward pass when computing outputs over the training set.
pub const CHUNK: i64 = 1024;

/// How the teacher's targets are obtained.
#[derive(Clone, Debug, PartialEq)]
pub enum Plan {
    /// Once over the training set as it is (the student's inputs are not augmented).
    Once,
    /// Once over each of `views` views of the training set (images of `input`).
    Views {
        augment: Augment,
        input: InputShape,
        views: usize,
    },
    /// On every batch.
    PerBatch,
}

impl Plan {
    /// For a student augmented by `augment` over `rows` training examples of `classes`
    /// classes; `guided`: the method needs the teacher's guided layer (kept per batch when
    /// augmented).
    pub fn new(
        augment: &Augment,
        input: &InputShape,
        guided: bool,
        rows: usize,
        classes: usize,
    ) -> Plan {
        if augment.is_none() {
            return Plan::Once;
        }
        let views = augment::count(augment);
        let bytes = views
            .saturating_mul(rows)
            .saturating_mul(classes)
            .saturating_mul(4);
        match guided || bytes > VIEWS_BYTES || input.dims().len() != 3 {
            true => Plan::PerBatch,
            false => Plan::Views {
                augment: *augment,
                input: input.clone(),
                views,
            },
        }
    }

    /// Rows of the logits computed once over `n` training examples (`None`: per batch).
    pub fn rows(&self, n: usize) -> Option<usize> {
        match self {
            Plan::Once => Some(n),
            Plan::Views { views, .. } => Some(views * n),
            Plan::PerBatch => None,
        }
    }
}

enum Source {
    /// Over the whole training set, in training-set order.
    Cached {
        logits: Tensor,
        /// Each guided layer's outputs (none when the method has none).
        guided: Vec<Tensor>,
    },
    /// Over every view of the training set: view `v` of example `i` at row `v * rows + i`.
    Views {
        logits: Tensor,
        rows: i64,
    },
    PerBatch,
}

/// The method's trainable head (`hint`'s regressor, `crd`'s heads and banks) and its optimizer.
pub struct HeadKit {
    pub head: Head,
    pub opt: super::optim::Optimizer,
}

pub struct TeacherTargets<'a> {
    teacher: &'a Model,
    source: Source,
    /// How the logits were obtained, for the summary.
    pub outputs: TeacherOutputs,
    /// Why a cached file was found and not used (recomputed instead), for the log.
    pub cache_rejected: Option<String>,
}

/// Told `(done, total, source, layer)` as a pass over the training set goes: the logits'
/// (`layer` `None`), then the guided layers' (`layer` their names).
pub type Progress<'p> = dyn FnMut(usize, usize, TeacherOutputs, Option<&str>) + 'p;

/// Where the logits computed once come from: the cache, or a pass whose progress is told.
struct Once<'c, 'p> {
    cache: Option<&'c TeacherCache>,
    world: Option<&'c World>,
    progress: &'p mut Progress<'p>,
    /// Why a cached file was found and not used.
    rejected: Option<String>,
}

impl Once<'_, '_> {
    /// The `total` rows of logits, from the cache when every rank has them (`cached` said),
    /// else from `compute(done)` (`computed` said), then cached.
    fn logits(
        &mut self,
        teacher: &Model,
        total: usize,
        [computed, cached_as]: [TeacherOutputs; 2],
        compute: impl FnOnce(&mut dyn FnMut(usize, usize)) -> Tensor,
    ) -> (Tensor, TeacherOutputs) {
        let mut cached = self.cache.and_then(|c| match c.read() {
            Ok(logits) => Some(logits),
            Err(CacheMismatch::Missing(_)) => None,
            Err(why) => {
                self.rejected = Some(format!(
                    "teacher-output cache {} not used: {why}; recomputing the teacher's outputs",
                    c.path().display()
                ));
                None
            }
        });
        if let Some(w) = self.world {
            // The ranks use the cache only if every one of them has it (one file per machine).
            // On the teacher's device: NCCL sums CUDA tensors only.
            let mut have = Tensor::from_slice(&[f32::from(u8::from(cached.is_some()))])
                .to_device(teacher.vs.device());
            w.group
                .all_reduce_sum(&mut have)
                .unwrap_or_else(|e| panic!("rank {}: agreeing on the teacher cache: {e}", w.rank));
            if have.double_value(&[0]) < w.size as f64 {
                cached = None;
            }
        }
        let progress = &mut *self.progress;
        if let Some(logits) = cached {
            progress(total, total, cached_as, None);
            return (logits.to_device(teacher.vs.device()), cached_as);
        }
        progress(0, total, computed, None);
        // Each rank computes its shard, and all get the whole.
        let logits = compute(&mut |done, total| progress(done, total, computed, None));
        if let Some(cache) = self
            .cache
            .filter(|_| self.world.is_none_or(World::is_leader))
        {
            cache.write(&logits);
        }
        (logits, computed)
    }
}

impl<'a> TeacherTargets<'a> {
    /// As `plan` says, over `train` (the logits from `cache` when it has them, which holds
    /// `plan.rows()` of them), telling `progress(done, total, source, layer)` as it goes.
    pub fn new(
        teacher: &'a Model,
        train: &FeatureRows,
        plan: Plan,
        guided_layers: &[&str],
        cache: Option<&TeacherCache>,
        world: Option<&World>,
        progress: &mut Progress,
    ) -> TeacherTargets<'a> {
        let per_batch = |cache_rejected| TeacherTargets {
            teacher,
            source: Source::PerBatch,
            outputs: TeacherOutputs::PerBatch,
            cache_rejected,
        };
        let mut once = Once {
            cache,
            world,
            progress,
            rejected: None,
        };
        let n = train.len();
        let (source, outputs) = match plan {
            Plan::PerBatch => return per_batch(None),
            Plan::Views {
                augment,
                input,
                views,
            } => {
                let said =
                    [false, true].map(|from_cache| TeacherOutputs::Views { views, from_cache });
                let (logits, outputs) = once.logits(teacher, views * n as usize, said, |done| {
                    let mut rows = |start, len| view_rows(train, &input, &augment, start, len);
                    let chunk = train.chunk_rows(CHUNK);
                    logits_of_rows(teacher, views * n as usize, chunk, world, &mut rows, done)
                });
                (Source::Views { logits, rows: n }, outputs)
            }
            Plan::Once => {
                let said = [TeacherOutputs::Computed, TeacherOutputs::FromCache];
                let (logits, outputs) = once.logits(teacher, n as usize, said, |done| {
                    logits_reporting(teacher, train, world, done)
                });
                let guided = match guided_layers {
                    [] => Vec::new(),
                    layers => {
                        match guided_outputs(teacher, train, layers, world, &mut *once.progress) {
                            Some(guided) => guided,
                            // Too large to keep: the teacher runs per batch after all.
                            None => return per_batch(once.rejected),
                        }
                    }
                };
                (Source::Cached { logits, guided }, outputs)
            }
        };
        TeacherTargets {
            teacher,
            source,
            outputs,
            cache_rejected: once.rejected,
        }
    }

    /// Teacher logits for the training examples `idx` (inputs `x`, augmented into the views
    /// `views` when the student's inputs are), and the outputs of the guided layers that
    /// `guided` names (none when it names none).
    pub fn for_batch(
        &self,
        idx: &Tensor,
        views: Option<&Tensor>,
        x: &Tensor,
        guided: &[&str],
    ) -> (Tensor, Vec<Tensor>) {
        match &self.source {
            Source::Cached { logits, guided: g } => (
                logits.index_select(0, idx),
                match guided {
                    [] => Vec::new(),
                    _ => g.iter().map(|g| g.index_select(0, idx)).collect(),
                },
            ),
            Source::Views { logits, rows } => {
                let views = views.expect("an augmented batch says which views it drew");
                (logits.index_select(0, &(views * *rows + idx)), Vec::new())
            }
            Source::PerBatch => tch::no_grad(|| match guided {
                [] => (self.teacher.net.forward_t(x, false), Vec::new()),
                layers => {
                    let (logits, features) = self.teacher.net.forward_features(x, false);
                    (logits, features_named(&features, layers))
                }
            }),
        }
    }
}

/// Rows `start..start + len` of every view of `train` one after another (view `v` of example
/// `i` is row `v * n + i`): the examples in each view the rows cross.
fn view_rows(
    train: &FeatureRows,
    input: &InputShape,
    augment: &Augment,
    start: i64,
    len: i64,
) -> Tensor {
    let n = train.len();
    let (mut at, end) = (start, start + len);
    let mut parts = Vec::new();
    while at < end {
        let (view, i) = (at / n, at % n);
        let take = (end - at).min(n - i);
        let view = View::at(view as usize, augment);
        parts.push(augment::apply_view(
            &train.narrow(i, take),
            input,
            augment,
            view,
        ));
        at += take;
    }
    match parts.len() {
        0 => train.narrow(0, 0),
        _ => Tensor::cat(&parts, 0),
    }
}

/// The guided layers' outputs over the training set, in the order of `layers`, or `None` if
/// they would not fit the budget, telling `progress` as it goes (one pass as long as the
/// logits', for every layer).
fn guided_outputs(
    teacher: &Model,
    train: &FeatureRows,
    layers: &[&str],
    world: Option<&World>,
    progress: &mut Progress,
) -> Option<Vec<Tensor>> {
    let outputs = |x: &Tensor| {
        tch::no_grad(|| features_named(&teacher.net.forward_features(x, false).1, layers))
    };
    let shapes: Vec<Vec<i64>> = outputs(&train.narrow(0, 1))
        .iter()
        .map(|f| f.size()[1..].to_vec())
        .collect();
    let widths: Vec<i64> = shapes.iter().map(|s| s.iter().product()).collect();
    if widths.iter().sum::<i64>() * 4 * train.len() > FEATURE_CACHE_BYTES {
        return None;
    }
    // One row per example, the layers' outputs flattened side by side: one pass for them all.
    let rows = |start, len| {
        let flat: Vec<Tensor> = outputs(&train.narrow(start, len))
            .iter()
            .map(|f| f.flatten(1, -1))
            .collect();
        Tensor::cat(&flat, 1)
    };
    let name = layers.join(", ");
    let mut done = |rows, n| progress(rows, n, TeacherOutputs::Computed, Some(&name));
    done(0, train.len() as usize);
    let all = World::map_rows(
        world,
        train.len() as usize,
        train.chunk_rows(CHUNK),
        "teacher features",
        rows,
        &mut done,
    );
    let n = train.len();
    let split = all.split_with_sizes(&widths, 1);
    Some(
        split
            .iter()
            .zip(&shapes)
            .map(|(t, shape)| t.contiguous().view([&[n], &shape[..]].concat().as_slice()))
            .collect(),
    )
}

#[cfg(test)]
#[path = "targets_tests.rs"]
mod tests;
