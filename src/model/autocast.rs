//! Mixed precision (`precision = "bf16"`): a network whose forward passes run under libtorch's
//! autocast in bfloat16 (matmuls and convolutions in bf16, reductions and normalisation in
//! float32), with float32 weights, gradients and optimizer state. The logits and features it
//! returns are float32, so every loss is computed in float32.

use super::{Features, Net};
use tch::{Device, Kind, Tensor};

extern "C" {
    fn kd_autocast_begin(cuda: i32) -> i32;
    fn kd_autocast_end(cuda: i32);
}

#[derive(Debug)]
pub struct Autocast {
    pub inner: Box<dyn Net>,
    pub device: Device,
}

/// Autocast on the calling thread for the life of the guard.
struct Region(i32);

impl Region {
    fn begin(device: Device) -> Region {
        let cuda = i32::from(device.is_cuda());
        // SAFETY: plain calls into the shim (csrc/autocast.cpp), which catches every exception.
        let refused = unsafe { kd_autocast_begin(cuda) };
        assert_eq!(refused, 0, "libtorch refused bf16 autocast on {device:?}");
        Region(cuda)
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: as above; ends the region `begin` opened on this thread.
        unsafe { kd_autocast_end(self.0) }
    }
}

impl Net for Autocast {
    fn run(&self, xs: &Tensor, train: bool, features: Option<&mut Features>) -> Tensor {
        let mut inner_features = features.as_ref().map(|_| Features::new());
        let logits = {
            let _region = Region::begin(self.device);
            self.inner.run(xs, train, inner_features.as_mut())
        };
        if let (Some(out), Some(inner)) = (features, inner_features) {
            out.extend(
                inner
                    .into_iter()
                    .map(|(name, f)| (name, f.to_kind(Kind::Float))),
            );
        }
        logits.to_kind(Kind::Float)
    }

    fn feature_names(&self) -> Vec<String> {
        self.inner.feature_names()
    }

    fn torchscript(&self) -> Option<&super::Torchscript> {
        self.inner.torchscript()
    }
}
