//! `dist`: DIST (Huang et al. 2022, "Knowledge Distillation from A Stronger Teacher"): match the
//! *relations* of the softened predictions (Pearson correlation) rather than their values,
//! between classes of one example (inter-class) and between examples of one class (intra-class).

use super::standardize::{logits_seen, named, STANDARDIZE};
use super::DistillConfig;
use super::{cross_entropy, Batch, Distiller, MethodSpec, Param, Part, Range};
use tch::Tensor;

const TAU: Param = Param::number(
    "tau",
    1.0,
    Range::Positive,
    "softening temperature of both distributions (the paper: 1 on ImageNet, 4 on CIFAR)",
);
const BETA: Param = Param::number(
    "beta",
    1.0,
    Range::NonNegative,
    "weight of the inter-class loss",
);
const GAMMA: Param = Param::number(
    "gamma",
    1.0,
    Range::NonNegative,
    "weight of the intra-class loss",
);
const CE_WEIGHT: Param = Param::number(
    "ce_weight",
    1.0,
    Range::NonNegative,
    "weight of the cross-entropy with the labels",
);

pub const SPEC: MethodSpec = MethodSpec {
    name: "dist",
    summary: "Huang et al. 2022: ce_weight * CE + beta * tau^2 * inter + gamma * tau^2 * intra",
    params: &[TAU, BETA, GAMMA, CE_WEIGHT, STANDARDIZE],
};

pub struct Dist {
    pub tau: f64,
    pub beta: f64,
    pub gamma: f64,
    pub ce_weight: f64,
    /// Relations of the z-scored logits' softmaxes (Sun et al. 2024; `inter_std`, `intra_std`).
    pub standardize: bool,
}

pub fn build(cfg: &DistillConfig) -> Dist {
    Dist {
        tau: cfg.number(TAU.name),
        beta: cfg.number(BETA.name),
        gamma: cfg.number(GAMMA.name),
        ce_weight: cfg.number(CE_WEIGHT.name),
        standardize: cfg.switch(STANDARDIZE.name),
    }
}

/// Pearson correlation of each row of `a` with the same row of `b`: the cosine similarity of
/// the mean-centred rows, `sum(a'b') / (|a'| |b'| + 1e-8)`, as the paper's code computes it.
pub fn pearson_rows(a: &Tensor, b: &Tensor) -> Tensor {
    let centre = |x: &Tensor| x - x.mean_dim(1, true, x.kind());
    let (a, b) = (centre(a), centre(b));
    let dot = (&a * &b).sum_dim_intlist(1, false, a.kind());
    let norms = a.norm_scalaropt_dim(2, [1], false) * b.norm_scalaropt_dim(2, [1], false);
    dot / (norms + 1e-8)
}

/// `(inter, intra)`, each scaled by `tau^2`, with `Y = softmax(z / tau)` per row:
/// `inter = 1 - mean_i pearson(Y_s[i, :], Y_t[i, :])`,
/// `intra = 1 - mean_j pearson(Y_s[:, j], Y_t[:, j])`.
pub fn dist_parts(student: &Tensor, teacher: &Tensor, tau: f64) -> (Tensor, Tensor) {
    let ys = (student / tau).softmax(-1, student.kind());
    let yt = (teacher / tau).softmax(-1, teacher.kind());
    let relation = |a: &Tensor, b: &Tensor| -(pearson_rows(a, b).mean(a.kind()) - 1.0);
    let scale = tau * tau;
    (
        relation(&ys, &yt) * scale,
        relation(&ys.tr(), &yt.tr()) * scale,
    )
}

impl Distiller for Dist {
    fn parts(&self, b: &Batch) -> Vec<Part> {
        let on = self.standardize;
        let (student, teacher) = (logits_seen(b.student, on), logits_seen(b.teacher, on));
        let (inter, intra) = dist_parts(&student, &teacher, self.tau);
        vec![
            Part::new("ce", self.ce_weight, cross_entropy(b.student, b.labels)),
            Part::new(named("inter", "inter_std", on), self.beta, inter),
            Part::new(named("intra", "intra_std", on), self.gamma, intra),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distill::test_util::close;

    #[test]
    fn pearson_of_hand_picked_rows() {
        // [1, 2, 3] with [2, 4, 6]: +1; with [3, 2, 1]: -1; with [1, 3, 2]: centred [-1, 0, 1]
        // and [-1, 1, 0] give 1 / (sqrt2 sqrt2) = 0.5.
        let a = Tensor::from_slice(&[1f32, 2., 3., 1., 2., 3., 1., 2., 3.]).view([3, 3]);
        let b = Tensor::from_slice(&[2f32, 4., 6., 3., 2., 1., 1., 3., 2.]).view([3, 3]);
        let r: Vec<f32> = Vec::try_from(pearson_rows(&a, &b)).unwrap();
        for (got, want) in r.iter().zip([1.0, -1.0, 0.5]) {
            assert!((got - want).abs() < 1e-5, "{r:?}");
        }
    }

    #[test]
    fn a_student_equal_to_the_teacher_has_zero_relation_loss() {
        let z = Tensor::from_slice(&[1f32, 0., -1., 0.5, 2., 0.1]).view([2, 3]);
        let (inter, intra) = dist_parts(&z, &z, 1.0);
        // Zero up to float rounding (the correlations are of centred, nearly equal values).
        for loss in [inter, intra] {
            assert!(loss.double_value(&[]).abs() < 1e-4, "{loss}");
        }
        // A student that ranks the classes the opposite way scores the maximum, 2 * tau^2 per
        // term, on a two-class row pair with opposite orders.
        let s = Tensor::from_slice(&[1f32, 0., 0., 1.]).view([2, 2]);
        let t = Tensor::from_slice(&[0f32, 1., 1., 0.]).view([2, 2]);
        let (inter, intra) = dist_parts(&s, &t, 1.0);
        close(&inter, 2.0);
        close(&intra, 2.0);
    }
}
