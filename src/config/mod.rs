//! Presets: the TOML file that describes a whole run, `--set` overrides, and validation.
//!
//! Every error names the file, the line and column, the key and what is allowed, so a user can
//! fix a preset without reading code. Validation runs before any data is loaded.

pub mod bounds;
mod data;
mod load;
mod model;
mod net;
pub mod rules;
pub mod shipped;

pub use data::{DataCache, DataConfig, DataSource, Header, LabelColumn, MeanStd, Normalize};
pub use load::{load, load_file, Override, PresetError};
pub use model::{
    Activation, CnnConfig, MlpConfig, ModelConfig, Pool, ResnetConfig, TorchscriptConfig,
    RESNET_DEPTHS,
};
pub use net::{Augment, LrSchedule, NetConfig, OptimizerKind, Threads, WeightInit, LIVE_NET_KEYS};

use crate::distill::DistillConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The preset kd-tui runs when given none (`presets/mnist-subset.toml`): a run of under a minute
/// on the embedded MNIST subset, where distillation shows.
pub const DEFAULT_PRESET: &str = include_str!("../../presets/mnist-subset.toml");
/// How the embedded default is named in messages.
pub const DEFAULT_PRESET_NAME: &str = "<embedded presets/mnist-subset.toml>";
/// The seconds-long preset on the embedded digits (`presets/digits.toml`) that tests and
/// benchmarks start from.
pub const DIGITS_PRESET: &str = include_str!("../../presets/digits.toml");
/// How the embedded digits preset is named in messages.
pub const DIGITS_PRESET_NAME: &str = "<embedded presets/digits.toml>";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preset {
    pub name: String,
    #[serde(default = "defaults::seed")]
    pub seed: u64,
    /// Repeat the whole run for each of these seeds, each in its own folder, and aggregate
    /// (`--seeds N` sets `seed, seed + 1, ...`), in the cockpit's queue or headless.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seeds: Option<Vec<u64>>,
    /// Train a student for every point of a grid (or a list) of preset values, in the cockpit's
    /// queue or headless.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<SweepConfig>,
    #[serde(default = "defaults::device")]
    pub device: String,
    /// `"bf16"`: forward passes under autocast in bfloat16 (matmuls and convolutions), weights
    /// and optimizer in float32, losses computed in float32 from float32 logits.
    #[serde(default, skip_serializing_if = "Precision::is_fp32")]
    pub precision: Precision,
    /// Data-parallel training (when the job runs as several ranks: `--nproc N` or torchrun).
    #[serde(default, skip_serializing_if = "DistributedConfig::is_default")]
    pub distributed: DistributedConfig,
    /// Intra-op CPU threads: `"auto"` (per phase, by the work of one training step) or a count.
    #[serde(default)]
    pub threads: Threads,
    /// Log a step record every this many optimizer steps.
    #[serde(default = "defaults::log_every")]
    pub log_every: usize,
    /// Automatic checkpoints, so that a crash or `kill -9` loses little: after every N epochs
    /// (0: not by count) ...
    #[serde(default)]
    pub checkpoint_every: usize,
    /// ... and after the first epoch that ends this many minutes after the last one (0: not by
    /// time). Every finished phase is checkpointed too.
    #[serde(default = "defaults::checkpoint_minutes")]
    pub checkpoint_minutes: f64,
    /// A phase whose mean training loss grows past this many times its first step's (or
    /// ln(classes), whichever is larger) has diverged and stops (0: only NaN or Inf do).
    #[serde(default = "defaults::diverge_factor")]
    pub diverge_factor: f64,
    pub data: DataConfig,
    pub teacher: NetConfig,
    pub student: NetConfig,
    pub distill: DistillConfig,
}

/// `[distributed]`: how the ranks of a data-parallel job talk.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistributedConfig {
    /// `auto`: NCCL on CUDA devices, Gloo on the CPU.
    #[serde(default)]
    pub backend: DistributedBackend,
    /// Seconds a rendezvous or a collective may wait before the job fails (a dead or stuck rank).
    #[serde(default = "defaults::collective_timeout_s")]
    pub timeout_s: f64,
}

impl Default for DistributedConfig {
    fn default() -> Self {
        DistributedConfig {
            backend: DistributedBackend::Auto,
            timeout_s: defaults::collective_timeout_s(),
        }
    }
}

