//! What the feature-based methods (`hint`, `at`, `sp`, `rkd`, `pkt`) share: the two layers they
//! name (`teacher_layer`, `student_layer`, checked before training), the cross-entropy weight
//! they mix in, and the batch's outputs of those layers.

use super::{cross_entropy, Batch, DistillConfig, Param, Part, Range};
use tch::Tensor;

pub const TEACHER_LAYER: Param = Param::layer(
    "teacher_layer",
    "the teacher's layer whose output the student learns from, e.g. \"features.1\"",
);
pub const STUDENT_LAYER: Param = Param::layer(
    "student_layer",
    "the student's layer that learns it, e.g. \"layers.0\"",
);
pub const CE_WEIGHT: Param = Param::number(
    "ce_weight",
    1.0,
    Range::NonNegative,
    "weight of the cross-entropy with the labels",
);

/// The outputs of the method's two named layers on one batch, the student's through `hint`'s
/// regressor when the method has one.
pub struct LayerOutputs {
    pub student: Tensor,
    pub teacher: Tensor,
}

/// The layers a method names: `teacher_layer` and `student_layer`.
pub struct LayerNames {
    pub teacher: String,
    pub student: String,
}

impl LayerNames {
    pub fn new(cfg: &DistillConfig) -> LayerNames {
        LayerNames {
            teacher: cfg.text(TEACHER_LAYER.name).to_string(),
            student: cfg.text(STUDENT_LAYER.name).to_string(),
        }
    }

    /// `(teacher layer, student layer)`, as `Distiller::feature_layers` gives them.
    pub fn pair(&self) -> (&str, &str) {
        (self.teacher.as_str(), self.student.as_str())
    }
}

/// A method on the two layers' outputs, mixed with the cross-entropy:
/// `ce_weight * CE + weight * loss(student layer, teacher layer)`, parts `ce` and `name`.
pub fn with_ce(
    b: &Batch,
    ce_weight: f64,
    terms: impl FnOnce(&LayerOutputs) -> Vec<Part>,
) -> Vec<Part> {
    let layers = b
        .layers
        .as_ref()
        .expect("the method's layers are asked for in every epoch");
    let mut parts = vec![Part::new(
        "ce",
        ce_weight,
        cross_entropy(b.student, b.labels),
    )];
    parts.extend(terms(layers));
    parts
}

/// Each example's output as one row: `[batch, everything else]`.
pub fn flat(t: &Tensor) -> Tensor {
    t.flatten(1, -1)
}

/// Each row divided by its L2 norm, as `F.normalize(x, dim=1)` (`max(|x|, 1e-12)`).
pub fn unit_rows(x: &Tensor) -> Tensor {
    x / x.norm_scalaropt_dim(2, [-1], true).clamp_min(1e-12)
}
