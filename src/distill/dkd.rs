//! `dkd`: Decoupled Knowledge Distillation (Zhao et al. 2022). The softened distributions are
//! split into the target class against the rest (TCKD) and the distribution among the
//! non-target classes (NCKD), so the two can be weighted apart.

use super::soft::TEMPERATURE;
use super::standardize::{logits_seen, named, STANDARDIZE};
use super::DistillConfig;
use super::{cross_entropy, Batch, Distiller, MethodSpec, Param, Part, Range};
use tch::{Reduction, Tensor};

const ALPHA: Param = Param::number("alpha", 1.0, Range::NonNegative, "weight of TCKD");
const BETA: Param = Param::number("beta", 8.0, Range::NonNegative, "weight of NCKD");
const CE_WEIGHT: Param = Param::number(
    "ce_weight",
    1.0,
    Range::NonNegative,
    "weight of the cross-entropy with the labels",
);
const WARMUP: Param = Param::epochs(
    "warmup",
    20,
    "epochs over which the TCKD/NCKD weight rises linearly to 1",
);

/// Defaults from the paper (and mdistiller): alpha 1, beta 8, T 4, warm-up 20 epochs.
pub const SPEC: MethodSpec = MethodSpec {
    name: "dkd",
    summary:
        "Zhao et al. 2022: ce_weight * CE + min(epoch / warmup, 1) * (alpha * TCKD + beta * NCKD)",
    params: &[TEMPERATURE, ALPHA, BETA, CE_WEIGHT, WARMUP, STANDARDIZE],
};

pub struct Dkd {
    pub temperature: f64,
    pub alpha: f64,
    pub beta: f64,
    pub ce_weight: f64,
    pub warmup: usize,
    /// TCKD and NCKD of the z-scored logits (Sun et al. 2024; parts `tckd_std`, `nckd_std`).
    pub standardize: bool,
}

pub fn build(cfg: &DistillConfig) -> Dkd {
    Dkd {
        temperature: cfg.number(TEMPERATURE.name),
        alpha: cfg.number(ALPHA.name),
        beta: cfg.number(BETA.name),
        ce_weight: cfg.number(CE_WEIGHT.name),
        warmup: cfg.epochs(WARMUP.name),
        standardize: cfg.switch(STANDARDIZE.name),
    }
}

/// `(TCKD, NCKD)`, each `T^2 * KL(teacher || student) / batch`:
/// - TCKD over the binary distributions `b = [p_y, 1 - p_y]` of `p = softmax(z / T)`;
/// - NCKD over `softmax(z / T)` with the target logit masked out (`- 1000` before the softmax),
///   i.e. the distribution among the non-target classes.
pub fn dkd_parts(
    student: &Tensor,
    teacher: &Tensor,
    labels: &Tensor,
    temperature: f64,
) -> (Tensor, Tensor) {
    let classes = student.size()[1];
    let batch = student.size()[0] as f64;
    let target = labels.one_hot(classes).to_kind(student.kind());
    let other = target.ones_like() - &target;
    let binary = |z: &Tensor| {
        let p = (z / temperature).softmax(-1, z.kind());
        Tensor::stack(
            &[
                (&p * &target).sum_dim_intlist(1, false, p.kind()),
                (&p * &other).sum_dim_intlist(1, false, p.kind()),
            ],
            1,
        )
    };
    let scale = temperature * temperature / batch;
    let tckd = binary(student)
        .log()
        .kl_div(&binary(teacher), Reduction::Sum, false)
        * scale;
    let masked = |z: &Tensor| z / temperature - &target * 1000.0;
    let nckd = masked(student).log_softmax(-1, student.kind()).kl_div(
        &masked(teacher).softmax(-1, teacher.kind()),
        Reduction::Sum,
        false,
    ) * scale;
    (tckd, nckd)
}

impl Dkd {
    /// The KD weight's linear warm-up: `min(epoch / warmup, 1)`.
    pub fn warm(&self, epoch: usize) -> f64 {
        if self.warmup == 0 {
            1.0
        } else {
            (epoch as f64 / self.warmup as f64).min(1.0)
        }
    }
}

