//! Models: a `Net` trait over the kinds a preset can name (`mlp`, `cnn`, `resnet`), built from
//! the config and the data's input shape. Inputs arrive flat, `[n, prod(shape)]`; a network
//! that wants images views them as `[n, C, H, W]`.

mod autocast;
mod cnn;
mod dropout;
mod mlp;
mod resnet;

use crate::config::{ModelConfig, Precision};
use crate::data::InputShape;
use std::fmt;
use tch::{nn, Device, Tensor};

pub use cnn::Cnn;
pub use dropout::dropout;
pub use mlp::Mlp;
pub use resnet::Resnet;

/// A classifier network. Variables live in the `nn::VarStore` it was built in.
pub trait Net: Send + fmt::Debug {
    /// Logits `[n, classes]`; the named intermediate outputs go to `features` when it is given.
    /// `train` turns on dropout and batch-norm batch statistics (which also update the running
    /// statistics used in evaluation).
    fn run(&self, xs: &Tensor, train: bool, features: Option<&mut Features>) -> Tensor;

    /// Names of the layers whose outputs `forward_features` returns, input to output.
    fn feature_names(&self) -> Vec<String>;

    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.run(xs, train, None)
    }

    /// Logits and the outputs of the named intermediate layers.
    fn forward_features(&self, xs: &Tensor, train: bool) -> (Tensor, Features) {
        let mut features = Vec::new();
        let logits = self.run(xs, train, Some(&mut features));
        (logits, features)
    }
}

/// Named intermediate outputs of a forward pass.
pub type Features = Vec<(String, Tensor)>;

/// Why a model cannot take the data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a {model} model cannot take {input} inputs: {reason}")]
pub struct ShapeError {
    pub model: String,
    pub input: String,
    pub reason: String,
}

/// A built network with its variables.
#[derive(Debug)]
pub struct Model {
    pub vs: nn::VarStore,
    pub net: Box<dyn Net>,
}

impl Model {
    /// Builds `cfg` for inputs of `input` shape and `classes` outputs on `device`.
    pub fn new(
        cfg: &ModelConfig,
        input: &InputShape,
        classes: usize,
        device: Device,
    ) -> Result<Model, ShapeError> {
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let net: Box<dyn Net> = match cfg {
            ModelConfig::Mlp(m) => Box::new(Mlp::new(&root, m, input.numel(), classes)),
            ModelConfig::Cnn(c) => Box::new(Cnn::new(&root, c, image(cfg, input)?, classes)?),
            ModelConfig::Resnet(r) => Box::new(Resnet::new(&root, r, image(cfg, input)?, classes)),
        };
        Ok(Model { vs, net })
    }

    /// The same network with its forward passes in `precision`.
    pub fn with_precision(self, precision: Precision) -> Model {
        match precision {
            Precision::Fp32 => self,
            Precision::Bf16 => Model {
                net: Box::new(autocast::Autocast {
                    inner: self.net,
                    device: self.vs.device(),
                }),
                vs: self.vs,
            },
        }
    }

    /// Logits in evaluation mode, without gradients.
    pub fn logits(&self, xs: &Tensor) -> Tensor {
        tch::no_grad(|| self.net.forward_t(xs, false))
    }

    pub fn size(&self) -> ModelSize {
        size_of(&self.vs)
    }
}

/// Checks that `cfg` can take `input` (before any training).
pub fn check_fits(cfg: &ModelConfig, input: &InputShape) -> Result<(), ShapeError> {
    // libtorch reports a size no memory can hold by a panic inside tch: caught here, before
    // any training, and turned into the error it is.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let built = std::panic::catch_unwind(|| Model::new(cfg, input, 2, Device::Cpu).map(drop));
    std::panic::set_hook(hook);
    built.unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("building it failed");
        let reason = match message.find("you tried to allocate") {
            Some(at) => message[at..].lines().next().unwrap_or(message).to_string(),
            None => message.lines().next().unwrap_or(message).to_string(),
        };
        Err(ShapeError {
            model: cfg.to_string(),
            input: input.to_string(),
            reason: format!("it cannot be allocated: {reason}"),
        })
    })
}

/// `[C, H, W]` of an image input, or why a model that needs images cannot use it.
fn image(cfg: &ModelConfig, input: &InputShape) -> Result<[i64; 3], ShapeError> {
    match input.dims() {
        &[c, h, w] => Ok([c as i64, h as i64, w as i64]),
        _ => Err(ShapeError {
            model: cfg.to_string(),
            input: input.to_string(),
            reason: "it needs images [channels, height, width]; flat feature vectors (a csv \
                     file) suit an mlp"
                .into(),
        }),
    }
}

/// Size of a model's trainable parameters (batch-norm running statistics are not counted).
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
mod tests;
