//! Whether a training step on a batch fits in memory, estimated before it is tried: a live
//! `batch_size` edit that would not fit is refused instead of swapping the machine for a minute.

use crate::model::Model;
use crate::protocol::InputShape;
use tch::{Device, Kind, Tensor};

/// Copies of each activation a step holds per float the named layers output: the values kept
/// for the backward pass, their gradients, and the unnamed intermediates between the layers
/// (activations, pooling, dropout masks). A rough factor: the estimate is meant to stop a batch
/// many times too large, not to pack memory.
const COPIES_PER_ACTIVATION: u128 = 3;

/// Bytes a training step holds per example: the input and every named layer's output (f32).
fn bytes_per_example(model: &Model, input: &InputShape) -> u128 {
    let x = Tensor::zeros([1, input.numel() as i64], (Kind::Float, Device::Cpu));
    let (logits, features) = tch::no_grad(|| {
        model
            .net
            .forward_features(&x.to_device(model.vs.device()), false)
    });
    let floats = input.numel() as u128
        + logits.numel() as u128
        + features
            .iter()
            .map(|(_, f)| f.numel() as u128)
            .sum::<u128>();
    4 * COPIES_PER_ACTIVATION * floats
}

/// Refuses a batch whose step would need more memory than the machine (or cgroup) has left,
/// saying how large a batch fits; a GPU's memory is not estimated here.
pub(super) fn check_batch(model: &Model, input: &InputShape, batch: usize) -> Result<(), String> {
    if model.vs.device() != Device::Cpu {
        return Ok(());
    }
    let Some(available) = crate::memory::available_memory() else {
        return Ok(());
    };
    let per_example = bytes_per_example(model, input).max(1);
    let needed = per_example * batch as u128;
    if needed <= available {
        return Ok(());
    }
    Err(format!(
        "a batch of {batch} needs about {:.1} GB for one step and {:.1} GB of memory are \
         available: at most {} fits",
        needed as f64 / 1e9,
        available as f64 / 1e9,
        available / per_example
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Activation, MlpConfig, ModelConfig};

    /// The batch the refusal says fits, from its text.
    fn fits(refusal: &str) -> usize {
        let at_most = refusal.split("at most ").nth(1).expect(refusal);
        at_most.split(' ').next().unwrap().parse().expect(refusal)
    }

    #[test]
    fn a_batch_past_the_memory_is_refused_with_the_batch_that_fits() {
        let input = InputShape::image(1, 28, 28);
        let cfg = ModelConfig::Mlp(MlpConfig {
            hidden: vec![800, 800],
            activation: Activation::Relu,
            dropout: 0.0,
        });
        let model = Model::new(&cfg, &input, 10, Device::Cpu).unwrap();
        // 3 copies of (784 inputs + 800 + 800 + 10 logits) f32 per example.
        assert_eq!(
            bytes_per_example(&model, &input),
            4 * 3 * (784 + 800 + 800 + 10)
        );
        assert!(
            crate::memory::available_memory().is_some(),
            "Linux says how much memory is available"
        );
        assert_eq!(check_batch(&model, &input, 128), Ok(()));
        let refusal = check_batch(&model, &input, usize::MAX >> 8).unwrap_err();
        assert!(refusal.contains("GB of memory are available"), "{refusal}");
        // What it says fits, fits (with room for what other processes take meanwhile); a
        // batch twice that does not.
        let most = fits(&refusal);
        assert!(most >= 128, "{refusal}");
        assert_eq!(check_batch(&model, &input, most / 2), Ok(()));
        assert!(check_batch(&model, &input, most * 2).is_err());
    }
}
