//! What a method trains beside the student on its two layers' outputs: `hint`'s regressor, or
//! `crd`'s embedding heads with their memory banks. It lives with the phase (the trainer owns
//! it and its optimizer, and checkpoints it), not in the method, which stays a pure loss.

use super::crd::{ContrastHead, ContrastSpec};
use super::hint::Regressor;
use tch::{nn, Device, Tensor};

/// Which head a method asks for (`Distiller::head`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HeadSpec {
    Regressor,
    Contrast(ContrastSpec),
}

#[derive(Debug)]
pub enum Head {
    Regressor(Regressor),
    Contrast(ContrastHead),
}

impl Head {
    /// From one example's output shapes of the two layers; `rows`: the training examples.
    pub fn new(
        spec: HeadSpec,
        device: Device,
        student: &[i64],
        teacher: &[i64],
        rows: i64,
    ) -> Head {
        match spec {
            HeadSpec::Regressor => Head::Regressor(Regressor::new(device, student, teacher)),
            HeadSpec::Contrast(spec) => {
                Head::Contrast(ContrastHead::new(device, spec, student, teacher, rows))
            }
        }
    }

    pub fn vs(&self) -> &nn::VarStore {
        match self {
            Head::Regressor(r) => &r.vs,
            Head::Contrast(c) => &c.vs,
        }
    }

    pub fn vs_mut(&mut self) -> &mut nn::VarStore {
        match self {
            Head::Regressor(r) => &mut r.vs,
            Head::Contrast(c) => &mut c.vs,
        }
    }

    /// Its trainable parameters.
    pub fn params(&self) -> usize {
        trainable_params(self.vs())
    }

    /// The two layers' outputs on the batch's training examples `idx`, as the method's loss
    /// takes them (for `crd`, also the banks' update).
    pub fn map(&self, student: &Tensor, teacher: &Tensor, idx: &Tensor) -> (Tensor, Tensor) {
        match self {
            Head::Regressor(r) => (r.apply(student), r.target(teacher)),
            Head::Contrast(c) => c.odds(student, teacher, idx),
        }
    }
}

/// The number of trainable values in `vs`.
pub fn trainable_params(vs: &nn::VarStore) -> usize {
    vs.trainable_variables().iter().map(Tensor::numel).sum()
}
