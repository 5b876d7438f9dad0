//! `rkd`: relational knowledge distillation (Park et al., CVPR 2019). The student keeps the
//! teacher's *structure* of a batch: with `e_i` the chosen layer's flattened output of example
//! `i` on each side,
//! - distance-wise: `psi_D(i, j) = |e_i - e_j| / mu`, `mu` the mean of the non-zero pairwise
//!   distances, and `L_D = mean_{i, j} huber(psi_D^s - psi_D^t)`;
//! - angle-wise: `psi_A(i, j, k) = <u_ji, u_jk>` with `u_ji = normalize(e_i - e_j)` (the cosine
//!   of the angle at `e_j`), and `L_A = mean_{i, j, k} huber(psi_A^s - psi_A^t)`;
//!
//! `huber` is the smooth L1 loss (`0.5 x^2` below 1, `|x| - 0.5` above), as in the authors' code
//! and mdistiller. Loss: `ce_weight * CE + 25 * L_D + 50 * L_A`, parts `ce`, `distance`, `angle`.
//! The layers are named like `hint`'s (the penultimate layers are the paper's embeddings).

use super::features::{flat, with_ce, LayerNames, CE_WEIGHT};
use super::features::{STUDENT_LAYER, TEACHER_LAYER};
use super::{Batch, DistillConfig, Distiller, MethodSpec, Param, Part, Range};
use tch::{Kind, Reduction, Tensor};

const DISTANCE_WEIGHT: Param = Param::number(
    "distance_weight",
    25.0,
    Range::NonNegative,
    "weight of the distance-wise loss (the paper: 25)",
);
const ANGLE_WEIGHT: Param = Param::number(
    "angle_weight",
    50.0,
    Range::NonNegative,
    "weight of the angle-wise loss (the paper: 50)",
);

pub const SPEC: MethodSpec = MethodSpec {
    name: "rkd",
    summary: "Park et al. 2019: ce_weight * CE + distance_weight * huber(distances) \
              + angle_weight * huber(angles)",
    params: &[
        TEACHER_LAYER,
        STUDENT_LAYER,
        DISTANCE_WEIGHT,
        ANGLE_WEIGHT,
        CE_WEIGHT,
    ],
};

pub struct Rkd {
    pub layers: LayerNames,
    pub distance_weight: f64,
    pub angle_weight: f64,
    pub ce_weight: f64,
}

pub fn build(cfg: &DistillConfig) -> Rkd {
    Rkd {
        layers: LayerNames::new(cfg),
        distance_weight: cfg.number(DISTANCE_WEIGHT.name),
        angle_weight: cfg.number(ANGLE_WEIGHT.name),
        ce_weight: cfg.number(CE_WEIGHT.name),
    }
}

/// `|e_i - e_j|` (zero on the diagonal) over the mean of the non-zero ones.
fn relative_distances(e: &Tensor) -> Tensor {
    let squares = e.square().sum_dim_intlist(1, false, Kind::Float);
    let squared = squares.unsqueeze(1) + squares.unsqueeze(0) - e.matmul(&e.tr()) * 2.0;
    let n = e.size()[0];
    let opts = (Kind::Float, e.device());
    let off_diagonal = Tensor::ones([n, n], opts) - Tensor::eye(n, opts);
    let d = squared.clamp_min(1e-12).sqrt() * off_diagonal;
    let non_zero = d.gt(0.0).sum(Kind::Float).clamp_min(1.0);
    let mean = (d.sum(Kind::Float) / non_zero).clamp_min(1e-12);
    d / mean
}

