//! Models. MLPs for now; variables are named `layers.<i>.weight|bias`, which is what a PyTorch
//! module with `self.layers = nn.ModuleList([nn.Linear(...), ...])` loads by name.

use crate::preset::{Activation, ModelConfig};
use tch::{nn, nn::Module, Tensor};

#[derive(Debug)]
pub struct Mlp {
    layers: Vec<nn::Linear>,
    activation: Activation,
    dropout: f64,
}

impl Mlp {
    pub fn new(vs: &nn::Path, cfg: &ModelConfig, input_dim: usize, num_classes: usize) -> Mlp {
        let sizes: Vec<i64> = std::iter::once(input_dim)
            .chain(cfg.hidden.iter().copied())
            .chain(std::iter::once(num_classes))
            .map(|s| s as i64)
            .collect();
        let layers_path = vs / "layers";
        let layers = sizes
            .windows(2)
            .enumerate()
            .map(|(i, w)| nn::linear(&layers_path / i, w[0], w[1], Default::default()))
            .collect();
        Mlp {
            layers,
            activation: cfg.activation,
            dropout: cfg.dropout,
        }
    }

    /// Logits for a batch `[n, input_dim]`; dropout only when `train`.
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let (last, hidden) = self
            .layers
            .split_last()
            .expect("an MLP has an output layer");
        let h = hidden.iter().fold(xs.shallow_clone(), |h, layer| {
            let h = layer.forward(&h);
            let h = match self.activation {
                Activation::Relu => h.relu(),
                Activation::Gelu => h.gelu("none"),
                Activation::Tanh => h.tanh(),
            };
            if self.dropout > 0.0 {
                h.dropout(self.dropout, train)
            } else {
                h
            }
        });
        last.forward(&h)
    }
}

/// Size of a model's trainable parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ModelSize {
    pub params: usize,
    pub bytes: usize,
}

pub fn size_of(vs: &nn::VarStore) -> ModelSize {
    vs.trainable_variables().iter().fold(
        ModelSize {
            params: 0,
            bytes: 0,
        },
        |acc, t| {
            let n = t.numel();
            ModelSize {
                params: acc.params + n,
                bytes: acc.bytes + n * t.kind().elt_size_in_bytes(),
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preset::ModelKind;

    #[test]
    fn shapes_names_and_parameter_count() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let cfg = ModelConfig {
            kind: ModelKind::Mlp,
            hidden: vec![8, 4],
            activation: Activation::Relu,
            dropout: 0.5,
        };
        let mlp = Mlp::new(&vs.root(), &cfg, 64, 10);
        let out = mlp.forward_t(
            &Tensor::zeros([3, 64], (tch::Kind::Float, tch::Device::Cpu)),
            true,
        );
        assert_eq!(out.size(), vec![3, 10]);
        // (64*8+8) + (8*4+4) + (4*10+10)
        assert_eq!(
            size_of(&vs),
            ModelSize {
                params: 520 + 36 + 50,
                bytes: 4 * 606
            }
        );
        let mut names: Vec<String> = vs.variables().into_keys().collect();
        names.sort();
        assert_eq!(names[0], "layers.0.bias");
        assert_eq!(names[5], "layers.2.weight");
    }

    #[test]
    fn eval_mode_is_deterministic_despite_dropout() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let cfg = ModelConfig {
            kind: ModelKind::Mlp,
            hidden: vec![16],
            activation: Activation::Gelu,
            dropout: 0.5,
        };
        let mlp = Mlp::new(&vs.root(), &cfg, 4, 3);
        let x = Tensor::ones([2, 4], (tch::Kind::Float, tch::Device::Cpu));
        assert!(mlp.forward_t(&x, false).equal(&mlp.forward_t(&x, false)));
    }
}
