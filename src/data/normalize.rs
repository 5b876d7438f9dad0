//! `data.normalize`: the per-feature shift and scale the final tensors are made with.

use super::{err, DataError, Raw};
use crate::config::{MeanStd, Normalize};

/// Per-feature shift and scale: a feature's value `v` becomes `(v - shift) * scale`.
pub(super) struct Affine {
    pub shift: Vec<f32>,
    pub scale: Vec<f32>,
}

impl Affine {
    /// Rows of float features, normalised.
    pub fn apply(&self, values: &[f32]) -> Vec<f32> {
        let mut out = vec![0.0_f32; values.len()];
        let dim = self.scale.len();
        for (row, from) in out.chunks_exact_mut(dim).zip(values.chunks_exact(dim)) {
            let each = row.iter_mut().zip(from).zip(&self.shift).zip(&self.scale);
            for (((o, &v), shift), scale) in each {
                *o = (v - shift) * scale;
            }
        }
        out
    }
}

/// The shift and scale `how` asks for, from the training examples' statistics (none for
/// `Normalize::None`). `max_value` is the source's largest pixel value, where it has one.
pub(super) fn normalization(
    how: &Normalize,
    max_value: Option<f32>,
    train: &Raw,
) -> Result<Option<Affine>, DataError> {
    let dim = train.dim();
    let values = || {
        train.values().ok_or_else(|| {
            err(
                "preset",
                "key `data.normalize`: \"standardize\" reads every pixel first, and this image \
                 folder is decoded as batches are drawn (data.cache = \"none\", or too large for \
                 memory); use \"scale\" or { mean = [...], std = [...] }",
            )
        })
    };
    Ok(match how {
        Normalize::None => None,
        Normalize::Scale => {
            let max = match max_value {
                Some(max) => max,
                None => values()?.fold(0.0_f64, |m, v| m.max(v.abs())) as f32,
            }
            .max(f32::MIN_POSITIVE);
            Some(Affine {
                shift: vec![0.0; dim],
                scale: vec![1.0 / max; dim],
            })
        }
        Normalize::Standardize => Some(standardize(train, values()?)),
        Normalize::PerChannel(m) => Some(per_channel(m, max_value, train)?),
    })
}

fn standardize(train: &Raw, values: impl Iterator<Item = f64>) -> Affine {
    let dim = train.dim();
    let n = train.len().max(1) as f64;
    let mut mean = vec![0.0_f64; dim];
    let mut sq = vec![0.0_f64; dim];
    for (i, v) in values.enumerate() {
        let j = i % dim;
        mean[j] += v / n;
        sq[j] += v * v / n;
    }
    let scale = mean
        .iter()
        .zip(&sq)
        .map(|(m, s)| {
            let std = (s - m * m).max(0.0).sqrt();
            if std < 1e-8 {
                1.0
            } else {
                (1.0 / std) as f32
            }
        })
        .collect();
    Affine {
        shift: mean.iter().map(|&m| m as f32).collect(),
        scale,
    }
}

/// `(p / max - mean) / std` is `(p - mean * max) * (1 / (std * max))`: one shift and one scale
/// per channel, repeated over the channel's pixels.
fn per_channel(m: &MeanStd, max_value: Option<f32>, train: &Raw) -> Result<Affine, DataError> {
    let &[channels, h, w] = train.shape.dims() else {
        return Err(err(
            "preset",
            "key `data.normalize`: mean and std are per image channel; this data is flat",
        ));
    };
    if m.mean.len() != channels {
        return Err(err(
            "preset",
            format!(
                "key `data.normalize`: lists {} means and stds, but the images have {channels} \
                 channel{} (set data.channels, or give {channels} of each)",
                m.mean.len(),
                if channels == 1 { "" } else { "s" }
            ),
        ));
    }
    // Every image source has a largest pixel value; only csv lacks one, and it is flat.
    let max = f64::from(max_value.unwrap_or(255.0));
    let per = |values: Vec<f64>| -> Vec<f32> {
        values
            .into_iter()
            .flat_map(|v| std::iter::repeat_n(v as f32, h * w))
            .collect()
    };
    Ok(Affine {
        shift: per(m.mean.iter().map(|x| x * max).collect()),
        scale: per(m.std.iter().map(|s| 1.0 / (s * max)).collect()),
    })
}
