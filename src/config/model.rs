//! The `model` key of `[teacher]` and `[student]`: which network, and its shape.
//!
//! `model = { kind = "mlp", hidden = [256, 256] }`, `{ kind = "cnn", channels = [32, 64], ... }`
//! or `{ kind = "resnet", depth = 8, width = 4 }`, or a TorchScript file,
//! `{ kind = "torchscript", path = "teacher.pt" }`. Each kind refuses keys it does not know.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ModelConfig {
    Mlp(MlpConfig),
    Cnn(CnnConfig),
    Resnet(ResnetConfig),
    Torchscript(TorchscriptConfig),
}

/// A TorchScript module (`torch.jit.script(m).save(path)`) taking `[n, *input shape]` and
/// returning logits `[n, classes]`; a relative path is taken from the working directory, as
/// `teacher.checkpoint` is. A teacher is loaded and not trained; a student trains the file's
/// weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TorchscriptConfig {
    pub path: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    Relu,
    Gelu,
    Tanh,
}

/// Fully connected layers; also the head of a CNN.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlpConfig {
    pub hidden: Vec<usize>,
    #[serde(default = "relu")]
    pub activation: Activation,
    #[serde(default)]
    pub dropout: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pool {
    Max,
    Avg,
    None,
}

/// Conv blocks (conv, optional batch norm, ReLU, 2x2 pooling), then an MLP head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CnnConfig {
    /// Output channels of each conv block.
    pub channels: Vec<usize>,
    #[serde(default = "three")]
    pub kernel: usize,
    #[serde(default = "one")]
    pub stride: usize,
    /// Zero padding on each side; default `kernel / 2` (same size at stride 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub padding: Option<usize>,
    #[serde(default)]
    pub batch_norm: bool,
    #[serde(default = "max_pool")]
    pub pool: Pool,
    /// Hidden layers of the head, after flattening.
    #[serde(default)]
    pub hidden: Vec<usize>,
    /// Dropout after each hidden layer of the head.
    #[serde(default)]
    pub dropout: f64,
}

impl CnnConfig {
    pub fn padding(&self) -> usize {
        self.padding.unwrap_or(self.kernel / 2)
    }
}

/// CIFAR-style ResNet of basic blocks (He et al. 2016): a 3x3 stem, three stages of
/// `(depth - 2) / 6` blocks at strides 1, 2, 2, global average pooling, a linear classifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResnetConfig {
    /// 8, 14, 20, 32, 44, 56 or 110 (6n + 2).
    pub depth: usize,
    /// 1: stem 16, stages 16-32-64 (resnet8 ... resnet56). k > 1: stem 8k, stages 16k-32k-64k,
    /// the "x4" variants of the distillation literature (resnet8x4: 32, 64-128-256).
    #[serde(default = "one")]
    pub width: usize,
}

/// Depths the CIFAR ResNet family is published in.
pub const RESNET_DEPTHS: [usize; 7] = [8, 14, 20, 32, 44, 56, 110];

impl ResnetConfig {
    /// Stem channels, then the three stages' channels.
    pub fn channels(&self) -> [usize; 4] {
        let w = self.width;
        let stem = if w == 1 { 16 } else { 8 * w };
        [stem, 16 * w, 32 * w, 64 * w]
    }

    pub fn blocks_per_stage(&self) -> usize {
        (self.depth - 2) / 6
    }
}

impl ModelConfig {
    /// The file of a TorchScript module: loaded with its weights, not built here.
    pub fn torchscript_file(&self) -> Option<&Path> {
        match self {
            ModelConfig::Torchscript(t) => Some(&t.path),
            _ => None,
        }
    }

    pub fn is_torchscript(&self) -> bool {
        self.torchscript_file().is_some()
    }
}

impl fmt::Display for ModelConfig {
    /// A short description of the shape: `mlp 256-256`, `cnn 32-64/1024`, `resnet8x4`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |v: &[usize]| v.iter().map(usize::to_string).collect::<Vec<_>>().join("-");
        match self {
            ModelConfig::Mlp(m) => write!(f, "mlp {}", join(&m.hidden)),
            ModelConfig::Cnn(c) => {
                write!(f, "cnn {}", join(&c.channels))?;
                if !c.hidden.is_empty() {
                    write!(f, "/{}", join(&c.hidden))?;
                }
                if c.batch_norm {
                    write!(f, " bn")?;
                }
                Ok(())
            }
            ModelConfig::Resnet(r) if r.width == 1 => write!(f, "resnet{}", r.depth),
            ModelConfig::Resnet(r) => write!(f, "resnet{}x{}", r.depth, r.width),
            ModelConfig::Torchscript(t) => write!(f, "torchscript {}", t.path.display()),
        }
    }
}

fn relu() -> Activation {
    Activation::Relu
}
fn one() -> usize {
    1
}
fn three() -> usize {
    3
}
fn max_pool() -> Pool {
    Pool::Max
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_name_kind_and_shape() {
        let parse = |s: &str| -> ModelConfig {
            toml::from_str::<toml::Table>(s).unwrap()["m"]
                .clone()
                .try_into()
                .unwrap()
        };
        assert_eq!(
            parse("m = { kind = \"mlp\", hidden = [800, 800] }").to_string(),
            "mlp 800-800"
        );
        let cnn = parse("m = { kind = \"cnn\", channels = [32, 64], kernel = 5, hidden = [1024] }");
        assert_eq!(cnn.to_string(), "cnn 32-64/1024");
        let ModelConfig::Cnn(c) = &cnn else { panic!() };
        assert_eq!((c.padding(), c.stride, c.pool), (2, 1, Pool::Max));
        assert_eq!(
            parse("m = { kind = \"resnet\", depth = 8, width = 4 }").to_string(),
            "resnet8x4"
        );
        assert_eq!(
            parse("m = { kind = \"resnet\", depth = 32 }").to_string(),
            "resnet32"
        );
        assert_eq!(
            parse("m = { kind = \"torchscript\", path = \"t.pt\" }").to_string(),
            "torchscript t.pt"
        );
    }

    #[test]
    fn resnet_channels_follow_the_literature() {
        let r = |depth, width| ResnetConfig { depth, width };
        assert_eq!(r(20, 1).channels(), [16, 16, 32, 64]);
        assert_eq!(r(8, 4).channels(), [32, 64, 128, 256]);
        assert_eq!(r(32, 4).blocks_per_stage(), 5);
    }
}
