//! A TorchScript module as a teacher: loaded with its weights into the run's `VarStore` (so
//! that sizes, latency and evaluation treat it like any other model), in evaluation mode and
//! frozen. It takes `[n, *input shape]` and returns logits; it names no features.

use super::{Features, Net};
use crate::protocol::InputShape;
use std::path::Path;
use tch::{nn, IValue, TchError, Tensor, TrainableCModule};

#[derive(Debug)]
pub struct Torchscript {
    module: TrainableCModule,
    /// `[-1, *input shape]`: the view a flat batch takes before the module.
    view: Vec<i64>,
}

impl Torchscript {
    /// Loads `path` onto `vs`'s device, its parameters into `vs` (then frozen), in eval mode.
    pub fn load(vs: &mut nn::VarStore, path: &Path, input: &InputShape) -> Result<Self, TchError> {
        let mut module = TrainableCModule::load(path, vs.root())?;
        module.f_set_eval()?;
        vs.freeze();
        let view = std::iter::once(-1)
            .chain(input.dims().iter().map(|&d| d as i64))
            .collect();
        Ok(Torchscript { module, view })
    }

    /// The module's output for a flat batch, whatever it is (a probe checks it is logits).
    pub fn output(&self, xs: &Tensor) -> Result<IValue, TchError> {
        self.module
            .forward_is(&[IValue::Tensor(xs.view(self.view.as_slice()))])
    }
}

impl Net for Torchscript {
    fn run(&self, xs: &Tensor, _train: bool, _features: Option<&mut Features>) -> Tensor {
        // Always in evaluation mode: the module is a fixed teacher. Set-up ran a probe batch,
        // so a failure here is libtorch's (out of memory, say): a panic as tch's own would be.
        match self.module.forward_ts(&[xs.view(self.view.as_slice())]) {
            Ok(logits) => logits,
            Err(e) => panic!("the TorchScript module failed: {e}"),
        }
    }

    fn feature_names(&self) -> Vec<String> {
        Vec::new()
    }
}
