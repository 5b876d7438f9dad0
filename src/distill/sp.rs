//! `sp`: similarity-preserving distillation (Tung & Mori, ICCV 2019). Examples the teacher
//! finds alike, the student should find alike: with `F` a side's chosen layer output flattened
//! to `[b, d]`, `G = normalize_rows(F F^T)` (`[b, b]`, each row L2-normalised), and
//! `SP = ||G_s - G_t||_F^2 / b^2`. Only the batch similarities are compared, so the two layers
//! may differ in shape and kind (a CNN teacher's map, an MLP student's vector).
//! Loss: `ce_weight * CE + beta * SP`, parts `ce` and `sp`; beta 3000 as in mdistiller.

use super::features::{flat, unit_rows, with_ce, LayerNames, CE_WEIGHT};
use super::features::{STUDENT_LAYER, TEACHER_LAYER};
use super::{Batch, DistillConfig, Distiller, MethodSpec, Param, Part, Range};
use tch::{Kind, Tensor};

const BETA: Param = Param::number(
    "beta",
    3000.0,
    Range::NonNegative,
    "weight of the similarity loss (the paper and mdistiller: 3000)",
);

pub const SPEC: MethodSpec = MethodSpec {
    name: "sp",
    summary: "Tung & Mori 2019: ce_weight * CE + beta * ||G_s - G_t||_F^2 / b^2, \
              G = row-normalised F F^T",
    params: &[TEACHER_LAYER, STUDENT_LAYER, BETA, CE_WEIGHT],
};

pub struct Sp {
    pub layers: LayerNames,
    pub beta: f64,
    pub ce_weight: f64,
}

pub fn build(cfg: &DistillConfig) -> Sp {
    Sp {
        layers: LayerNames::new(cfg),
        beta: cfg.number(BETA.name),
        ce_weight: cfg.number(CE_WEIGHT.name),
    }
}

/// The row-normalised similarity matrix of a batch's outputs.
fn similarities(f: &Tensor) -> Tensor {
    let f = flat(f);
    unit_rows(&f.matmul(&f.tr()))
}

/// `||G_s - G_t||_F^2 / b^2`.
pub fn sp_loss(student: &Tensor, teacher: &Tensor) -> Tensor {
    let b = student.size()[0] as f64;
    (similarities(student) - similarities(teacher))
        .square()
        .sum(Kind::Float)
        / (b * b)
}

impl Distiller for Sp {
    fn parts(&self, b: &Batch) -> Vec<Part> {
        with_ce(b, self.ce_weight, |l| {
            vec![Part::new("sp", self.beta, sp_loss(&l.student, &l.teacher))]
        })
    }

    fn feature_layers(&self, _epoch: usize) -> Option<&LayerNames> {
        Some(&self.layers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distill::test_util::{close, t2};

    #[test]
    fn hand_computed_similarity_loss() {
        // Student rows orthogonal: G_s = I. Teacher rows equal: F F^T all ones, rows / sqrt2.
        // Differences: 1 - 1/sqrt2 twice, 1/sqrt2 twice; over b^2 = 4.
        let s = t2(&[[1.0, 0.0], [0.0, 1.0]]);
        let t = t2(&[[1.0, 0.0], [1.0, 0.0]]);
        let r = 0.5f64.sqrt();
        close(
            &sp_loss(&s, &t),
            (2.0 * (1.0 - r).powi(2) + 2.0 * r * r) / 4.0,
        );
        close(&sp_loss(&t, &t), 0.0);
    }

    #[test]
    fn shapes_may_differ_between_the_sides() {
        // A map teacher [2, 2, 1, 1] whose rows are the vector student's, scaled: zero.
        let s = t2(&[[1.0, 2.0], [3.0, -1.0]]);
        let t = (&s * 4.0).view([2, 2, 1, 1]);
        close(&sp_loss(&s, &t), 0.0);
    }
}
