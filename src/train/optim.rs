//! Adam, AdamW and SGD with momentum over tensors the run holds (tch's optimizers keep their
//! moment buffers private), so that a checkpoint carries the optimizer's state and a resumed run
//! continues exactly where it stopped.
//!
//! The arithmetic is PyTorch's (`torch.optim`, default options: betas 0.9 / 0.999, eps 1e-8,
//! no amsgrad; SGD without dampening or Nesterov):
//! - Adam:  g += wd·p;  m ← lerp(m, g, 1 − β1);  v ← β2·v + (1 − β2)·g²;
//!   p −= lr / (1 − β1ᵗ) · m / (√v / √(1 − β2ᵗ) + ε)
//! - AdamW: p ← p·(1 − lr·wd), then Adam's update without the g += wd·p.
//! - SGD:   g += wd·p;  b ← μ·b + g (b = g at the first step);  p −= lr·b (b = g when μ = 0).
//!
//! Adam and AdamW run libtorch's fused kernel over all parameters at once (`csrc/optim.cpp`:
//! `_fused_adam_`, what `torch.optim.Adam(fused=True)` runs); SGD runs here, a few ops per
//! parameter.

use crate::config::{NetConfig, OptimizerKind};
use std::collections::BTreeMap;
use tch::{nn, Tensor};

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPS: f64 = 1e-8;

extern "C" {
    #[allow(clippy::too_many_arguments)]
    fn kd_fused_adam(
        params: *mut *mut std::ffi::c_void,
        grads: *mut *mut std::ffi::c_void,
        exp_avgs: *mut *mut std::ffi::c_void,
        exp_avg_sqs: *mut *mut std::ffi::c_void,
        step: *mut std::ffi::c_void,
        n: usize,
        lr: f64,
        beta1: f64,
        beta2: f64,
        weight_decay: f64,
        eps: f64,
        decoupled: i32,
        err: *mut std::ffi::c_char,
        err_len: usize,
    ) -> i32;
    fn kd_clear_grads(
        params: *mut *mut std::ffi::c_void,
        n: usize,
        err: *mut std::ffi::c_char,
        err_len: usize,
    ) -> i32;
}

/// Panics with the shim's message when an entry point failed (`failed` != 0).
fn check(failed: i32, err: &[std::ffi::c_char], what: &str) {
    if failed != 0 {
        // SAFETY: the shim wrote a NUL-terminated message within `err`.
        let message = unsafe { std::ffi::CStr::from_ptr(err.as_ptr()) };
        panic!("{what} failed: {}", message.to_string_lossy());
    }
}

pub struct Optimizer {
    kind: OptimizerKind,
    lr: f64,
    weight_decay: f64,
    momentum: f64,
    /// The trainable variables, by name.
    params: Vec<(String, Tensor)>,
    /// Per parameter: Adam's (m, v), or SGD's momentum buffer (first slot).
    state: Vec<Vec<Tensor>>,
    /// Steps taken.
    steps: u64,
}

impl Optimizer {
    pub fn new(cfg: &NetConfig, vs: &nn::VarStore) -> Optimizer {
        let mut params: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let slots = match cfg.optimizer {
            OptimizerKind::Adam | OptimizerKind::Adamw => 2,
            OptimizerKind::Sgd if cfg.momentum > 0.0 => 1,
            OptimizerKind::Sgd => 0,
        };
        let state = params
            .iter()
            .map(|(_, p)| (0..slots).map(|_| p.zeros_like()).collect())
            .collect();
        Optimizer {
            kind: cfg.optimizer,
            lr: cfg.lr,
            weight_decay: cfg.weight_decay,
            momentum: cfg.momentum,
            params,
            state,
            steps: 0,
        }
    }

    pub fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    /// The gradients of the parameters that have one (the same ones on every rank).
    pub fn grads(&self) -> Vec<Tensor> {
        self.params
            .iter()
            .map(|(_, p)| p.grad())
            .filter(Tensor::defined)
            .collect()
    }

    /// Drops the gradients (PyTorch's `zero_grad(set_to_none=True)`): backward then writes
    /// fresh ones rather than adding into zeroed buffers.
    pub fn zero_grad(&mut self) {
        let mut params: Vec<_> = self
            .params
            .iter_mut()
            .map(|(_, p)| p.as_mut_ptr())
            .collect();
        let mut err = vec![0 as std::ffi::c_char; 512];
        // SAFETY: live `at::Tensor`s held by `self` for the call; the shim catches C++
        // exceptions and reports them in `err`.
        let failed = unsafe {
            kd_clear_grads(
                params.as_mut_ptr().cast(),
                params.len(),
                err.as_mut_ptr(),
                err.len(),
            )
        };
        check(failed, &err, "dropping the gradients");
    }

