//! `soft`: Hinton et al. (2015), temperature-softened KL to the teacher mixed with cross-entropy.

use super::standardize::{logits_seen, named, STANDARDIZE};
use super::DistillConfig;
use super::{cross_entropy, Batch, Distiller, MethodSpec, Param, Part, Range, StepLoss};
use tch::{Device, Kind, Reduction, Tensor};

pub const TEMPERATURE: Param = Param::number(
    "temperature",
    4.0,
    Range::Positive,
    "softening temperature T of both distributions",
);
pub const ALPHA: Param = Param::number(
    "alpha",
    0.9,
    Range::Fraction,
    "weight of the distillation term; cross-entropy gets 1 - alpha",
);

pub const SPEC: MethodSpec = MethodSpec {
    name: "soft",
    summary: "Hinton et al. 2015: alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE",
    params: &[TEMPERATURE, ALPHA, STANDARDIZE],
};

/// Hinton's softened KL term:
/// `KD = T^2 * mean_i sum_c p_ic^T (log p_ic^T - log q_ic^T)`, with `p^T = softmax(t / T)` (teacher)
/// and `q^T = softmax(s / T)` (student).
///
/// The `T^2` keeps the gradient's scale independent of T: `dKD/ds = T (q^T - p^T) / batch`.
pub fn soft_kl(student_logits: &Tensor, teacher_logits: &Tensor, temperature: f64) -> Tensor {
    let log_q = (student_logits / temperature).log_softmax(-1, student_logits.kind());
    let log_p = (teacher_logits / temperature).log_softmax(-1, teacher_logits.kind());
    // kl_div(input = log q, target = log p, log_target) sums p (log p - log q) elementwise.
    let summed = log_q.kl_div(&log_p, Reduction::Sum, true);
    summed / student_logits.size()[0] as f64 * (temperature * temperature)
}

/// Soft distillation (Hinton et al. 2015): `L = alpha * KD_T + (1 - alpha) * CE(s, y)`.
pub fn soft_kd_loss(
    student_logits: &Tensor,
    teacher_logits: &Tensor,
    labels: &Tensor,
    temperature: f64,
    alpha: f64,
) -> Tensor {
    soft_kl(student_logits, teacher_logits, temperature) * alpha
        + cross_entropy(student_logits, labels) * (1.0 - alpha)
}

/// [`soft_kd_loss`] in one pass over host memory, for float logits on the CPU (`None`
/// elsewhere): the values of `CE(s, y)` and `KD_T`, and a surrogate `sum(s * G)` whose
/// gradient is the loss's, `G = alpha T (q^T - p^T) / B + (1 - alpha) (q - onehot(y)) / B`.
///
/// Why: the autograd form runs a dozen small ops and their backward per step, which on a small
/// student costs as much as its forward and backward together; this runs three copies and one
/// product. Softmaxes are taken in f64 after subtracting the row's maximum.
pub fn soft_kd_fused(
    student_logits: &Tensor,
    teacher_logits: &Tensor,
    labels: &Tensor,
    temperature: f64,
    alpha: f64,
) -> Option<(Tensor, f64, f64)> {
    let on_host = |t: &Tensor| t.device() == Device::Cpu && t.kind() == Kind::Float;
    if !on_host(student_logits) || !on_host(teacher_logits) || labels.device() != Device::Cpu {
        return None;
    }
    let [batch, classes] = student_logits.size()[..] else {
        return None;
    };
    let host = |t: &Tensor| Vec::<f32>::try_from(t.detach().reshape([-1])).ok();
    let (s, t) = (host(student_logits)?, host(teacher_logits)?);
    let y = Vec::<i64>::try_from(labels.reshape([-1])).ok()?;
    let (b, c) = (batch as usize, classes as usize);
    let (kd_scale, ce_scale) = (alpha * temperature / b as f64, (1.0 - alpha) / b as f64);
    let mut grad = vec![0f32; b * c];
    let (mut ce, mut kd) = (0.0, 0.0);
    let log_softmax = |row: &[f32], scale: f64, out: &mut [f64]| {
        let max = row.iter().fold(f64::MIN, |m, &v| m.max(v as f64 * scale));
        let sum: f64 = row.iter().map(|&v| (v as f64 * scale - max).exp()).sum();
        let log_sum = max + sum.ln();
        for (o, &v) in out.iter_mut().zip(row) {
            *o = v as f64 * scale - log_sum;
        }
    };
    let (mut log_q, mut log_qt, mut log_pt) = (vec![0.0; c], vec![0.0; c], vec![0.0; c]);
    for i in 0..b {
        let rows = i * c..(i + 1) * c;
        log_softmax(&s[rows.clone()], 1.0, &mut log_q);
        log_softmax(&s[rows.clone()], 1.0 / temperature, &mut log_qt);
        log_softmax(&t[rows], 1.0 / temperature, &mut log_pt);
        for j in 0..c {
            let target = if y[i] == j as i64 { 1.0 } else { 0.0 };
            let p = log_pt[j].exp();
            ce -= target * log_q[j];
            kd += p * (log_pt[j] - log_qt[j]);
            let g = kd_scale * (log_qt[j].exp() - p) + ce_scale * (log_q[j].exp() - target);
            grad[i * c + j] = g as f32;
        }
    }
    let grad = Tensor::from_slice(&grad).view([batch, classes]);
    let surrogate = (student_logits * grad).sum(Kind::Float);
    let kd = kd / b as f64 * temperature * temperature;
    Some((surrogate, ce / b as f64, kd))
}

