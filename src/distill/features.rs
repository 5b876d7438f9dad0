//! What the feature-based methods (`hint`, `at`, `sp`, `rkd`, `pkt`, `crd`) share: the layers
//! they name (`teacher_layer`, `student_layer`, checked before training), the cross-entropy
//! weight they mix in, and the batch's outputs of those layers.

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

/// The outputs of one pair of the method's named layers on one batch, the student's through
/// the method's head when it has one.
pub struct LayerOutputs {
    pub student: Tensor,
    pub teacher: Tensor,
}

/// The layers a method names: `teacher_layer` and `student_layer`, pair by pair (one pair,
/// except for a method that declares them as lists, as `at` does).
pub struct LayerNames {
    pub teacher: Vec<String>,
    pub student: Vec<String>,
}

impl LayerNames {
    pub fn new(cfg: &DistillConfig) -> LayerNames {
        let names = |p: &Param| cfg.names(p.name).into_iter().map(String::from).collect();
        LayerNames {
            teacher: names(&TEACHER_LAYER),
            student: names(&STUDENT_LAYER),
        }
    }

    pub fn teacher(&self) -> Vec<&str> {
        self.teacher.iter().map(String::as_str).collect()
    }

    pub fn student(&self) -> Vec<&str> {
        self.student.iter().map(String::as_str).collect()
    }
}

/// A method on the layers' outputs, mixed with the cross-entropy:
/// `ce_weight * CE + weight * loss(student layer, teacher layer)`, parts `ce` and `name`, for a
/// method that names one pair of layers.
pub fn with_ce(
    b: &Batch,
    ce_weight: f64,
    terms: impl FnOnce(&LayerOutputs) -> Vec<Part>,
) -> Vec<Part> {
    with_ce_pairs(b, ce_weight, |pairs| terms(&pairs[0]))
}

/// The same over every pair of layers the method names.
pub fn with_ce_pairs(
    b: &Batch,
    ce_weight: f64,
    terms: impl FnOnce(&[LayerOutputs]) -> Vec<Part>,
) -> Vec<Part> {
    assert!(
        !b.layers.is_empty(),
        "the method's layers are asked for in every epoch"
    );
    let mut parts = vec![Part::new(
        "ce",
        ce_weight,
        cross_entropy(b.student, b.labels),
    )];
    parts.extend(terms(&b.layers));
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
