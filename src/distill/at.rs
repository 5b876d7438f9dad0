//! `at`: attention transfer (Zagoruyko & Komodakis, ICLR 2017, "Paying More Attention to
//! Attention"). The student learns where the teacher's feature map is active: the spatial
//! attention map of a map `f` `[batch, c, h, w]` is
//! `a(f) = normalize_L2(mean_c |f|^p, flattened over h, w)` (p = 2), and
//! `AT = mean_{i, k} (a(f_s)_ik - a(f_t)_ik)^2`, the mean over the batch and the `h * w`
//! positions, as mdistiller computes it (`(at(f_s) - at(f_t)).pow(2).mean()`), summed over the
//! layer pairs named (`teacher_layer = ["features.0", "features.1"]` pairs with the same number
//! of student layers, in order), as the paper and mdistiller sum over their stages. The paper
//! sums `||a_s - a_t||_2`; mdistiller's squared mean is what its weight 1000 is tuned for.
//!
//! Every layer must output feature maps (checked before training, `Method::needs_feature_maps`);
//! when a pair's sizes differ the larger map is average-pooled to the smaller one's size, as
//! mdistiller does. Loss: `ce_weight * CE + beta * sum_pairs AT`, parts `ce` and `at`.

use super::features::{flat, unit_rows, with_ce_pairs, LayerNames, LayerOutputs, CE_WEIGHT};
use super::{Batch, DistillConfig, Distiller, MethodSpec, Param, Part, Range};
use tch::{Kind, Tensor};

const TEACHER_LAYERS: Param = Param::layers(
    "teacher_layer",
    "the teacher's layer whose attention the student learns, or a list of them, e.g. \
     [\"features.0\", \"features.1\"]",
);
const STUDENT_LAYERS: Param = Param::layers(
    "student_layer",
    "the student's layer that learns it, or a list as long as teacher_layer's, pair by pair",
);

const BETA: Param = Param::number(
    "beta",
    1000.0,
    Range::NonNegative,
    "weight of the attention loss (mdistiller: 1000)",
);
const P: Param = Param::number(
    "p",
    2.0,
    Range::Positive,
    "the exponent of |f| in the attention map (the paper: 2)",
);

pub const SPEC: MethodSpec = MethodSpec {
    name: "at",
    summary: "Zagoruyko & Komodakis 2017: ce_weight * CE + beta * sum_pairs mean (a_s - a_t)^2, \
              a = normalize(mean_c |f|^p)",
    params: &[TEACHER_LAYERS, STUDENT_LAYERS, BETA, P, CE_WEIGHT],
};

pub struct At {
    pub layers: LayerNames,
    pub beta: f64,
    pub p: f64,
    pub ce_weight: f64,
}

pub fn build(cfg: &DistillConfig) -> At {
    At {
        layers: LayerNames::new(cfg),
        beta: cfg.number(BETA.name),
        p: cfg.number(P.name),
        ce_weight: cfg.number(CE_WEIGHT.name),
    }
}

/// `normalize_L2(mean_c |f|^p)`, one row of `h * w` per example of `f` `[batch, c, h, w]`.
pub fn attention_map(f: &Tensor, p: f64) -> Tensor {
    let energy = f.abs().pow_tensor_scalar(p).mean_dim(1, false, Kind::Float);
    unit_rows(&flat(&energy))
}

/// The attention loss of two feature maps, the larger pooled to the smaller's size.
pub fn at_loss(student: &Tensor, teacher: &Tensor, p: f64) -> Tensor {
    let area = |t: &Tensor| t.size()[2] * t.size()[3];
    let to_size = |t: &Tensor, like: &Tensor| t.adaptive_avg_pool2d(&like.size()[2..]);
    let (student, teacher) = match (student.size()[2..] == teacher.size()[2..], area(student)) {
        (true, _) => (student.shallow_clone(), teacher.shallow_clone()),
        (false, a) if a > area(teacher) => (to_size(student, teacher), teacher.shallow_clone()),
        (false, _) => (student.shallow_clone(), to_size(teacher, student)),
    };
    (attention_map(&student, p) - attention_map(&teacher, p))
        .square()
        .mean(Kind::Float)
}

