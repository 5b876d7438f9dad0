//! Training-batch augmentation on the run's device: random shifts (zero-filled; Hinton's
//! jitter, and CIFAR's random crop with padding, which is the same thing) and horizontal flips.
//! The random draws come from a seeded `StdRng`, so a seed replays a run exactly.

use crate::config::Augment;
use crate::protocol::InputShape;
use rand::{rngs::StdRng, Rng};
use tch::{Kind, Tensor};

/// Why a preset's augmentation cannot apply to the data.
pub fn check(augment: &Augment, input: &InputShape) -> Result<(), String> {
    if augment.is_none() || input.dims().len() == 3 {
        Ok(())
    } else {
        Err(format!(
            "shift and flip move pixels of images; this data is flat {input} features"
        ))
    }
}

/// Augments a batch `[n, C*H*W]` of images of `shape`; returns the same layout.
pub fn apply(xs: &Tensor, shape: &InputShape, augment: &Augment, rng: &mut StdRng) -> Tensor {
    let &[c, h, w] = shape.dims() else {
        return xs.shallow_clone();
    };
    let (c, h, w) = (c as i64, h as i64, w as i64);
    let n = xs.size()[0];
    let device = xs.device();
    let mut x = xs.view([n, c, h, w]);
    if augment.shift > 0 {
        let p = augment.shift as i64;
        let mut offsets = |len: i64| {
            let draws: Vec<i64> = (0..n).map(|_| rng.random_range(0..=2 * p)).collect();
            let base = Tensor::arange(len, (Kind::Int64, device));
            base.unsqueeze(0) + Tensor::from_slice(&draws).to_device(device).unsqueeze(1)
        };
        // out[b, :, i, j] = padded[b, :, i + dy_b, j + dx_b]: two gathers, no per-example loop.
        let (rows, cols) = (offsets(h), offsets(w));
        let padded = x.constant_pad_nd([p, p, p, p]);
        let rows = rows.view([n, 1, h, 1]).expand([n, c, h, w + 2 * p], false);
        let cols = cols.view([n, 1, 1, w]).expand([n, c, h, w], false);
        x = padded.gather(2, &rows, false).gather(3, &cols, false);
    }
    if augment.flip {
        let flips: Vec<bool> = (0..n).map(|_| rng.random_bool(0.5)).collect();
        let mask = Tensor::from_slice(&flips)
            .to_device(device)
            .view([n, 1, 1, 1]);
        x = x.flip([3]).where_self(&mask, &x);
    }
    x.reshape([n, c * h * w])
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn shape() -> InputShape {
        InputShape::image(1, 5, 5)
    }

    /// Four 5x5 images, each with one bright pixel at (2, 2).
    fn dots() -> Tensor {
        let mut v = vec![0f32; 4 * 25];
        for b in 0..4 {
            v[b * 25 + 12] = 1.0;
        }
        Tensor::from_slice(&v).view([4, 25])
    }

    fn bright_positions(x: &Tensor) -> Vec<i64> {
        Vec::try_from(x.argmax(1, false)).unwrap()
    }

    #[test]
    fn shifts_move_pixels_within_the_bound_and_replay_from_the_seed() {
        let aug = Augment {
            shift: 2,
            flip: false,
        };
        let a = apply(&dots(), &shape(), &aug, &mut StdRng::seed_from_u64(1));
        let b = apply(&dots(), &shape(), &aug, &mut StdRng::seed_from_u64(1));
        assert!(a.equal(&b), "same seed, same batch");
        let c = apply(&dots(), &shape(), &aug, &mut StdRng::seed_from_u64(2));
        assert!(!a.equal(&c), "another seed moves pixels elsewhere");
        // A shift of at most 2 keeps the centre pixel inside: it moves, it is not lost.
        assert_eq!(a.sum(Kind::Float).double_value(&[]), 4.0);
        let moved = bright_positions(&a);
        assert!(moved.iter().any(|&p| p != 12), "{moved:?}");
        for p in moved {
            let (row, col) = (p / 5, p % 5);
            assert!((0..5).contains(&row) && (0..5).contains(&col));
        }
    }

    #[test]
    fn a_shift_moves_the_whole_image_and_fills_with_zeros() {
        // One image, a ramp; whatever shift was drawn, the output is the ramp moved by (dy, dx).
        let ramp = Tensor::arange(25, (Kind::Float, tch::Device::Cpu)).view([1, 25]) + 1.0;
        let aug = Augment {
            shift: 1,
            flip: false,
        };
        for seed in 0..8 {
            let out: Vec<f32> = Vec::try_from(
                apply(&ramp, &shape(), &aug, &mut StdRng::seed_from_u64(seed)).view([-1]),
            )
            .unwrap();
            // Find the shift from where value 13 (the centre, (2, 2)) went.
            let at = out.iter().position(|&v| v == 13.0).unwrap() as i64;
            let (dy, dx) = (at / 5 - 2, at % 5 - 2);
            for (k, &v) in out.iter().enumerate() {
                let (i, j) = (k as i64 / 5 - dy, k as i64 % 5 - dx);
                let expected = if (0..5).contains(&i) && (0..5).contains(&j) {
                    (i * 5 + j + 1) as f32
                } else {
                    0.0
                };
                assert_eq!(v, expected, "seed {seed} shift ({dy}, {dx}) at {k}");
            }
        }
    }

    #[test]
    fn flips_mirror_rows_and_nothing_else() {
        let ramp = Tensor::arange(25, (Kind::Float, tch::Device::Cpu))
            .view([1, 25])
            .repeat([16, 1]);
        let aug = Augment {
            shift: 0,
            flip: true,
        };
        let out = apply(&ramp, &shape(), &aug, &mut StdRng::seed_from_u64(3));
        let mirrored = ramp.view([16, 1, 5, 5]).flip([3]).view([16, 25]);
        let mut flipped = 0;
        for b in 0..16 {
            let row = out.get(b);
            if row.equal(&mirrored.get(b)) {
                flipped += 1;
            } else {
                assert!(
                    row.equal(&ramp.get(b)),
                    "image {b} is neither kept nor mirrored"
                );
            }
        }
        assert!(
            (1..16).contains(&flipped),
            "about half are flipped: {flipped}"
        );
    }

    #[test]
    fn channels_of_a_colour_image_move_together() {
        // 3 channels of a 4x6 ramp, channel k holding (k + 1) x the ramp: whatever was drawn,
        // each channel of the output is still (k + 1) x channel 0.
        let shape = InputShape::image(3, 4, 6);
        let ramp = Tensor::arange(24, (Kind::Float, tch::Device::Cpu)) + 1.0;
        let image = Tensor::cat(&[&ramp, &(&ramp * 2.0), &(&ramp * 3.0)], 0).view([1, 72]);
        let batch = image.repeat([8, 1]);
        let aug = Augment {
            shift: 2,
            flip: true,
        };
        let out = apply(&batch, &shape, &aug, &mut StdRng::seed_from_u64(5)).view([8, 3, 24]);
        let first = out.select(1, 0);
        assert!(!out.equal(&batch.view([8, 3, 24])), "something moved");
        for k in 1..3 {
            assert!(
                out.select(1, k).equal(&(&first * (k + 1) as f64)),
                "channel {k}"
            );
        }
    }

    #[test]
    fn flat_data_is_refused() {
        let aug = Augment {
            shift: 2,
            flip: false,
        };
        assert!(check(&aug, &InputShape::flat(10))
            .unwrap_err()
            .contains("flat [10]"));
        assert!(check(&aug, &shape()).is_ok());
        assert!(check(&Augment::default(), &InputShape::flat(10)).is_ok());
    }
}
