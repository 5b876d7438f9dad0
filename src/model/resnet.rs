//! CIFAR-style ResNet of basic blocks (He et al. 2016), as the distillation literature uses it
//! (resnet8 ... resnet110, and the wide "x4" variants). Variables follow the usual PyTorch
//! names: `conv1`, `bn1`, `layer<s>.<b>.{conv1,bn1,conv2,bn2}`, `layer<s>.<b>.downsample.{0,1}`
//! where the shape changes, and `fc`.

use super::{Features, Net};
use crate::config::ResnetConfig;
use tch::{nn, nn::Module, Tensor};

fn conv3x3(path: nn::Path, inputs: i64, outputs: i64, stride: i64) -> nn::Conv2D {
    let cfg = nn::ConvConfig {
        stride,
        padding: 1,
        bias: false,
        ..Default::default()
    };
    nn::conv2d(path, inputs, outputs, 3, cfg)
}

fn bn(path: nn::Path, channels: i64) -> nn::BatchNorm {
    nn::batch_norm2d(path, channels, Default::default())
}

#[derive(Debug)]
struct BasicBlock {
    conv1: nn::Conv2D,
    bn1: nn::BatchNorm,
    conv2: nn::Conv2D,
    bn2: nn::BatchNorm,
    /// 1x1 conv and batch norm when the stride or the channel count changes.
    downsample: Option<(nn::Conv2D, nn::BatchNorm)>,
}

impl BasicBlock {
    fn new(path: &nn::Path, inputs: i64, outputs: i64, stride: i64) -> BasicBlock {
        let downsample = (stride != 1 || inputs != outputs).then(|| {
            let d = path / "downsample";
            let cfg = nn::ConvConfig {
                stride,
                bias: false,
                ..Default::default()
            };
            (
                nn::conv2d(&d / "0", inputs, outputs, 1, cfg),
                bn(&d / "1", outputs),
            )
        });
        BasicBlock {
            conv1: conv3x3(path / "conv1", inputs, outputs, stride),
            bn1: bn(path / "bn1", outputs),
            conv2: conv3x3(path / "conv2", outputs, outputs, 1),
            bn2: bn(path / "bn2", outputs),
            downsample,
        }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let out = x
            .apply(&self.conv1)
            .apply_t(&self.bn1, train)
            .relu()
            .apply(&self.conv2)
            .apply_t(&self.bn2, train);
        let shortcut = match &self.downsample {
            Some((conv, bn)) => x.apply(conv).apply_t(bn, train),
            None => x.shallow_clone(),
        };
        (out + shortcut).relu()
    }
}

#[derive(Debug)]
pub struct Resnet {
    input: [i64; 3],
    conv1: nn::Conv2D,
    bn1: nn::BatchNorm,
    stages: Vec<Vec<BasicBlock>>,
    fc: nn::Linear,
}

impl Resnet {
    pub fn new(path: &nn::Path, cfg: &ResnetConfig, input: [i64; 3], classes: usize) -> Resnet {
        let [stem, widths @ ..] = cfg.channels().map(|c| c as i64);
        let mut inputs = stem;
        let stages = widths
            .iter()
            .enumerate()
            .map(|(s, &width)| {
                let stage = path / format!("layer{}", s + 1);
                (0..cfg.blocks_per_stage())
                    .map(|b| {
                        let stride = if s > 0 && b == 0 { 2 } else { 1 };
                        let block = BasicBlock::new(&(&stage / b), inputs, width, stride);
                        inputs = width;
                        block
                    })
                    .collect()
            })
            .collect();
        Resnet {
            input,
            conv1: conv3x3(path / "conv1", input[0], stem, 1),
            bn1: bn(path / "bn1", stem),
            stages,
            fc: nn::linear(path / "fc", inputs, classes as i64, Default::default()),
        }
    }
}

impl Net for Resnet {
    fn run(&self, xs: &Tensor, train: bool, mut features: Option<&mut Features>) -> Tensor {
        let [c, h, w] = self.input;
        let mut x = xs
            .view([-1, c, h, w])
            .apply(&self.conv1)
            .apply_t(&self.bn1, train)
            .relu();
        for (s, stage) in self.stages.iter().enumerate() {
            x = stage.iter().fold(x, |x, block| block.forward_t(&x, train));
            if let Some(f) = features.as_deref_mut() {
                f.push((format!("layer{}", s + 1), x.shallow_clone()));
            }
        }
        let pooled = x.adaptive_avg_pool2d([1, 1]).flatten(1, -1);
        if let Some(f) = features {
            f.push(("pool".into(), pooled.shallow_clone()));
        }
        self.fc.forward(&pooled)
    }

    fn feature_names(&self) -> Vec<String> {
        ["layer1", "layer2", "layer3", "pool"]
            .map(String::from)
            .to_vec()
    }
}
