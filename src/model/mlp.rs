//! Fully connected network. Variables are named `layers.<i>.weight|bias`, which is what a
//! PyTorch module with `self.layers = nn.ModuleList([nn.Linear(...), ...])` loads by name.

use super::{Features, Net};
use crate::config::{Activation, MlpConfig};
use tch::{nn, nn::Module, Tensor};

#[derive(Debug)]
pub struct Mlp {
    layers: Vec<nn::Linear>,
    activation: Activation,
    dropout: f64,
    /// The path the layers live under, for feature names.
    prefix: String,
}

impl Mlp {
    /// Layers `<path>/<i>` from `inputs` through `cfg.hidden` to `outputs`.
    pub fn new(path: &nn::Path, cfg: &MlpConfig, inputs: usize, outputs: usize) -> Mlp {
        Mlp::under(&(path / "layers"), cfg, inputs, outputs)
    }

    /// The same, with the layers directly under `path` (a CNN's `classifier`).
    pub fn under(path: &nn::Path, cfg: &MlpConfig, inputs: usize, outputs: usize) -> Mlp {
        let sizes: Vec<i64> = std::iter::once(inputs)
            .chain(cfg.hidden.iter().copied())
            .chain(std::iter::once(outputs))
            .map(|s| s as i64)
            .collect();
        let layers = sizes
            .windows(2)
            .enumerate()
            .map(|(i, w)| nn::linear(path / i, w[0], w[1], Default::default()))
            .collect();
        Mlp {
            layers,
            activation: cfg.activation,
            dropout: cfg.dropout,
            prefix: path.components().collect::<Vec<_>>().join("."),
        }
    }
}

fn activate(activation: Activation, h: &Tensor) -> Tensor {
    match activation {
        Activation::Relu => h.relu(),
        Activation::Gelu => h.gelu("none"),
        Activation::Tanh => h.tanh(),
    }
}

impl Net for Mlp {
    /// Logits; each hidden layer's output (after activation) goes to `features` when given.
    fn run(&self, xs: &Tensor, train: bool, mut features: Option<&mut Features>) -> Tensor {
        let (last, hidden) = self
            .layers
            .split_last()
            .expect("an MLP has an output layer");
        let h = hidden
            .iter()
            .enumerate()
            .fold(xs.shallow_clone(), |h, (i, layer)| {
                let h = activate(self.activation, &layer.forward(&h));
                if let Some(f) = features.as_deref_mut() {
                    f.push((format!("{}.{i}", self.prefix), h.shallow_clone()));
                }
                super::dropout(&h, self.dropout, train)
            });
        last.forward(&h)
    }

    fn feature_names(&self) -> Vec<String> {
        (0..self.layers.len() - 1)
            .map(|i| format!("{}.{i}", self.prefix))
            .collect()
    }
}
