//! Models: a `Net` trait over the kinds a preset can name (`mlp`, `cnn`, `resnet`, or a
//! `torchscript` file, loaded and not built), built from
//! the config and the data's input shape. Inputs arrive flat, `[n, prod(shape)]`; a network
//! that wants images views them as `[n, C, H, W]`.

mod autocast;
mod cnn;
mod dropout;
mod mlp;
mod resnet;
pub mod select;
mod torchscript;

use crate::config::{ModelConfig, Precision};
use crate::protocol::{InputShape, ModelSize};
use std::fmt;
use tch::{nn, Device, Tensor};

pub use cnn::Cnn;
pub use dropout::dropout;
pub use mlp::Mlp;
pub use resnet::Resnet;
pub use torchscript::{module_bytes, Torchscript};

/// A classifier network. Variables live in the `nn::VarStore` it was built in.
pub trait Net: Send + fmt::Debug {
    /// Logits `[n, classes]`; the named intermediate outputs go to `features` when it is given.
    /// `train` turns on dropout and batch-norm batch statistics (which also update the running
    /// statistics used in evaluation).
    fn run(&self, xs: &Tensor, train: bool, features: Option<&mut Features>) -> Tensor;

    /// Names of the layers whose outputs `forward_features` returns, input to output.
    fn feature_names(&self) -> Vec<String>;

    /// The TorchScript module this network is, if it is one: its file is the trained model.
    fn torchscript(&self) -> Option<&Torchscript> {
        None
    }

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

/// The named output of a forward pass (a name checked before training).
pub fn feature(features: Features, name: &str) -> Tensor {
    features_named(&features, &[name]).remove(0)
}

/// The named outputs of a forward pass, in the order of `names` (checked before training).
pub fn features_named(features: &Features, names: &[&str]) -> Vec<Tensor> {
    let one = |name: &&str| {
        features
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.shallow_clone())
            .unwrap_or_else(|| panic!("layer `{name}` was checked before training"))
    };
    names.iter().map(one).collect()
}

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
            ModelConfig::Torchscript(t) => Box::new(
                Torchscript::load(&vs, &t.path, input).map_err(|e| ShapeError {
                    model: cfg.to_string(),
                    input: input.to_string(),
                    reason: format!("it cannot be loaded: {}", first_line(&e.to_string())),
                })?,
            ),
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

/// Bytes a run holds per parameter: the weights, their gradients, Adam's two moments, the
/// best-by-validation copy and a checkpoint's.
const BYTES_PER_PARAMETER: u128 = 6 * 4;

/// An MLP's parameters, from its widths alone (nothing allocated).
fn mlp_parameters(hidden: &[usize], inputs: usize, classes: usize) -> u128 {
    let widths: Vec<u128> = std::iter::once(inputs)
        .chain(hidden.iter().copied())
        .chain(std::iter::once(classes))
        .map(|w| w as u128)
        .collect();
    widths.windows(2).map(|w| (w[0] + 1) * w[1]).sum()
}

/// Refuses an MLP whose parameters (with what training keeps beside them) cannot fit in the
/// memory there is, before anything is allocated.
fn check_memory(cfg: &ModelConfig, input: &InputShape) -> Result<(), ShapeError> {
    let ModelConfig::Mlp(mlp) = cfg else {
        return Ok(());
    };
    let parameters = mlp_parameters(&mlp.hidden, input.numel(), 2);
    let needed = parameters * BYTES_PER_PARAMETER;
    match crate::memory::available_memory() {
        Some(available) if needed > available => Err(ShapeError {
            model: cfg.to_string(),
            input: input.to_string(),
            reason: format!(
                "its {parameters} parameters need about {:.1} GB with their gradients, \
                 optimizer state and copies, and {:.1} GB of memory are available",
                needed as f64 / 1e9,
                available as f64 / 1e9
            ),
        }),
        _ => Ok(()),
    }
}

/// Checks that `cfg` can take `input` (before any training).
pub fn check_fits(cfg: &ModelConfig, input: &InputShape) -> Result<(), ShapeError> {
    if cfg.is_torchscript() {
        // Nothing is built: set-up loads the file and runs a probe batch through it instead.
        return Ok(());
    }
    check_memory(cfg, input)?;
    // libtorch reports a size no memory can hold by a panic inside tch: caught here, before
    // any training, and turned into the error it is.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let built = std::panic::catch_unwind(|| Model::new(cfg, input, 2, Device::Cpu).map(drop));
    std::panic::set_hook(hook);
    built.unwrap_or_else(|payload| {
        let message = panic_text(payload.as_ref()).unwrap_or("building it failed");
        let reason = allocation_failure(message).unwrap_or_else(|| first_line(message));
        Err(ShapeError {
            model: cfg.to_string(),
            input: input.to_string(),
            reason: format!("it cannot be allocated: {reason}"),
        })
    })
}

/// The message a panic carries, if it is text.
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
}

/// libtorch's report of an allocation it could not make (tch panics with it), from `you tried
/// to allocate` to the end of its line.
pub fn allocation_failure(message: &str) -> Option<&str> {
    message
        .find("you tried to allocate")
        .map(|at| first_line(&message[at..]))
}

/// Up to the first line break, without libtorch's C++ backtrace (escaped in a debug-printed
/// error, or not).
fn first_line(text: &str) -> &str {
    text.split(['\n', '\\']).next().unwrap_or(text)
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