    pub fn step(&mut self) {
        self.steps += 1;
        match self.kind {
            OptimizerKind::Adam | OptimizerKind::Adamw => self.fused_adam_step(),
            OptimizerKind::Sgd => self.sgd_step(),
        }
    }

    /// Adam or AdamW over every parameter with a gradient, in libtorch's fused kernel.
    fn fused_adam_step(&mut self) {
        let mut grads = Vec::with_capacity(self.params.len());
        let (mut params, mut exp_avgs, mut exp_avg_sqs) = (Vec::new(), Vec::new(), Vec::new());
        for ((_, p), state) in self.params.iter_mut().zip(&mut self.state) {
            let g = p.grad();
            if !g.defined() {
                continue;
            }
            grads.push(g);
            let [m, v] = &mut state[..] else {
                unreachable!("Adam keeps two moments")
            };
            params.push(p.as_mut_ptr());
            exp_avgs.push(m.as_mut_ptr());
            exp_avg_sqs.push(v.as_mut_ptr());
        }
        let mut grad_ptrs: Vec<_> = grads.iter_mut().map(Tensor::as_mut_ptr).collect();
        // Nothing to update (e.g. a stage that trains only `hint`'s regressor).
        let Some(device) = grads.first().map(Tensor::device) else {
            return;
        };
        let mut step = Tensor::from_slice(&[self.steps as f32]).to_device(device);
        let mut err = vec![0 as std::ffi::c_char; 512];
        // SAFETY: every pointer is a live `at::Tensor` held by `self` or `grads` for the call;
        // the shim catches C++ exceptions and reports them in `err`.
        let failed = unsafe {
            kd_fused_adam(
                params.as_mut_ptr().cast(),
                grad_ptrs.as_mut_ptr().cast(),
                exp_avgs.as_mut_ptr().cast(),
                exp_avg_sqs.as_mut_ptr().cast(),
                step.as_mut_ptr().cast(),
                params.len(),
                self.lr,
                BETA1,
                BETA2,
                self.weight_decay,
                EPS,
                i32::from(self.kind == OptimizerKind::Adamw),
                err.as_mut_ptr(),
                err.len(),
            )
        };
        check(failed, &err, "libtorch's fused Adam");
    }

    fn sgd_step(&mut self) {
        let t = self.steps;
        let (lr, wd) = (self.lr, self.weight_decay);
        tch::no_grad(|| {
            for ((_, p), state) in self.params.iter().zip(&mut self.state) {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let mut p = p.shallow_clone();
                let g = if wd != 0.0 { g + &p * wd } else { g };
                match state.first_mut() {
                    Some(b) => {
                        if t == 1 {
                            b.copy_(&g);
                        } else {
                            let _ = b.g_mul_scalar_(self.momentum).g_add_(&g);
                        }
                        let _ = p.g_add_(&(&*b * -lr));
                    }
                    None => {
                        let _ = p.g_add_(&(g * -lr));
                    }
                }
            }
        });
    }

    /// The state as named tensors (for a checkpoint's safetensors file) and the step count.
    pub fn state(&self) -> (Vec<(String, Tensor)>, u64) {
        let tensors = self
            .params
            .iter()
            .zip(&self.state)
            .flat_map(|((name, _), slots)| {
                slots
                    .iter()
                    .enumerate()
                    .map(move |(i, t)| (format!("{i}.{name}"), t.shallow_clone()))
            })
            .collect();
        (tensors, self.steps)
    }