/// The `soft` method at a temperature and mixing weight.
pub struct Soft {
    pub temperature: f64,
    pub alpha: f64,
    /// Logit standardisation (Sun et al. 2024): KL between the softmaxes of the z-scored logits
    /// over T; the cross-entropy stays on the raw logits, as in the paper's code.
    pub standardize: bool,
}

pub fn build(cfg: &DistillConfig) -> Soft {
    Soft {
        temperature: cfg.number(TEMPERATURE.name),
        alpha: cfg.number(ALPHA.name),
        standardize: cfg.switch(STANDARDIZE.name),
    }
}

impl Soft {
    /// The two terms: `ce` (weight 1 - alpha) and `kd` (T^2 KL, weight alpha; `kd_std` on
    /// standardised logits).
    pub fn soft_parts(&self, student: &Tensor, teacher: &Tensor, labels: &Tensor) -> Vec<Part> {
        let on = self.standardize;
        let kl = soft_kl(
            &logits_seen(student, on),
            &logits_seen(teacher, on),
            self.temperature,
        );
        vec![
            Part::new("ce", 1.0 - self.alpha, cross_entropy(student, labels)),
            Part::new(named("kd", "kd_std", on), self.alpha, kl),
        ]
    }
}

impl Distiller for Soft {
    fn parts(&self, b: &Batch) -> Vec<Part> {
        self.soft_parts(b.student, b.teacher, b.labels)
    }

