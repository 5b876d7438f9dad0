//! `hint`: FitNets (Romero et al. 2015). A trainable regressor maps the output of a student layer
//! (the hint layer) onto the output of a teacher layer (the guided layer), and the student learns
//! to make them agree (MSE) — either jointly with soft KD (`hint_epochs = 0`) or in the paper's
//! two stages: `hint_epochs` epochs of the hint loss alone, then soft KD.
//!
//! The regressor has its own variables: it is trained with the student but never counted in or
//! exported with it; checkpoints keep it beside the student, so a resumed run goes on exactly.

use super::features::{LayerNames, STUDENT_LAYER, TEACHER_LAYER};
use super::soft::{Soft, ALPHA, TEMPERATURE};
use super::DistillConfig;
use super::{Batch, Distiller, HeadSpec, MethodSpec, Param, Part, Range};
use tch::{nn, nn::Module, Device, Reduction, Tensor};

const BETA: Param = Param::number(
    "beta",
    1.0,
    Range::NonNegative,
    "weight of the hint loss when trained jointly with soft KD",
);
const HINT_EPOCHS: Param = Param::epochs(
    "hint_epochs",
    0,
    "0: hint and soft KD together; N: N epochs of the hint loss alone, then soft KD",
);

pub const SPEC: MethodSpec = MethodSpec {
    name: "hint",
    summary:
        "Romero et al. 2015 (FitNets): MSE(regressor(student layer), teacher layer), with soft KD",
    params: &[
        TEACHER_LAYER,
        STUDENT_LAYER,
        BETA,
        HINT_EPOCHS,
        TEMPERATURE,
        ALPHA,
    ],
};

pub struct Hint {
    /// The teacher's guided layer and the student's hint layer.
    pub layers: LayerNames,
    pub beta: f64,
    pub hint_epochs: usize,
    pub soft: Soft,
}

pub fn build(cfg: &DistillConfig) -> Hint {
    Hint {
        layers: LayerNames::new(cfg),
        beta: cfg.number(BETA.name),
        hint_epochs: cfg.epochs(HINT_EPOCHS.name),
        soft: Soft {
            temperature: cfg.number(TEMPERATURE.name),
            alpha: cfg.number(ALPHA.name),
            standardize: false,
        },
    }
}

impl Hint {
    /// Two-stage training's first stage: the hint loss alone.
    fn hint_stage(&self, epoch: usize) -> bool {
        epoch <= self.hint_epochs
    }
}

impl Distiller for Hint {
    fn parts(&self, b: &Batch) -> Vec<Part> {
        let hint = || {
            let layers = b.layers.first().expect("hint layers asked for");
            layers.student.mse_loss(&layers.teacher, Reduction::Mean)
        };
        if self.hint_stage(b.epoch) {
            return vec![Part::new("hint", 1.0, hint())];
        }
        let mut parts = self.soft.soft_parts(b.student, b.teacher, b.labels);
        if self.hint_epochs == 0 {
            parts.push(Part::new("hint", self.beta, hint()));
        }
        parts
    }

    fn feature_layers(&self, epoch: usize) -> Option<&LayerNames> {
        (self.hint_epochs == 0 || self.hint_stage(epoch)).then_some(&self.layers)
    }

    fn head(&self) -> Option<HeadSpec> {
        Some(HeadSpec::Regressor)
    }
}

/// Maps the student's hint-layer output onto the teacher's guided-layer output: a 1x1 conv when
/// both are feature maps (average-pooled to the teacher's size when the sizes differ), a linear
/// layer on the flattened outputs otherwise.
#[derive(Debug)]
pub struct Regressor {
    pub vs: nn::VarStore,
    map: Map,
}

#[derive(Debug)]
enum Map {
    Linear(nn::Linear),
    Conv { conv: nn::Conv2D, size: [i64; 2] },
}

impl Regressor {
    /// From one example's output shapes (without the batch dimension).
    pub fn new(device: Device, student: &[i64], teacher: &[i64]) -> Regressor {
        let vs = nn::VarStore::new(device);
        let root = vs.root() / "regressor";
        let map = match (student, teacher) {
            (&[cs, _, _], &[ct, ht, wt]) => Map::Conv {
                conv: nn::conv2d(root, cs, ct, 1, Default::default()),
                size: [ht, wt],
            },
            _ => Map::Linear(nn::linear(
                root,
                student.iter().product(),
                teacher.iter().product(),
                Default::default(),
            )),
        };
        Regressor { vs, map }
    }

