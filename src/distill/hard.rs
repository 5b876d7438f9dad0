//! `hard`: the student learns the teacher's argmax labels.

use super::{cross_entropy, Batch, Distiller, MethodSpec, Part};
use tch::Tensor;

pub const SPEC: MethodSpec = MethodSpec {
    name: "hard",
    summary: "cross-entropy against the teacher's argmax labels",
    params: &[],
};

/// Hard-label distillation: cross-entropy against the teacher's argmax,
/// `L = -mean_i log softmax(s_i)[argmax_c t_ic]`.
pub fn hard_label_loss(student_logits: &Tensor, teacher_logits: &Tensor) -> Tensor {
    cross_entropy(student_logits, &teacher_logits.argmax(-1, false))
}

pub struct Hard;

impl Distiller for Hard {
    fn parts(&self, b: &Batch) -> Vec<Part> {
        vec![Part::new(
            "hard",
            1.0,
            hard_label_loss(b.student, b.teacher),
        )]
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