impl DistributedConfig {
    pub fn is_default(&self) -> bool {
        *self == DistributedConfig::default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DistributedBackend {
    #[default]
    Auto,
    Gloo,
    Nccl,
}

/// The `precision` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    Fp32,
    Bf16,
}

impl Precision {
    pub fn is_fp32(&self) -> bool {
        *self == Precision::Fp32
    }
}

/// `[sweep]`: values to try for any preset keys, e.g. `"distill.temperature" = [1, 4, 20]`
/// (every combination is a point), or `points = [{ "distill.alpha" = 0.5 }, ...]` instead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub points: Vec<BTreeMap<String, toml::Value>>,
    #[serde(flatten)]
    pub grid: BTreeMap<String, Vec<toml::Value>>,
}

mod defaults {
    use super::*;
    pub fn seed() -> u64 {
        7
    }
    pub fn collective_timeout_s() -> f64 {
        300.0
    }

    pub fn device() -> String {
        "auto".into()
    }
    pub fn log_every() -> usize {
        10
    }
    pub fn optimizer() -> OptimizerKind {
        OptimizerKind::Adam
    }
    pub fn checkpoint_minutes() -> f64 {
        2.0
    }

    pub fn diverge_factor() -> f64 {
        100.0
    }

    pub fn momentum() -> f64 {
        0.9
    }
}

impl Preset {
    /// The settings of the network a role trains.
    pub fn net(&self, role: crate::protocol::Role) -> &NetConfig {
        match role {
            crate::protocol::Role::Teacher => &self.teacher,
            crate::protocol::Role::Student => &self.student,
        }
    }

    /// Keys that may change while a run goes on (they take effect at the next optimizer step):
    /// the networks' lr, batch size and epochs, the method, and the method's live
    /// hyperparameters.
    pub fn live_keys(&self) -> Vec<String> {
        let nets = ["teacher", "student"]
            .into_iter()
            .flat_map(|role| LIVE_NET_KEYS.map(|k| format!("{role}.{k}")));
        let method = crate::distill::spec(self.distill.method)
            .params
            .iter()
            .filter(|p| p.live)
            .map(|p| format!("distill.{}", p.name));
        nets.chain(std::iter::once("distill.method".to_string()))
            .chain(method)
            .collect()
    }

    /// The value at a live key (`live_keys`; any of the method's hyperparameters too), as TOML;
    /// `None` for other keys. A lookup of the field: the cockpit asks for every row each frame.
    pub fn get(&self, key: &str) -> Option<toml::Value> {
        let (table, field) = key.split_once('.')?;
        let net = match table {
            "teacher" => &self.teacher,
            "student" => &self.student,
            "distill" if field == "method" => {
                return Some(toml::Value::String(self.distill.method.as_str().into()))
            }
            "distill" => return self.distill.params.get(field).cloned(),
            _ => return None,
        };
        match field {
            "lr" => Some(toml::Value::Float(net.lr)),
            "batch_size" => Some(toml::Value::Integer(net.batch_size as i64)),
            "epochs" => Some(toml::Value::Integer(net.epochs as i64)),
            _ => None,
        }
    }

    /// The preset as TOML, as the run folder records it.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a preset always serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distill::Method;

    /// What `get` was: the value at the dotted key of the whole preset serialised.
    fn serialised(p: &Preset, key: &str) -> Option<toml::Value> {
        let root = toml::Value::try_from(p).ok()?;
        key.split('.')
            .try_fold(root, |v, part| v.get(part).cloned())
    }

    #[test]
    fn get_reads_the_field_the_serialised_preset_holds() {
        let soft = load(DIGITS_PRESET, "d", &[]).unwrap();
        let mut presets = Vec::new();
        for method in Method::ALL {
            // A method on features names its layers from the start; one on logits is switched to.
            if !method.on_features() {
                presets.push(soft.with_edit("distill.method", method.as_str()).unwrap());
                continue;
            }
            let on_layers = [
                format!("distill.method=\"{}\"", method.as_str()),
                "distill.teacher_layer=\"fc1\"".into(),
                "distill.student_layer=\"fc1\"".into(),
            ];
            let set: Vec<Override> = on_layers.iter().map(|o| o.parse().unwrap()).collect();
            presets.push(load(DIGITS_PRESET, "d", &set).unwrap());
        }
        assert_eq!(presets.len(), Method::ALL.len());
        for p in &presets {
            let declared = crate::distill::spec(p.distill.method).params.iter();
            let all = declared.map(|param| format!("distill.{}", param.name));
            for key in p.live_keys().into_iter().chain(all) {
                let value = p.get(&key);
                assert!(value.is_some(), "{key}");
                assert_eq!(value, serialised(p, &key), "{key}");
            }
        }
        assert_eq!(soft.get("teacher.model"), None);
        assert_eq!(soft.get("distill"), None);
    }
}