    /// The fused host step for raw logits; standardised ones train through the autograd parts.
    fn step_loss(&self, b: &Batch) -> StepLoss {
        if self.standardize {
            return StepLoss::Parts(self.parts(b));
        }
        let (t, alpha) = (self.temperature, self.alpha);
        match soft_kd_fused(b.student, b.teacher, b.labels, t, alpha) {
            Some((surrogate, ce, kd)) => StepLoss::Fused {
                surrogate,
                parts: vec![("ce", 1.0 - alpha, ce), ("kd", alpha, kd)],
            },
            None => StepLoss::Parts(self.parts(b)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distill::test_util::{close, t2};

    #[test]
    fn soft_kl_matches_hand_computation_with_t_squared() {
        // Student uniform, teacher logits [ln 3, 0].
        let s = t2(&[[0.0, 0.0]]);
        let t = t2(&[[3f32.ln(), 0.0]]);
        // T = 1: p = [3/4, 1/4], q = [1/2, 1/2]; KL = 3/4 ln(3/2) + 1/4 ln(1/2).
        close(
            &soft_kl(&s, &t, 1.0),
            0.75 * 1.5f64.ln() + 0.25 * 0.5f64.ln(),
        );
        // T = 2: p = [sqrt3, 1] / (sqrt3 + 1); KD = 4 * sum p ln(2p).
        let r3 = 3f64.sqrt();
        let p = [r3 / (r3 + 1.0), 1.0 / (r3 + 1.0)];
        close(
            &soft_kl(&s, &t, 2.0),
            4.0 * p.iter().map(|p| p * (2.0 * p).ln()).sum::<f64>(),
        );
        // Identical distributions: zero.
        close(&soft_kl(&t, &t, 3.0), 0.0);
    }

    #[test]
    fn soft_kd_mixes_kl_and_cross_entropy_by_alpha() {
        let s = t2(&[[0.0, 0.0], [1.0, 0.0]]);
        let t = t2(&[[3f32.ln(), 0.0], [0.0, 0.0]]);
        let y = Tensor::from_slice(&[1i64, 0]);
        // Row 1 as above at T = 1; row 2: p uniform, q = softmax([1, 0]).
        let q1 = 1f64.exp() / (1f64.exp() + 1.0);
        let kl_row2 = 0.5 * (0.5 / q1).ln() + 0.5 * (0.5 / (1.0 - q1)).ln();
        let kd = (0.75 * 1.5f64.ln() + 0.25 * 0.5f64.ln() + kl_row2) / 2.0;
        let ce = (2f64.ln() + (-q1.ln())) / 2.0;
        close(&soft_kd_loss(&s, &t, &y, 1.0, 0.3), 0.3 * kd + 0.7 * ce);
        close(&soft_kd_loss(&s, &t, &y, 1.0, 0.0), ce);
        close(&soft_kd_loss(&s, &t, &y, 1.0, 1.0), kd);
    }

    #[test]
    fn soft_kl_gradient_is_t_times_probability_gap() {
        let s = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 0.5, -1.0, 0.0])
            .view([2, 3])
            .set_requires_grad(true);
        let t = Tensor::from_slice(&[3.0f32, 1.0, 0.0, 0.0, 0.0, 2.0]).view([2, 3]);
        let temp = 3.0;
        soft_kl(&s, &t, temp).backward();
        let q = (&s / temp).softmax(-1, Kind::Float);
        let p = (&t / temp).softmax(-1, Kind::Float);
        let expected = (q - p) * temp / 2.0;
        let gap = (s.grad() - expected).abs().max().double_value(&[]);
        assert!(gap < 1e-6, "gradient off by {gap}");
    }

    #[test]
    fn fused_step_has_the_autograd_loss_values_and_gradient() {
        tch::manual_seed(3);
        let y = Tensor::from_slice(&[0i64, 3, 1, 4, 4]);
        // Ordinary logits, and large ones where a naive softmax would overflow.
        for (scale, temp, alpha) in [(2.0, 4.0, 0.9), (1.0, 1.0, 0.3), (60.0, 0.5, 0.5)] {
            let s =
                (Tensor::randn([5, 6], (Kind::Float, Device::Cpu)) * scale).set_requires_grad(true);
            let t = Tensor::randn([5, 6], (Kind::Float, Device::Cpu)) * scale;
            soft_kd_loss(&s, &t, &y, temp, alpha).backward();
            let expected = s.grad().copy();
            let _ = s.grad().zero_();
            let (surrogate, ce, kd) = soft_kd_fused(&s, &t, &y, temp, alpha).unwrap();
            surrogate.backward();
            let gap = (s.grad() - expected).abs().max().double_value(&[]);
            assert!(gap < 1e-6, "gradient off by {gap} at T = {temp}");
            close(&cross_entropy(&s, &y), ce);
            let kl = soft_kl(&s, &t, temp).double_value(&[]);
            assert!((kl - kd).abs() < 1e-4 * kl.max(1.0), "KD {kd} != {kl}");
        }
    }

    #[test]
    fn standardized_soft_trains_on_the_autograd_parts_of_z_scored_logits() {
        let s = Tensor::from_slice(&[1f32, 2., 3., 0.5, -1., 0.]).view([2, 3]);
        let t = Tensor::from_slice(&[30f32, 10., 0., 0., 0., 20.]).view([2, 3]);
        let y = Tensor::from_slice(&[0i64, 2]);
        let soft = Soft {
            temperature: 2.0,
            alpha: 0.9,
            standardize: true,
        };
        let batch = Batch {
            student: &s,
            teacher: &t,
            labels: &y,
            epoch: 1,
            layers: Vec::new(),
        };
        let StepLoss::Parts(parts) = soft.step_loss(&batch) else {
            panic!("standardised logits take the autograd parts");
        };
        assert_eq!(parts[1].name, "kd_std");
        let z = |x: &Tensor| super::super::standardize(x);
        close(
            &parts[1].value,
            soft_kl(&z(&s), &z(&t), 2.0).double_value(&[]),
        );
        close(&parts[0].value, cross_entropy(&s, &y).double_value(&[]));
        // A teacher whose logits are the student's, shifted and scaled, has nothing to teach.
        let t = &s * 5.0 + 1.0;
        let batch = Batch {
            teacher: &t,
            ..batch
        };
        close(&soft.parts(&batch)[1].value, 0.0);
    }

    #[test]
    fn fused_step_leaves_other_kinds_to_autograd() {
        let s = Tensor::zeros([2, 3], (Kind::Double, Device::Cpu));
        let y = Tensor::from_slice(&[0i64, 1]);
        assert!(soft_kd_fused(&s, &s, &y, 2.0, 0.5).is_none());
    }
}
