//! A TorchScript module as a model: loaded with its state into the run's `VarStore` under the
//! module's own names (`bn1.running_mean`), so that optimizers, checkpoints, best-by-validation
//! copies, sizes and evaluation treat it like any other model. Its parameters are the module's
//! own tensors: training them trains the module, whose file can then be written again. It takes
//! `[n, *input shape]` and returns logits; it names no features.

use super::{Features, Net};
use crate::protocol::InputShape;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use tch::{nn, CModule, IValue, TchError, Tensor};

extern "C" {
    fn kd_module_state(
        module: *mut c_void,
        data: *mut c_void,
        f: extern "C" fn(*mut c_void, *const c_char, *mut c_void, c_int),
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;
}

#[derive(Debug)]
pub struct Torchscript {
    /// The module and whether it is in training mode: switching needs `&mut`, and a forward
    /// pass (`&self`) switches only when the mode it asks for differs.
    module: Mutex<Moded>,
    /// `[-1, *input shape]`: the view a flat batch takes before the module.
    view: Vec<i64>,
}

#[derive(Debug)]
struct Moded {
    module: CModule,
    train: bool,
}

impl Moded {
    fn set_train(&mut self, train: bool) -> Result<(), TchError> {
        if self.train != train {
            match train {
                true => self.module.f_set_train()?,
                false => self.module.f_set_eval()?,
            }
            self.train = train;
        }
        Ok(())
    }
}

impl Torchscript {
    /// Loads `path` onto `vs`'s device, in evaluation mode, its parameters (trainable where
    /// the file has them so) and buffers into `vs`.
    pub fn load(vs: &nn::VarStore, path: &Path, input: &InputShape) -> Result<Self, TchError> {
        let module = CModule::load_on_device(path, vs.device())?;
        for (name, tensor, parameter) in state(&module)? {
            let mut parts: Vec<&str> = name.split('.').collect();
            let last = parts.pop().unwrap_or_default();
            let at = parts.into_iter().fold(vs.root(), |p, part| p.sub(part));
            let trainable = parameter && tensor.requires_grad();
            // The module keeps using the same tensor: the store holds a handle on it.
            let _handle = at.add(last, tensor, trainable);
        }
        let mut moded = Moded {
            module,
            train: true,
        };
        moded.set_train(false)?;
        let view = std::iter::once(-1)
            .chain(input.dims().iter().map(|&d| d as i64))
            .collect();
        Ok(Torchscript {
            module: Mutex::new(moded),
            view,
        })
    }

    fn moded(&self) -> std::sync::MutexGuard<'_, Moded> {
        self.module.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The module's output for a flat batch in evaluation mode, whatever it is (a probe checks
    /// it is logits).
    pub fn output(&self, xs: &Tensor) -> Result<IValue, TchError> {
        let mut moded = self.moded();
        moded.set_train(false)?;
        moded
            .module
            .forward_is(&[IValue::Tensor(xs.view(self.view.as_slice()))])
    }

    /// The module as a TorchScript file's bytes, with its current tensors, in evaluation mode
    /// (the mode `torch.jit.load` gives it back in).
    pub fn to_bytes(&self) -> std::io::Result<Vec<u8>> {
        let mut moded = self.moded();
        moded.set_train(false).map_err(std::io::Error::other)?;
        module_bytes(&moded.module)
    }
}

impl Net for Torchscript {
    fn run(&self, xs: &Tensor, train: bool, _features: Option<&mut Features>) -> Tensor {
        // Set-up ran a probe batch, so a failure here is libtorch's (out of memory, say): a
        // panic as tch's own would be.
        let mut moded = self.moded();
        let out = moded
            .set_train(train)
            .and_then(|()| moded.module.forward_ts(&[xs.view(self.view.as_slice())]));
        out.unwrap_or_else(|e| panic!("the TorchScript module failed: {e}"))
    }

    fn feature_names(&self) -> Vec<String> {
        Vec::new()
    }

    fn torchscript(&self) -> Option<&Torchscript> {
        Some(self)
    }
}

// tch's module handle is one pointer to libtorch's `torch::jit::Module`, its only field.
const _: () = assert!(std::mem::size_of::<CModule>() == std::mem::size_of::<*mut c_void>());

/// The module's parameters, then its buffers: `(name, tensor, is a parameter)`, each tensor
/// the module's own.
fn state(module: &CModule) -> Result<Vec<(String, Tensor, bool)>, TchError> {
    extern "C" fn push(data: *mut c_void, name: *const c_char, t: *mut c_void, parameter: c_int) {
        // SAFETY: `data` is the vector `state` passes, `name` a C string and `t` a new
        // `at::Tensor*` that the shim hands over.
        let out = unsafe { &mut *data.cast::<Vec<(String, Tensor, bool)>>() };
        let name = unsafe { CStr::from_ptr(name) }
            .to_string_lossy()
            .into_owned();
        out.push((name, unsafe { Tensor::from_ptr(t.cast()) }, parameter != 0));
    }
    let mut out: Vec<(String, Tensor, bool)> = Vec::new();
    let mut err = [0 as c_char; 512];
    // SAFETY: a `CModule` is exactly its handle (asserted above), which the shim
    // (csrc/jit.cpp) reads as the module it points to; the shim catches every exception.
    let failed = unsafe {
        let handle = *(module as *const CModule).cast::<*mut c_void>();
        kd_module_state(
            handle,
            (&mut out as *mut Vec<(String, Tensor, bool)>).cast(),
            push,
            err.as_mut_ptr(),
            err.len(),
        )
    };
    match failed {
        0 => Ok(out),
        _ => Err(TchError::Torch(
            // SAFETY: the shim wrote a NUL-terminated message into `err`.
            unsafe { CStr::from_ptr(err.as_ptr()) }
                .to_string_lossy()
                .into_owned(),
        )),
    }
}

/// A module as TorchScript bytes. libtorch's writer aborts the process when a write fails
/// (a full disk: `unexpected pos` thrown from a destructor), so it writes to memory, a memfd,
/// and the bytes go to disk through a write that reports failure.
pub fn module_bytes(module: &CModule) -> std::io::Result<Vec<u8>> {
    use std::io::{Read, Seek};
    let fd = rustix::fs::memfd_create("kd-tui-module", rustix::fs::MemfdFlags::CLOEXEC)?;
    let mut file = std::fs::File::from(fd);
    let path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&file));
    module.save(&path).map_err(std::io::Error::other)?;
    let mut bytes = Vec::new();
    file.rewind()?;
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}
