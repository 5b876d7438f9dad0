//! `pkt`: probabilistic knowledge transfer (Passalis & Tefas, ECCV 2018). Each side's batch of
//! chosen-layer outputs, flattened and L2-normalised, gives cosine similarities mapped to
//! `[0, 1]` by `K = (cos + 1) / 2`; each row of `K`, divided by its sum, is a distribution `P`
//! over the batch's examples. The student matches the teacher's distributions:
//! `PKT = mean_{i, j} P_t[i, j] log((P_t[i, j] + eps) / (P_s[i, j] + eps))`, eps 1e-7, the mean
//! over all `b^2` entries as the authors' code (and mdistiller, torchdistill) computes it.
//! Loss: `ce_weight * CE + beta * PKT`, parts `ce` and `pkt`; beta 30000 as in RepDistiller and
//! mdistiller.

use super::features::{flat, with_ce, LayerNames, CE_WEIGHT};
use super::features::{STUDENT_LAYER, TEACHER_LAYER};
use super::{Batch, DistillConfig, Distiller, MethodSpec, Param, Part, Range};
use tch::{Kind, Tensor};

const BETA: Param = Param::number(
    "beta",
    30000.0,
    Range::NonNegative,
    "weight of the PKT loss (RepDistiller, mdistiller: 30000)",
);
const EPS: f64 = 1e-7;

pub const SPEC: MethodSpec = MethodSpec {
    name: "pkt",
    summary: "Passalis & Tefas 2018: ce_weight * CE + beta * KL(P_t || P_s), \
              P = row-normalised (cos + 1) / 2",
    params: &[TEACHER_LAYER, STUDENT_LAYER, BETA, CE_WEIGHT],
};

pub struct Pkt {
    pub layers: LayerNames,
    pub beta: f64,
    pub ce_weight: f64,
}

pub fn build(cfg: &DistillConfig) -> Pkt {
    Pkt {
        layers: LayerNames::new(cfg),
        beta: cfg.number(BETA.name),
        ce_weight: cfg.number(CE_WEIGHT.name),
    }
}

/// The rows of `(cos + 1) / 2`, each divided by its sum.
fn similarity_distributions(f: &Tensor) -> Tensor {
    let f = flat(f);
    let f = &f / (f.norm_scalaropt_dim(2, [1], true) + EPS);
    let k = (f.matmul(&f.tr()) + 1.0) / 2.0;
    &k / k.sum_dim_intlist(1, true, Kind::Float)
}

/// `mean_{i, j} P_t log((P_t + eps) / (P_s + eps))`.
pub fn pkt_loss(student: &Tensor, teacher: &Tensor) -> Tensor {
    let (ps, pt) = (
        similarity_distributions(student),
        similarity_distributions(teacher),
    );
    (&pt * ((&pt + EPS) / (ps + EPS)).log()).mean(Kind::Float)
}

impl Distiller for Pkt {
    fn parts(&self, b: &Batch) -> Vec<Part> {
        with_ce(b, self.ce_weight, |l| {
            vec![Part::new(
                "pkt",
                self.beta,
                pkt_loss(&l.student, &l.teacher),
            )]
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
    fn hand_computed_pkt() {
        // Student rows orthogonal: K = [[1, 1/2], [1/2, 1]], P_s rows [2/3, 1/3], [1/3, 2/3].
        // Teacher rows equal: K all ones, P_t rows [1/2, 1/2]. Each row's KL:
        // 1/2 ln(3/4) + 1/2 ln(3/2); both rows over 4 entries.
        let s = t2(&[[1.0, 0.0], [0.0, 1.0]]);
        let t = t2(&[[1.0, 0.0], [2.0, 0.0]]);
        let row = 0.5 * 0.75f64.ln() + 0.5 * 1.5f64.ln();
        close(&pkt_loss(&s, &t), 2.0 * row / 4.0);
        close(&pkt_loss(&t, &t), 0.0);
    }
}