    /// Takes back a state written by `state`; a tensor missing or of another shape is an error.
    pub fn load_state(&mut self, tensors: Vec<(String, Tensor)>, steps: u64) -> Result<(), String> {
        let mut by_name: BTreeMap<String, Tensor> = tensors.into_iter().collect();
        for ((name, _), slots) in self.params.iter().zip(&mut self.state) {
            for (i, slot) in slots.iter_mut().enumerate() {
                let key = format!("{i}.{name}");
                let saved = by_name
                    .remove(&key)
                    .ok_or_else(|| format!("optimizer state `{key}` is missing"))?;
                if saved.size() != slot.size() {
                    return Err(format!(
                        "optimizer state `{key}` has shape {:?}, the model needs {:?}",
                        saved.size(),
                        slot.size()
                    ));
                }
                tch::no_grad(|| slot.copy_(&saved));
            }
        }
        self.steps = steps;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn::{Module, OptimizerConfig};
    use tch::{Device, Kind};

    /// Five steps of ours and of libtorch's on the same model and data: the same weights.
    fn matches_libtorch(kind: OptimizerKind, weight_decay: f64, momentum: f64) {
        let text = crate::config::DIGITS_PRESET;
        let mut cfg = crate::config::load(text, "t", &[]).unwrap().teacher;
        (cfg.optimizer, cfg.weight_decay, cfg.momentum, cfg.lr) =
            (kind, weight_decay, momentum, 0.01);
        tch::manual_seed(3);
        let x = Tensor::randn([16, 5], (Kind::Float, Device::Cpu));
        let y = Tensor::randn([16, 3], (Kind::Float, Device::Cpu));
        let ours_vs = nn::VarStore::new(Device::Cpu);
        let ours_net = nn::linear(ours_vs.root() / "l", 5, 3, Default::default());
        let mut theirs_vs = nn::VarStore::new(Device::Cpu);
        let theirs_net = nn::linear(theirs_vs.root() / "l", 5, 3, Default::default());
        theirs_vs.copy(&ours_vs).unwrap();
        let mut ours = Optimizer::new(&cfg, &ours_vs);
        let mut theirs = match kind {
            OptimizerKind::Adam => nn::Adam {
                wd: weight_decay,
                ..Default::default()
            }
            .build(&theirs_vs, 0.01),
            OptimizerKind::Adamw => nn::AdamW {
                wd: weight_decay,
                ..Default::default()
            }
            .build(&theirs_vs, 0.01),
            OptimizerKind::Sgd => nn::Sgd {
                momentum,
                wd: weight_decay,
                ..Default::default()
            }
            .build(&theirs_vs, 0.01),
        }
        .unwrap();
        for _ in 0..5 {
            let loss = (ours_net.forward(&x) - &y).square().mean(Kind::Float);
            ours.zero_grad();
            loss.backward();
            ours.step();
            theirs.backward_step(&(theirs_net.forward(&x) - &y).square().mean(Kind::Float));
        }
        for (name, t) in theirs_vs.variables() {
            let o = &ours_vs.variables()[&name];
            let diff = (o - &t).abs().max().double_value(&[]);
            assert!(
                diff < 1e-6,
                "{kind:?} wd {weight_decay} momentum {momentum}: {name} differs by {diff}"
            );
        }
    }

    #[test]
    fn adam_adamw_and_sgd_take_libtorchs_steps() {
        matches_libtorch(OptimizerKind::Adam, 0.0, 0.0);
        matches_libtorch(OptimizerKind::Adam, 0.1, 0.0);
        matches_libtorch(OptimizerKind::Adamw, 0.1, 0.0);
        matches_libtorch(OptimizerKind::Sgd, 0.0, 0.0);
        matches_libtorch(OptimizerKind::Sgd, 0.01, 0.9);
    }

    #[test]
    fn its_state_round_trips() {
        let cfg = crate::config::load(crate::config::DIGITS_PRESET, "t", &[])
            .unwrap()
            .teacher;
        let vs = nn::VarStore::new(Device::Cpu);
        let net = nn::linear(vs.root() / "l", 4, 2, Default::default());
        let mut opt = Optimizer::new(&cfg, &vs);
        let loss = net
            .forward(&Tensor::ones([3, 4], (Kind::Float, Device::Cpu)))
            .sum(Kind::Float);
        loss.backward();
        opt.step();
        let (state, steps) = opt.state();
        assert_eq!((state.len(), steps), (4, 1));
        let mut again = Optimizer::new(&cfg, &vs);
        again.load_state(state, steps).unwrap();
        for ((_, a), (_, b)) in opt.state().0.iter().zip(again.state().0.iter()) {
            assert!(a.equal(b));
        }
        let e = again.load_state(Vec::new(), 1).unwrap_err();
        assert!(e.contains("is missing"), "{e}");
    }

    #[test]
    fn a_step_without_gradients_changes_nothing_and_zero_grad_drops_them() {
        let cfg = crate::config::load(crate::config::DIGITS_PRESET, "t", &[])
            .unwrap()
            .teacher;
        let vs = nn::VarStore::new(Device::Cpu);
        let net = nn::linear(vs.root() / "l", 4, 2, Default::default());
        let before = net.ws.copy();
        let mut opt = Optimizer::new(&cfg, &vs);
        opt.step();
        assert!(net.ws.equal(&before));
        net.forward(&Tensor::ones([3, 4], (Kind::Float, Device::Cpu)))
            .sum(Kind::Float)
            .backward();
        assert!(net.ws.grad().defined());
        opt.zero_grad();
        assert!(!net.ws.grad().defined() && opt.grads().is_empty());
    }
}
