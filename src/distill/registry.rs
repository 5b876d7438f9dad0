//! The method registry: the names a preset can give (`Method`), the `[distill]` table
//! (`DistillConfig`), each method's declaration (`spec`) and its loss (`build`). Adding a method
//! is a file beside this one, a `Method` variant and an arm in `spec` and `build`.

use super::{at, crd, dist, dkd, hard, hint, pkt, rkd, soft, sp, Distiller, Param};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Cross-entropy against the teacher's argmax labels.
    Hard,
    /// Hinton et al.: temperature-softened KL mixed with cross-entropy.
    Soft,
    /// FitNets: a regressed student layer learns a teacher layer, with soft KD.
    Hint,
    /// Decoupled KD: target-class and non-target-class parts weighted apart.
    Dkd,
    /// DIST: Pearson-correlation relations between and within classes.
    Dist,
    /// Attention transfer: the spatial attention maps of two feature maps.
    At,
    /// Similarity-preserving: the batch's similarity matrices of two layers.
    Sp,
    /// Relational KD: the batch's pairwise distances and angles of two layers.
    Rkd,
    /// Probabilistic knowledge transfer: the batch's cosine-similarity distributions.
    Pkt,
    /// Contrastive representation distillation: embeddings against memory banks, NCE.
    Crd,
}

impl Method {
    pub const ALL: [Method; 10] = [
        Method::Hard,
        Method::Soft,
        Method::Hint,
        Method::Dkd,
        Method::Dist,
        Method::At,
        Method::Sp,
        Method::Rkd,
        Method::Pkt,
        Method::Crd,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Hard => "hard",
            Method::Soft => "soft",
            Method::Hint => "hint",
            Method::Dkd => "dkd",
            Method::Dist => "dist",
            Method::At => "at",
            Method::Sp => "sp",
            Method::Rkd => "rkd",
            Method::Pkt => "pkt",
            Method::Crd => "crd",
        }
    }

    /// Whether the method learns from named layers (`teacher_layer`, `student_layer`).
    pub fn on_features(self) -> bool {
        spec(self).param("teacher_layer").is_some()
    }

    /// Whether the method's layers must both output feature maps (`[c, h, w]` per example).
    pub fn needs_feature_maps(self) -> bool {
        self == Method::At
    }
}

/// `[distill]`: the method and its hyperparameters. Which keys a method takes, their defaults
/// and allowed values come from its declaration in `distill/` (`distill::spec`); a loaded
/// preset holds every one of them, defaults filled in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistillConfig {
    pub method: Method,
    #[serde(flatten)]
    pub params: BTreeMap<String, toml::Value>,
}

impl DistillConfig {
    /// A declared number (validated presets hold every declared hyperparameter).
    pub fn number(&self, name: &str) -> f64 {
        match self.params.get(name) {
            Some(toml::Value::Float(f)) => *f,
            Some(toml::Value::Integer(i)) => *i as f64,
            other => panic!("distill.{name} is a declared number, found {other:?}"),
        }
    }

    /// A declared count of epochs.
    pub fn epochs(&self, name: &str) -> usize {
        match self.params.get(name) {
            Some(toml::Value::Integer(i)) => *i as usize,
            other => panic!("distill.{name} is a declared count, found {other:?}"),
        }
    }

    /// A declared switch.
    pub fn switch(&self, name: &str) -> bool {
        match self.params.get(name) {
            Some(toml::Value::Boolean(b)) => *b,
            other => panic!("distill.{name} is a declared switch, found {other:?}"),
        }
    }

    /// A declared name (a layer).
    pub fn text(&self, name: &str) -> &str {
        match self.params.get(name) {
            Some(toml::Value::String(s)) => s,
            other => panic!("distill.{name} is a declared name, found {other:?}"),
        }
    }

    /// A declared list of names (layers): one name, or each of a list's.
    pub fn names(&self, name: &str) -> Vec<&str> {
        match self.params.get(name) {
            Some(toml::Value::String(s)) => vec![s],
            Some(toml::Value::Array(names)) => names.iter().filter_map(|n| n.as_str()).collect(),
            other => panic!("distill.{name} is a declared list of names, found {other:?}"),
        }
    }

    /// Fills in the defaults of the method's hyperparameters that the preset leaves out, and
    /// writes numbers given as integers (`temperature = 4`) as the floats they are.
    pub fn complete(&mut self) {
        for p in spec(self.method).params {
            match (self.params.get_mut(p.name), p.default_value()) {
                (None, Some(default)) => {
                    self.params.insert(p.name.to_string(), default);
                }
                (Some(value @ toml::Value::Integer(_)), Some(toml::Value::Float(_))) => {
                    if let Ok(canonical) = p.check(value) {
                        *value = canonical;
                    }
                }
                _ => {}
            }
        }
    }

    /// After a switch of method: keeps only the hyperparameters in `keep` (given explicitly
    /// along with the switch). The old method's settings do not carry over, since a name can
    /// mean another thing in another method (`alpha` weighs soft KD's KL term but DKD's TCKD).
    pub fn reset_for_switch(&mut self, keep: &[&str]) {
        self.params.retain(|k, _| keep.contains(&k.as_str()));
    }
}

/// A method's declaration: what it is and which hyperparameters it takes.
pub struct MethodSpec {
    pub name: &'static str,
    /// One line: what the student learns.
    pub summary: &'static str,
    pub params: &'static [Param],
}

impl MethodSpec {
    pub fn param(&self, name: &str) -> Option<&'static Param> {
        self.params.iter().find(|p| p.name == name)
    }
}

/// The declaration of a method.
pub fn spec(method: Method) -> &'static MethodSpec {
    match method {
        Method::Hard => &hard::SPEC,
        Method::Soft => &soft::SPEC,
        Method::Hint => &hint::SPEC,
        Method::Dkd => &dkd::SPEC,
        Method::Dist => &dist::SPEC,
        Method::At => &at::SPEC,
        Method::Sp => &sp::SPEC,
        Method::Rkd => &rkd::SPEC,
        Method::Pkt => &pkt::SPEC,
        Method::Crd => &crd::SPEC,
    }
}

/// The method a (live, validated) preset names, with its hyperparameters.
pub fn build(cfg: &DistillConfig) -> Box<dyn Distiller> {
    match cfg.method {
        Method::Hard => Box::new(hard::Hard),
        Method::Soft => Box::new(soft::build(cfg)),
        Method::Hint => Box::new(hint::build(cfg)),
        Method::Dkd => Box::new(dkd::build(cfg)),
        Method::Dist => Box::new(dist::build(cfg)),
        Method::At => Box::new(at::build(cfg)),
        Method::Sp => Box::new(sp::build(cfg)),
        Method::Rkd => Box::new(rkd::build(cfg)),
        Method::Pkt => Box::new(pkt::build(cfg)),
        Method::Crd => Box::new(crd::build(cfg)),
    }
}