    /// The student's output mapped into the teacher's space.
    pub fn apply(&self, student: &Tensor) -> Tensor {
        match &self.map {
            Map::Linear(linear) => linear.forward(&student.flatten(1, -1)),
            Map::Conv { conv, size } => {
                let mapped = conv.forward(student);
                let &[.., h, w] = mapped.size().as_slice() else {
                    unreachable!("a conv output has four dimensions")
                };
                if [h, w] == *size {
                    mapped
                } else {
                    mapped.adaptive_avg_pool2d(size.as_slice())
                }
            }
        }
    }

    /// The teacher's output as the regressor's output is shaped.
    pub fn target(&self, teacher: &Tensor) -> Tensor {
        match self.map {
            Map::Linear(_) => teacher.flatten(1, -1),
            Map::Conv { .. } => teacher.shallow_clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distill::head::trainable_params;
    use crate::distill::test_util::close;
    use crate::distill::LayerOutputs;
    use tch::Kind;

    fn hint(hint_epochs: usize) -> Hint {
        Hint {
            layers: LayerNames {
                teacher: vec!["features.1".into()],
                student: vec!["layers.0".into()],
            },
            beta: 2.0,
            hint_epochs,
            soft: Soft {
                temperature: 4.0,
                alpha: 0.9,
                standardize: false,
            },
        }
    }

    #[test]
    fn regressor_shapes_and_sizes() {
        // An MLP student's vector onto a CNN teacher's map: linear on the flattened map.
        let r = Regressor::new(Device::Cpu, &[32], &[8, 3, 3]);
        assert_eq!(trainable_params(&r.vs), 32 * 72 + 72);
        let out = r.apply(&Tensor::zeros([5, 32], (Kind::Float, Device::Cpu)));
        assert_eq!(out.size(), [5, 72]);
        assert_eq!(
            r.target(&Tensor::zeros([5, 8, 3, 3], (Kind::Float, Device::Cpu)))
                .size(),
            [5, 72]
        );
        // Map onto map: a 1x1 conv, pooled to the teacher's size.
        let r = Regressor::new(Device::Cpu, &[4, 8, 8], &[16, 4, 4]);
        assert_eq!(trainable_params(&r.vs), 4 * 16 + 16);
        let out = r.apply(&Tensor::zeros([2, 4, 8, 8], (Kind::Float, Device::Cpu)));
        assert_eq!(out.size(), [2, 16, 4, 4]);
    }

    #[test]
    fn stages_and_parts() {
        let s = Tensor::from_slice(&[1f32, 0., 0., 1.]).view([2, 2]);
        let t = Tensor::from_slice(&[2f32, 0., 0., 2.]).view([2, 2]);
        let y = Tensor::from_slice(&[0i64, 1]);
        let mapped = Tensor::from_slice(&[1f32, 2., 3., 4.]).view([2, 2]);
        let guided = Tensor::from_slice(&[1f32, 2., 3., 6.]).view([2, 2]);
        let batch = |epoch| Batch {
            student: &s,
            teacher: &t,
            labels: &y,
            epoch,
            layers: vec![LayerOutputs {
                student: mapped.shallow_clone(),
                teacher: guided.shallow_clone(),
            }],
        };
        // MSE: (0 + 0 + 0 + 4) / 4 = 1.
        let two_stage = hint(2);
        assert!(two_stage.feature_layers(2).is_some() && two_stage.feature_layers(3).is_none());
        let first = two_stage.parts(&batch(1));
        assert_eq!(first.iter().map(|p| p.name).collect::<Vec<_>>(), ["hint"]);
        close(&first[0].value, 1.0);
        let names = |parts: Vec<Part>| parts.iter().map(|p| p.name).collect::<Vec<_>>();
        assert_eq!(names(two_stage.parts(&batch(3))), ["ce", "kd"]);
        let joint = hint(0);
        assert!(joint.feature_layers(7).is_some());
        let parts = joint.parts(&batch(7));
        assert_eq!(names(joint.parts(&batch(7))), ["ce", "kd", "hint"]);
        assert_eq!(parts[2].weight, 2.0);
    }
}