impl Distiller for Dkd {
    fn parts(&self, b: &Batch) -> Vec<Part> {
        let on = self.standardize;
        let (student, teacher) = (logits_seen(b.student, on), logits_seen(b.teacher, on));
        let (tckd, nckd) = dkd_parts(&student, &teacher, b.labels, self.temperature);
        let warm = self.warm(b.epoch);
        vec![
            Part::new("ce", self.ce_weight, cross_entropy(b.student, b.labels)),
            Part::new(named("tckd", "tckd_std", on), warm * self.alpha, tckd),
            Part::new(named("nckd", "nckd_std", on), warm * self.beta, nckd),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distill::soft_kl;
    use crate::distill::test_util::close;
    use tch::Kind;

    fn t(rows: &[&[f32]]) -> Tensor {
        let n = rows.len() as i64;
        Tensor::from_slice(&rows.concat()).view([n, -1])
    }

    #[test]
    fn hand_computed_three_class_example() {
        // One example, target class 0, T = 1. Student uniform: b_s = [1/3, 2/3], non-target
        // distribution [1/2, 1/2]. Teacher logits [ln 2, ln 3, 0]: p = [2, 3, 1] / 6,
        // b_t = [1/3, 2/3] (TCKD = 0), non-target [3/4, 1/4].
        let s = t(&[&[0.0, 0.0, 0.0]]);
        let te = t(&[&[2f32.ln(), 3f32.ln(), 0.0]]);
        let y = Tensor::from_slice(&[0i64]);
        let (tckd, nckd) = dkd_parts(&s, &te, &y, 1.0);
        close(&tckd, 0.0);
        close(&nckd, 0.75 * 1.5f64.ln() + 0.25 * 0.5f64.ln());
        // T = 2 scales by T^2 = 4 and softens: p_t ~ [sqrt2, sqrt3, 1].
        let (r2, r3) = (2f64.sqrt(), 3f64.sqrt());
        let sum = r2 + r3 + 1.0;
        let bt = [r2 / sum, (r3 + 1.0) / sum];
        let tckd2 = bt[0] * (bt[0] * 3.0).ln() + bt[1] * (bt[1] * 1.5).ln();
        let nt = [r3 / (r3 + 1.0), 1.0 / (r3 + 1.0)];
        let nckd2 = nt.iter().map(|p| p * (2.0 * p).ln()).sum::<f64>();
        let (tckd, nckd) = dkd_parts(&s, &te, &y, 2.0);
        close(&tckd, 4.0 * tckd2);
        close(&nckd, 4.0 * nckd2);
    }

    #[test]
    fn limiting_cases() {
        let s = t(&[&[1.0, -0.5, 2.0, 0.3], &[0.0, 1.5, -1.0, 0.2]]);
        let te = t(&[&[3.0, 0.5, 1.0, -1.0], &[-0.5, 2.5, 0.0, 1.0]]);
        let y = Tensor::from_slice(&[0i64, 1]);
        // A student equal to the teacher has nothing to learn.
        let (tckd, nckd) = dkd_parts(&te, &te, &y, 4.0);
        close(&tckd, 0.0);
        close(&nckd, 0.0);
        // With beta = 0 only the target-class part (and CE) remains.
        let dkd = Dkd {
            temperature: 4.0,
            alpha: 1.0,
            beta: 0.0,
            ce_weight: 0.0,
            warmup: 0,
            standardize: false,
        };
        let batch = Batch {
            student: &s,
            teacher: &te,
            labels: &y,
            epoch: 1,
            layers: Vec::new(),
        };
        let (tckd, _) = dkd_parts(&s, &te, &y, 4.0);
        close(
            &super::super::total(&dkd.parts(&batch)),
            tckd.double_value(&[]),
        );
    }

    #[test]
    fn the_parts_decompose_classical_kd() {
        // The paper's identity, per example: KD = TCKD + (1 - p_t[y]) * NCKD.
        let s = t(&[&[1.0, -0.5, 2.0, 0.3]]);
        let te = t(&[&[3.0, 0.5, 1.0, -1.0]]);
        let y = Tensor::from_slice(&[2i64]);
        let temperature = 3.0;
        let (tckd, nckd) = dkd_parts(&s, &te, &y, temperature);
        let pt = (&te / temperature)
            .softmax(-1, Kind::Float)
            .double_value(&[0, 2]);
        let kd = soft_kl(&s, &te, temperature);
        close(&kd, (tckd + nckd * (1.0 - pt)).double_value(&[]));
    }

    #[test]
    fn warm_up_is_linear_then_flat() {
        let dkd = Dkd {
            temperature: 4.0,
            alpha: 1.0,
            beta: 8.0,
            ce_weight: 1.0,
            warmup: 20,
            standardize: false,
        };
        assert_eq!(dkd.warm(1), 0.05);
        assert_eq!(dkd.warm(10), 0.5);
        assert_eq!(dkd.warm(20), 1.0);
        assert_eq!(dkd.warm(60), 1.0);
    }
}
