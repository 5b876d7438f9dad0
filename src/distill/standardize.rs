//! Logit standardisation (Sun et al., CVPR 2024, "Logit Standardization in Knowledge
//! Distillation"): each side's logits are z-scored per example before the temperature, so the
//! student matches the teacher's logit *relations* rather than their scale. A switch on the
//! logit methods (`soft`, `dkd`, `dist`), not a method: the paper applies it on top of each.

use super::Param;
use tch::Tensor;

pub const STANDARDIZE: Param = Param::switch(
    "standardize",
    false,
    "z-score each side's logits per example before the temperature (Sun et al. 2024)",
);

/// `(z - mean(z)) / (1e-7 + std(z))` over each row's classes, `std` with Bessel's correction
/// (`torch.std`'s default), as the paper's code computes it.
pub fn standardize(logits: &Tensor) -> Tensor {
    let mean = logits.mean_dim(-1, true, logits.kind());
    let std = logits.std_dim(-1, true, true);
    (logits - mean) / (std + 1e-7)
}

/// The logits a loss sees: standardised when `on`.
pub fn logits_seen(logits: &Tensor, on: bool) -> Tensor {
    if on {
        standardize(logits)
    } else {
        logits.shallow_clone()
    }
}

/// A part's name, `_std` appended when the logits are standardised.
pub fn named(plain: &'static str, with_std: &'static str, on: bool) -> &'static str {
    if on {
        with_std
    } else {
        plain
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_get_zero_mean_and_unit_sample_deviation() {
        // [1, 2, 3]: mean 2, sample std 1 -> [-1, 0, 1]; [0, 0, 4]: mean 4/3, std sqrt(16/3).
        let z = Tensor::from_slice(&[1f32, 2., 3., 0., 0., 4.]).view([2, 3]);
        let got: Vec<f32> = Vec::try_from(standardize(&z).reshape([-1])).unwrap();
        let s = (16f32 / 3.0).sqrt();
        let want = [-1., 0., 1., -4. / 3. / s, -4. / 3. / s, 8. / 3. / s];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-5, "{got:?}");
        }
        // Shifting and scaling a row changes nothing.
        let moved = &z * 3.0 + 5.0;
        let gap = (standardize(&moved) - standardize(&z)).abs().max();
        assert!(gap.double_value(&[]) < 1e-5);
    }
}
