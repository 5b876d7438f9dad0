//! What the distilled student learns from: the teacher's logits (and, for `hint`, its guided
//! layer's output), computed once over the training set in chunks of bounded memory and kept in
//! an on-disk cache, or computed on every batch when the student's inputs are augmented (the
//! teacher must see the augmented view).

use super::cache::{CacheMismatch, TeacherCache};
use super::eval::logits_reporting;
use crate::collective::World;
use crate::data::FeatureRows;
use crate::distill::Regressor;
use crate::model::{Features, Model};
use crate::protocol::summary::TeacherOutputs;
use tch::Tensor;

/// Cached guided-layer outputs over the training set are kept in memory up to this size;
/// beyond it the teacher runs on every batch.
const FEATURE_CACHE_BYTES: i64 = 1 << 30;
/// Examples per teacher forward pass when computing outputs over the training set.
pub const CHUNK: i64 = 1024;

enum Source {
    /// Over the whole training set, in training-set order.
    Cached {
        logits: Tensor,
        guided: Option<Tensor>,
    },
    PerBatch,
}

/// `hint`'s trainable regressor and its optimizer.
pub struct HintKit {
    pub regressor: Regressor,
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

/// The named output of a forward pass.
pub fn feature(features: Features, name: &str) -> Tensor {
    features
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, t)| t)
        .unwrap_or_else(|| panic!("layer `{name}` was checked before training"))
}

impl<'a> TeacherTargets<'a> {
    /// Per batch when the student's inputs are augmented; otherwise over `train` once (the
    /// logits from `cache` when it has them), telling `progress(done, total, source)` as it goes.
    pub fn new(
        teacher: &'a Model,
        train: &FeatureRows,
        augmented: bool,
        guided_layer: Option<&str>,
        cache: Option<&TeacherCache>,
        world: Option<&World>,
        progress: &mut dyn FnMut(usize, usize, TeacherOutputs),
    ) -> TeacherTargets<'a> {
        if augmented {
            return TeacherTargets {
                teacher,
                source: Source::PerBatch,
                outputs: TeacherOutputs::PerBatch,
                cache_rejected: None,
            };
        }
        let mut cache_rejected = None;
        let mut cached = cache.and_then(|c| match c.read() {
            Ok(logits) => Some(logits),
            Err(CacheMismatch::Missing(_)) => None,
            Err(why) => {
                cache_rejected = Some(format!(
                    "teacher-output cache {} not used: {why}; recomputing the teacher's outputs",
                    c.path().display()
                ));
                None
            }
        });
        if let Some(w) = world {
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
        let outputs = if cached.is_some() {
            TeacherOutputs::FromCache
        } else {
            TeacherOutputs::Computed
        };
        let total = train.len() as usize;
        if cached.is_some() {
            progress(total, total, outputs);
        }
        let logits = cached.unwrap_or_else(|| {
            progress(0, total, outputs);
            // Each rank computes its shard of the training set, and all get the whole.
            let mut done = |done, total| progress(done, total, outputs);
            let logits = logits_reporting(teacher, train, world, &mut done);
            if let Some(cache) = cache.filter(|_| world.is_none_or(World::is_leader)) {
                cache.write(&logits);
            }
            logits
        });
        let guided = guided_layer.and_then(|layer| guided_outputs(teacher, train, layer, world));
        match (guided_layer, guided) {
            // Too large to keep: the teacher runs per batch after all.
            (Some(_), None) => TeacherTargets {
                teacher,
                source: Source::PerBatch,
                outputs: TeacherOutputs::PerBatch,
                cache_rejected,
            },
            (_, guided) => TeacherTargets {
                teacher,
                source: Source::Cached { logits, guided },
                outputs,
                cache_rejected,
            },
        }
    }

    /// Teacher logits for the training examples `idx` (inputs `x`), and the guided layer's
    /// output when `guided` names it.
    pub fn for_batch(
        &self,
        idx: &Tensor,
        x: &Tensor,
        guided: Option<&str>,
    ) -> (Tensor, Option<Tensor>) {
        match &self.source {
            Source::Cached { logits, guided: g } => (
                logits.index_select(0, idx),
                guided.and(g.as_ref()).map(|g| g.index_select(0, idx)),
            ),
            Source::PerBatch => tch::no_grad(|| match guided {
                Some(layer) => {
                    let (logits, features) = self.teacher.net.forward_features(x, false);
                    (logits, Some(feature(features, layer)))
                }
                None => (self.teacher.net.forward_t(x, false), None),
            }),
        }
    }
}

/// The guided layer's output over the training set, or `None` if it would not fit the budget.
fn guided_outputs(
    teacher: &Model,
    train: &FeatureRows,
    layer: &str,
    world: Option<&World>,
) -> Option<Tensor> {
    let output = |start, len| {
        let x = train.narrow(start, len);
        tch::no_grad(|| feature(teacher.net.forward_features(&x, false).1, layer))
    };
    if output(0, 1).numel() as i64 * 4 * train.len() > FEATURE_CACHE_BYTES {
        return None;
    }
    Some(World::map_rows(
        world,
        train.len() as usize,
        CHUNK,
        "teacher features",
        output,
    ))
}
