//! Distillation methods: one file each, every loss a small pure function over logits with its
//! formula in the doc comment, behind the `Method` trait the training loop calls.
//!
//! Conventions: logits are `[batch, classes]`, labels `[batch]` (i64), every loss is a batch mean.

mod hard;
mod soft;

pub use hard::{hard_label_loss, Hard};
pub use soft::{soft_kd_loss, soft_kl, Soft};

use crate::config::{DistillConfig, Method as MethodName};
use tch::Tensor;

/// What a distillation method computes: the student's loss on one batch.
pub trait Method {
    fn loss(&self, student_logits: &Tensor, teacher_logits: &Tensor, labels: &Tensor) -> Tensor;
}

/// The method a (live) preset names, with its hyperparameters.
pub fn from_config(cfg: &DistillConfig) -> Box<dyn Method> {
    match cfg.method {
        MethodName::Hard => Box::new(Hard),
        MethodName::Soft => Box::new(Soft {
            temperature: cfg.temperature,
            alpha: cfg.alpha,
        }),
    }
}

/// Cross-entropy with the true labels: `CE = -mean_i log softmax(z_i)[y_i]`.
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Tensor {
    logits.cross_entropy_for_logits(labels)
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
mod tests {
    use super::test_util::{close, t2};
    use super::*;

    #[test]
    fn cross_entropy_of_uniform_logits_is_ln_classes() {
        close(
            &cross_entropy(&t2(&[[0.0, 0.0]]), &Tensor::from_slice(&[0i64])),
            2f64.ln(),
        );
    }

    #[test]
    fn from_config_picks_the_method_and_its_settings() {
        let s = t2(&[[2.0, 0.0]]);
        let t = t2(&[[0.0, 1.0]]);
        let y = Tensor::from_slice(&[0i64]);
        let mut cfg = DistillConfig {
            method: MethodName::Hard,
            temperature: 4.0,
            alpha: 0.5,
        };
        close(
            &from_config(&cfg).loss(&s, &t, &y),
            hard_label_loss(&s, &t).double_value(&[]),
        );
        cfg.method = MethodName::Soft;
        close(
            &from_config(&cfg).loss(&s, &t, &y),
            soft_kd_loss(&s, &t, &y, 4.0, 0.5).double_value(&[]),
        );
    }
}
