//! `[teacher]` and `[student]`: a network, how it trains, and the CPU threads it trains with.

use super::ModelConfig;
pub use crate::protocol::WeightInit;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Random transformations of training batches (never of validation or test data).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Augment {
    /// Shift each image by up to this many pixels in each direction, zero-filled (Hinton's
    /// jitter; also CIFAR's "random crop with padding N", which is the same transformation).
    #[serde(default)]
    pub shift: usize,
    /// Mirror each image left-right with probability 1/2.
    #[serde(default)]
    pub flip: bool,
}

impl Augment {
    pub fn is_none(&self) -> bool {
        *self == Augment::default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    Adam,
    Adamw,
    Sgd,
}

/// `threads`: `"auto"` or a number of intra-op CPU threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Threads {
    #[default]
    Auto,
    Count(usize),
}

impl Serialize for Threads {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Threads::Auto => s.serialize_str("auto"),
            Threads::Count(n) => s.serialize_u64(*n as u64),
        }
    }
}

impl<'de> Deserialize<'de> for Threads {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Count(usize),
            Name(String),
        }
        let wrong = || serde::de::Error::custom("must be \"auto\" or a number of threads >= 1");
        match Repr::deserialize(d).map_err(|_| wrong())? {
            Repr::Name(name) if name == "auto" => Ok(Threads::Auto),
            Repr::Count(n) if n >= 1 => Ok(Threads::Count(n)),
            _ => Err(wrong()),
        }
    }
}

/// The learning rate over a phase: `lr` times a factor of the phase's progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    #[default]
    Constant,
    /// Half a cosine from `lr` to 0 over the phase, step by step (Loshchilov and Hutter's SGDR
    /// without restarts).
    Cosine,
}

impl LrSchedule {
    pub fn is_constant(&self) -> bool {
        *self == LrSchedule::Constant
    }

    /// The factor on `lr` at `progress` (0 at the phase's first step, 1 at its end).
    pub fn factor(self, progress: f64) -> f64 {
        match self {
            LrSchedule::Constant => 1.0,
            LrSchedule::Cosine => {
                0.5 * (1.0 + (std::f64::consts::PI * progress.clamp(0.0, 1.0)).cos())
            }
        }
    }
}

/// Teacher and student share one shape; `checkpoint` is teacher-only, `baseline` student-only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetConfig {
    pub model: ModelConfig,
    pub epochs: usize,
    pub batch_size: usize,
    #[serde(default = "super::defaults::optimizer")]
    pub optimizer: OptimizerKind,
    pub lr: f64,
    /// How the learning rate moves over the phase's epochs.
    #[serde(default, skip_serializing_if = "LrSchedule::is_constant")]
    pub schedule: LrSchedule,
    #[serde(default)]
    pub weight_decay: f64,
    /// Momentum for `sgd`.
    #[serde(default = "super::defaults::momentum")]
    pub momentum: f64,
    /// Teacher only: load these safetensors weights instead of training.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<PathBuf>,
    /// Student only: also train the same student without distillation, for comparison.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<bool>,
    /// Training-batch augmentation; the baseline and distilled students share the student's.
    #[serde(default, skip_serializing_if = "Augment::is_none")]
    pub augment: Augment,
    /// Student only: where the distilled student's weights start, `random` or `teacher`
    /// (weight selection out of the trained teacher's, Xu et al. 2024: `model::select`).
    #[serde(default, skip_serializing_if = "WeightInit::is_random")]
    pub init: WeightInit,
    /// Student only: the same for the baseline, so that the effect of the initialisation and
    /// the effect of distillation are measured apart.
    #[serde(default, skip_serializing_if = "WeightInit::is_random")]
    pub baseline_init: WeightInit,
}

impl NetConfig {
    pub fn trains_baseline(&self) -> bool {
        self.baseline.unwrap_or(true)
    }
}

/// Keys of `[teacher]` and `[student]` that may change while a run goes on.
pub const LIVE_NET_KEYS: [&str; 3] = ["lr", "batch_size", "epochs"];