/// `<u_ji, u_jk>` for every `(j, i, k)`, flattened (0 where `e_i = e_j` or `e_k = e_j`, as
/// the authors' `F.normalize` gives).
///
/// From the Gram matrix `G` of the centred rows, `<e_i - e_j, e_k - e_j> =
/// G_ik - G_ij - G_jk + G_jj`, over the exact distances `|e_i - e_j| |e_k - e_j|`. That costs `n^2 d + n^3`
/// against `n^3 d` for normalising the `n^2` differences and multiplying them, which made a
/// step on a 392-wide layer 40 times soft distillation's (`benches/method_step.rs`). Centring
/// keeps the Gram matrix's cancellation at the scale of the batch's spread.
fn angles(e: &Tensor) -> Tensor {
    let n = e.size()[0];
    let c = e - e.mean_dim(0, true, Kind::Float);
    let gram = c.matmul(&c.tr());
    let dots = gram.unsqueeze(0) - gram.unsqueeze(2) - gram.unsqueeze(1)
        + gram.diagonal(0, 0, 1).view([n, 1, 1]);
    // Exact distances (no Gram matrix): identical rows are exactly 0 apart, and left out.
    let distance = Tensor::cdist(&c, &c, 2.0, 2);
    let inverse = distance.clamp_min(1e-12).reciprocal() * distance.gt(0.0).to_kind(Kind::Float);
    (dots * inverse.unsqueeze(2) * inverse.unsqueeze(1)).view([-1])
}

/// `(L_D, L_A)` of two batches of outputs.
pub fn rkd_parts(student: &Tensor, teacher: &Tensor) -> (Tensor, Tensor) {
    let (s, t) = (flat(student), flat(teacher));
    let huber = |a: Tensor, b: Tensor| a.smooth_l1_loss(&b, Reduction::Mean, 1.0);
    (
        huber(relative_distances(&s), relative_distances(&t)),
        huber(angles(&s), angles(&t)),
    )
}

impl Distiller for Rkd {
    fn parts(&self, b: &Batch) -> Vec<Part> {
        with_ce(b, self.ce_weight, |l| {
            let (distance, angle) = rkd_parts(&l.student, &l.teacher);
            vec![
                Part::new("distance", self.distance_weight, distance),
                Part::new("angle", self.angle_weight, angle),
            ]
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
    fn hand_computed_equilateral_against_collinear() {
        // Student: an equilateral triangle, every relative distance 1, every angle 60 degrees.
        // Teacher: (0, 0), (1, 0), (2, 0): distances 1, 2, 1 over their mean 4/3.
        let s = t2(&[[0.0, 0.0], [1.0, 0.0], [0.5, 0.75f32.sqrt()]]);
        let t = t2(&[[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]]);
        let (distance, angle) = rkd_parts(&s, &t);
        // Gaps -1/4, 1/2, -1/4, each twice, all below 1: 0.5 * (6 / 16) * 2 / 9 entries.
        close(&distance, 1.0 / 24.0);
        // Cosines at each vertex: student 0.5; teacher 1, -1, 1. Gaps 0.5 (four entries)
        // give 0.125 each, 1.5 (two) give 1.0 each: 2.5 over 27 entries.
        close(&angle, 2.5 / 27.0);
        // A student equal to the teacher, or a scaled and shifted copy, has nothing to learn.
        for same in [t.shallow_clone(), &t * 3.0 + 1.0] {
            let (distance, angle) = rkd_parts(&same, &t);
            close(&distance, 0.0);
            close(&angle, 0.0);
        }
    }

    #[test]
    fn angles_from_the_gram_matrix_are_the_normalised_differences_products() {
        tch::manual_seed(3);
        // Far from the origin (the centring's work), with a duplicated row (left out).
        let e = Tensor::randn([9, 5], (Kind::Float, tch::Device::Cpu)) + 100.0;
        let e = Tensor::cat(&[&e, &e.narrow(0, 2, 1)], 0);
        let n = e.size()[0];
        let diff = (e.unsqueeze(0) - e.unsqueeze(1)).view([n * n, -1]);
        let norm = diff.norm_scalaropt_dim(2.0, [1], true).clamp_min(1e-12);
        let u = (diff / norm).view([n, n, -1]);
        let direct = u.matmul(&u.transpose(1, 2)).view([-1]);
        let gap = (angles(&e) - &direct).abs().max().double_value(&[]);
        assert!(gap < 1e-4, "{gap}");
        // The duplicate's angles are 0, as `F.normalize` makes them.
        let at = |j: i64, i: i64, k: i64| angles(&e).double_value(&[(j * n + i) * n + k]);
        assert_eq!(at(2, 9, 4), 0.0);
        assert_eq!(at(9, 2, 4), 0.0);
    }
}
