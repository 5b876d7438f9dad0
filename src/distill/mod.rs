//! Distillation methods: one file each. A method declares its hyperparameters (`MethodSpec`:
//! name, default, allowed range, whether editable live), and returns its loss as named `Part`s
//! whose weighted sum is trained. Preset validation, `--set`, live edits and the TUI's panel all
//! come from the declarations; the losses are small pure functions with their formula in the doc
//! comment.
//!
//! Conventions: logits are `[batch, classes]`, labels `[batch]` (i64), every loss is a batch mean.
//! Adding a method: a file here with a `SPEC` and a `build`, then in `registry.rs` a `Method`
//! variant and an arm in `spec` and `build`.

mod at;
mod crd;
mod dist;
mod dkd;
mod features;
mod hard;
mod head;
mod hint;
mod params;
mod pkt;
mod registry;
mod rkd;
mod soft;
mod sp;
mod standardize;

pub use at::{at_loss, attention_map};
pub use crd::{nce_loss, ContrastHead, ContrastSpec};
pub use dist::{dist_parts, pearson_rows};
pub use dkd::{dkd_parts, Dkd};
pub use features::{LayerNames, LayerOutputs};
pub use hard::{hard_label_loss, Hard};
pub use head::{Head, HeadSpec};
pub use hint::{Hint, Regressor};
pub use params::{Param, ParamKind, Range};
pub use pkt::pkt_loss;
pub use registry::{build, spec, DistillConfig, Method, MethodSpec};
pub use rkd::rkd_parts;
pub use soft::{soft_kd_fused, soft_kd_loss, soft_kl, Soft};
pub use sp::sp_loss;
pub use standardize::standardize;

use tch::Tensor;

/// One named term of a loss: `weight * value` is what it adds to the total.
pub struct Part {
    pub name: &'static str,
    pub weight: f64,
    /// The term before weighting (a batch mean), so a part can be compared across methods.
    pub value: Tensor,
}

impl Part {
    pub fn new(name: &'static str, weight: f64, value: Tensor) -> Part {
        Part {
            name,
            weight,
            value,
        }
    }
}

/// The trained loss: `sum_k weight_k * value_k`.
pub fn total(parts: &[Part]) -> Tensor {
    parts
        .iter()
        .map(|p| &p.value * p.weight)
        .reduce(|a, b| a + b)
        .expect("a loss has at least one part")
}

/// What one step trains on, and the loss it reports.
pub enum StepLoss {
    /// Named terms with their autograd graphs: backward runs on their weighted sum.
    Parts(Vec<Part>),
    /// A fused step: a surrogate whose gradient is the loss's, and the terms' values
    /// (`name, weight, value`) computed on the host.
    Fused {
        surrogate: Tensor,
        parts: Vec<(&'static str, f64, f64)>,
    },
}

impl StepLoss {
    /// What backward runs on.
    pub fn objective(&self) -> Tensor {
        match self {
            StepLoss::Parts(parts) => total(parts),
            StepLoss::Fused { surrogate, .. } => surrogate.shallow_clone(),
        }
    }

    /// The names of the parts, in the order of `values`.
    pub fn names(&self) -> Vec<&'static str> {
        match self {
            StepLoss::Parts(parts) => parts.iter().map(|p| p.name).collect(),
            StepLoss::Fused { parts, .. } => parts.iter().map(|p| p.0).collect(),
        }
    }

    /// The loss, then each part's value, times `weight`, on the host.
    pub fn values(&self, weight: f64) -> Vec<f64> {
        let (total, parts): (f64, Vec<f64>) = match self {
            StepLoss::Parts(parts) => (
                total(parts).double_value(&[]),
                parts.iter().map(|p| p.value.double_value(&[])).collect(),
            ),
            StepLoss::Fused { parts, .. } => (
                parts.iter().map(|(_, w, v)| w * v).sum(),
                parts.iter().map(|p| p.2).collect(),
            ),
        };
        std::iter::once(total)
            .chain(parts)
            .map(|v| v * weight)
            .collect()
    }
}

/// What one distilled step gives a method.
pub struct Batch<'a> {
    pub student: &'a Tensor,
    pub teacher: &'a Tensor,
    pub labels: &'a Tensor,
    /// The epoch being trained, 1-based (for warm-ups and stages).
    pub epoch: usize,
    /// The outputs of the layers the method names, pair by pair (the student's mapped by the
    /// method's head); empty but in the epochs where `Distiller::feature_layers` asks for them.
    pub layers: Vec<LayerOutputs>,
}

/// What a distillation method computes: the student's loss on one batch, in named parts.
pub trait Distiller {
    fn parts(&self, batch: &Batch) -> Vec<Part>;

    /// What a training step runs on: the parts, unless the method has a fused form.
    fn step_loss(&self, batch: &Batch) -> StepLoss {
        StepLoss::Parts(self.parts(batch))
    }

    /// The teacher's and the student's layers whose outputs this method needs in `epoch`.
    fn feature_layers(&self, _epoch: usize) -> Option<&LayerNames> {
        None
    }

    /// What the method trains beside the student on the two layers' outputs, which its loss
    /// then sees through it (`hint`'s regressor, `crd`'s heads and banks).
    fn head(&self) -> Option<HeadSpec> {
        None
    }
}

/// Cross-entropy with the true labels: `CE = -mean_i log softmax(z_i)[y_i]`.
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Tensor {
    logits.cross_entropy_for_logits(labels)
}

/// The loss of a phase without a teacher (teacher, baseline): one part, `ce`.
pub fn plain_parts(logits: &Tensor, labels: &Tensor) -> Vec<Part> {
    vec![Part::new("ce", 1.0, cross_entropy(logits, labels))]
}

#[cfg(test)]
pub(crate) mod test_util {
    use tch::Tensor;

    pub fn t2(rows: &[[f32; 2]]) -> Tensor {
        Tensor::from_slice(&rows.concat()).view([rows.len() as i64, 2])
    }

    pub fn close(a: &Tensor, b: f64) {
        let a = a.double_value(&[]);
        assert!((a - b).abs() < 1e-5, "{a} != {b}");
    }
}

#[cfg(test)]
mod tests;
