//! What the distilled student learns from: the teacher's logits (and, for `hint`, its guided
//! layer's output), computed once over the training set in chunks of bounded memory and kept in
//! an on-disk cache, or computed on every batch when the student's inputs are augmented (the
//! teacher must see the augmented view).

use super::eval::logits_in_chunks;
use crate::dist::World;
use crate::distill::Regressor;
use crate::model::{Features, Model};
use crate::run::summary::TeacherOutputs;
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use tch::{Kind, Tensor};

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
    /// logits from `cache` when it has them).
    pub fn new(
        teacher: &'a Model,
        train: &Tensor,
        augmented: bool,
        guided_layer: Option<&str>,
        cache: Option<&TeacherCache>,
        world: Option<&World>,
    ) -> TeacherTargets<'a> {
        if augmented {
            return TeacherTargets {
                teacher,
                source: Source::PerBatch,
                outputs: TeacherOutputs::PerBatch,
            };
        }
        let mut cached = cache.and_then(TeacherCache::read);
        if let Some(w) = world {
            // The ranks use the cache only if every one of them has it (one file per machine).
            let mut have = Tensor::from_slice(&[f32::from(u8::from(cached.is_some()))]);
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
        let logits = cached.unwrap_or_else(|| {
            // Each rank computes its shard of the training set, and all get the whole.
            let logits = logits_in_chunks(teacher, train, world);
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
            },
            (_, guided) => TeacherTargets {
                teacher,
                source: Source::Cached { logits, guided },
                outputs,
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
    train: &Tensor,
    layer: &str,
    world: Option<&World>,
) -> Option<Tensor> {
    let n = train.size()[0];
    let one = tch::no_grad(|| {
        feature(
            teacher
                .net
                .forward_features(&train.narrow(0, 0, 1), false)
                .1,
            layer,
        )
    });
    if one.numel() as i64 * 4 * n > FEATURE_CACHE_BYTES {
        return None;
    }
    Some(World::map_rows(
        world,
        train,
        CHUNK,
        "teacher features",
        |x| tch::no_grad(|| feature(teacher.net.forward_features(x, false).1, layer)),
    ))
}

/// Teacher logits over a training set on disk, keyed by the teacher's weights, the data and its
/// preprocessing (so a rerun, another student or a sweep with the same teacher skips the pass).
pub struct TeacherCache {
    path: PathBuf,
}

impl TeacherCache {
    /// `$KD_TUI_CACHE` (default `~/.cache/kd-tui`)`/teacher-outputs/<sha256>.safetensors`.
    pub fn new(teacher: &Model, data_key: &str) -> Option<TeacherCache> {
        let root = std::env::var_os("KD_TUI_CACHE")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("kd-tui")))
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/kd-tui")))?;
        let mut hash = Sha256::new();
        hash.update(data_key.as_bytes());
        let mut vars: Vec<(String, Tensor)> = teacher.vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, t) in vars {
            hash.update(name.as_bytes());
            let values: Vec<f32> = Vec::try_from(t.to_kind(Kind::Float).flatten(0, -1)).ok()?;
            for v in values {
                hash.update(v.to_le_bytes());
            }
        }
        let key: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
        Some(TeacherCache {
            path: root
                .join("teacher-outputs")
                .join(format!("{key}.safetensors")),
        })
    }

    fn read(&self) -> Option<Tensor> {
        let tensors = Tensor::read_safetensors(&self.path).ok()?;
        tensors
            .into_iter()
            .find(|(n, _)| n == "logits")
            .map(|(_, t)| t)
    }

    /// Best effort: a cache that cannot be written costs the next run a teacher pass, nothing
    /// else. Written aside and renamed, so a reader never sees half a file.
    fn write(&self, logits: &Tensor) {
        let Some(dir) = self.path.parent() else {
            return;
        };
        let tmp = self
            .path
            .with_extension(format!("{}.partial", std::process::id()));
        let written = std::fs::create_dir_all(dir)
            .ok()
            .and_then(|()| {
                Tensor::write_safetensors(&[("logits", logits.to_device(tch::Device::Cpu))], &tmp)
                    .ok()
            })
            .and_then(|()| std::fs::rename(&tmp, &self.path).ok());
        if written.is_none() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}
