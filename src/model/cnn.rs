//! Convolutional network: blocks of conv (3x3 by default, "same" padding), optional batch norm,
//! ReLU and 2x2 pooling, then an MLP head. Variables: `features.<i>.conv.*`,
//! `features.<i>.bn.*` (with running statistics), `classifier.<j>.*`.

use super::mlp::Mlp;
use super::{Features, Net, ShapeError};
use crate::config::{Activation, CnnConfig, MlpConfig, ModelConfig, Pool};
use tch::{nn, Tensor};

#[derive(Debug)]
struct Block {
    conv: nn::Conv2D,
    bn: Option<nn::BatchNorm>,
}

#[derive(Debug)]
pub struct Cnn {
    input: [i64; 3],
    blocks: Vec<Block>,
    pool: Pool,
    head: Mlp,
}

impl Cnn {
    /// Fails when the feature map would shrink to nothing before the head.
    pub fn new(
        path: &nn::Path,
        cfg: &CnnConfig,
        input: [i64; 3],
        classes: usize,
    ) -> Result<Cnn, ShapeError> {
        let [mut channels, mut h, mut w] = input;
        let (k, s, p) = (cfg.kernel as i64, cfg.stride as i64, cfg.padding() as i64);
        let mut blocks = Vec::new();
        for (i, &out) in cfg.channels.iter().enumerate() {
            let shrink = |n: i64| {
                let n = (n + 2 * p - k).div_euclid(s) + 1;
                if n >= 1 && cfg.pool != Pool::None {
                    n / 2
                } else {
                    n
                }
            };
            (h, w) = (shrink(h), shrink(w));
            if h < 1 || w < 1 {
                return Err(ShapeError {
                    model: ModelConfig::Cnn(cfg.clone()).to_string(),
                    input: format!("[{}, {}, {}]", input[0], input[1], input[2]),
                    reason: format!(
                        "the feature map is empty after conv block {} (kernel {k}, stride {s}, \
                         padding {p}{}); use fewer blocks, more padding or no pooling",
                        i + 1,
                        if cfg.pool == Pool::None {
                            ""
                        } else {
                            ", 2x2 pooling"
                        },
                    ),
                });
            }
            let block = path / "features" / i;
            let conv_cfg = nn::ConvConfig {
                stride: s,
                padding: p,
                bias: !cfg.batch_norm,
                ..Default::default()
            };
            blocks.push(Block {
                conv: nn::conv2d(&block / "conv", channels, out as i64, k, conv_cfg),
                bn: cfg
                    .batch_norm
                    .then(|| nn::batch_norm2d(&block / "bn", out as i64, Default::default())),
            });
            channels = out as i64;
        }
        let head = MlpConfig {
            hidden: cfg.hidden.clone(),
            activation: Activation::Relu,
            dropout: cfg.dropout,
        };
        let flat = (channels * h * w) as usize;
        Ok(Cnn {
            input,
            blocks,
            pool: cfg.pool,
            head: Mlp::under(&(path / "classifier"), &head, flat, classes),
        })
    }
}

impl Net for Cnn {
    fn run(&self, xs: &Tensor, train: bool, mut features: Option<&mut Features>) -> Tensor {
        let [c, h, w] = self.input;
        let mut x = xs.view([-1, c, h, w]);
        for (i, block) in self.blocks.iter().enumerate() {
            x = x.apply(&block.conv);
            if let Some(bn) = &block.bn {
                x = x.apply_t(bn, train);
            }
            x = x.relu();
            x = match self.pool {
                Pool::Max => x.max_pool2d_default(2),
                Pool::Avg => x.avg_pool2d_default(2),
                Pool::None => x,
            };
            if let Some(f) = features.as_deref_mut() {
                f.push((format!("features.{i}"), x.shallow_clone()));
            }
        }
        self.head.run(&x.flatten(1, -1), train, features)
    }

    fn feature_names(&self) -> Vec<String> {
        (0..self.blocks.len())
            .map(|i| format!("features.{i}"))
            .chain(self.head.feature_names())
            .collect()
    }
}
