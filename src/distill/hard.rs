//! `hard`: the student learns the teacher's argmax labels.

use super::{cross_entropy, Method};
use tch::Tensor;

/// Hard-label distillation: cross-entropy against the teacher's argmax,
/// `L = -mean_i log softmax(s_i)[argmax_c t_ic]`.
pub fn hard_label_loss(student_logits: &Tensor, teacher_logits: &Tensor) -> Tensor {
    cross_entropy(student_logits, &teacher_logits.argmax(-1, false))
}

pub struct Hard;

impl Method for Hard {
    fn loss(&self, student_logits: &Tensor, teacher_logits: &Tensor, _labels: &Tensor) -> Tensor {
        hard_label_loss(student_logits, teacher_logits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distill::test_util::{close, t2};

    #[test]
    fn hard_loss_targets_teacher_argmax() {
        // Student [2, 0], teacher prefers class 1: CE = -log(e^0 / (e^2 + 1)) = ln(1 + e^2).
        let s = t2(&[[2.0, 0.0]]);
        let t = t2(&[[0.0, 1.0]]);
        close(&hard_label_loss(&s, &t), (1.0 + 2f64.exp()).ln());
    }
}