/// The attention loss summed over the layer pairs.
pub fn at_sum(pairs: &[LayerOutputs], p: f64) -> Tensor {
    pairs
        .iter()
        .map(|l| at_loss(&l.student, &l.teacher, p))
        .reduce(|a, b| a + b)
        .expect("at names one layer pair at least")
}

impl Distiller for At {
    fn parts(&self, b: &Batch) -> Vec<Part> {
        with_ce_pairs(b, self.ce_weight, |pairs| {
            vec![Part::new("at", self.beta, at_sum(pairs, self.p))]
        })
    }

    fn feature_layers(&self, _epoch: usize) -> Option<&LayerNames> {
        Some(&self.layers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distill::test_util::close;

    fn map(values: &[f32], c: i64, h: i64, w: i64) -> Tensor {
        Tensor::from_slice(values).view([1, c, h, w])
    }

    #[test]
    fn hand_computed_attention_loss() {
        // Student: channels [3, 0] and [1, 0]: mean of squares [5, 0] -> a_s = [1, 0].
        // Teacher: one channel [1, 1] -> a_t = [1, 1] / sqrt2.
        let s = map(&[3., 0., 1., 0.], 2, 1, 2);
        let t = map(&[1., 1.], 1, 1, 2);
        let r = 0.5f64.sqrt();
        close(&at_loss(&s, &t, 2.0), ((1.0 - r).powi(2) + r * r) / 2.0);
        // A map equal to the teacher's (or a multiple of it) has nothing to learn.
        close(&at_loss(&t, &t, 2.0), 0.0);
        close(&at_loss(&(&s * 3.0), &s, 2.0), 0.0);
    }

    #[test]
    fn the_larger_map_is_pooled_to_the_smaller() {
        // A 2x2 student map whose 2x2 average is the teacher's 1x1 map: both attention maps
        // are [1] after pooling.
        let s = map(&[1., 2., 3., 4.], 1, 2, 2);
        let t = map(&[5.], 1, 1, 1);
        close(&at_loss(&s, &t, 2.0), 0.0);
        close(&at_loss(&t, &s, 2.0), 0.0);
        assert_eq!(attention_map(&s, 2.0).size(), [1, 4]);
    }

    #[test]
    fn the_loss_sums_over_the_layer_pairs() {
        let s = map(&[3., 0., 1., 0.], 2, 1, 2);
        let t = map(&[1., 1.], 1, 1, 2);
        let pair = |s: &Tensor, t: &Tensor| LayerOutputs {
            student: s.shallow_clone(),
            teacher: t.shallow_clone(),
        };
        let one = at_loss(&s, &t, 2.0).double_value(&[]);
        close(&at_sum(&[pair(&s, &t)], 2.0), one);
        close(&at_sum(&[pair(&s, &t), pair(&t, &t)], 2.0), one);
        close(&at_sum(&[pair(&s, &t), pair(&t, &s)], 2.0), 2.0 * one);
        let y = Tensor::from_slice(&[0i64]);
        let logits = Tensor::from_slice(&[1f32, 0.]).view([1, 2]);
        let at = At {
            layers: LayerNames {
                teacher: vec!["a".into(), "b".into()],
                student: vec!["c".into(), "d".into()],
            },
            beta: 10.0,
            p: 2.0,
            ce_weight: 1.0,
        };
        let parts = at.parts(&Batch {
            student: &logits,
            teacher: &logits,
            labels: &y,
            epoch: 1,
            layers: vec![pair(&s, &t), pair(&t, &s)],
        });
        assert_eq!(parts[1].name, "at");
        assert_eq!(parts[1].weight, 10.0);
        close(&parts[1].value, 2.0 * one);
    }
}
