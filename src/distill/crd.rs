//! `crd`: contrastive representation distillation (Tian, Krishnan and Isola, ICLR 2020). Each
//! side's chosen layer output, flattened, goes through a linear embedding head and is
//! L2-normalised (`v_s`, `v_t`, `dim` wide). A memory bank per side holds an embedding of every
//! training example. For example `i` of a batch, its own row of the other side's bank and
//! `negatives` rows drawn uniformly from it (one draw for the whole batch) are scored `h = exp(<v, m> / T) / Z` (`Z` fixed on
//! the first batch to make `h` about a probability: the mean score times the bank's rows), and
//! NCE tells the positive from the noise. With `c = negatives / rows`, as the authors' code,
//!
//! `L = -mean_i [ log(h_pos / (h_pos + c)) + sum_negatives log(c / (h_neg + c)) ]`,
//!
//! once with the student's embedding against the teacher's bank and once the other way round.
//! After each step the examples' bank rows move towards the new embeddings:
//! `m <- normalize(momentum * m + (1 - momentum) * v)`.
//!
//! Loss: `ce_weight * CE + beta * (L_s + L_t)`, parts `ce` and `crd`; beta 0.8 as mdistiller.
//! The heads train with the student (kd-tui's optimizer), the banks are state: both are saved in
//! checkpoints and neither is exported with the student, like `hint`'s regressor.

use super::features::{flat, unit_rows, with_ce, LayerNames, CE_WEIGHT};
use super::features::{STUDENT_LAYER, TEACHER_LAYER};
use super::{Batch, DistillConfig, Distiller, HeadSpec, MethodSpec, Param, Part, Range};
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

const BETA: Param = Param::number(
    "beta",
    0.8,
    Range::NonNegative,
    "weight of the contrastive loss (mdistiller: 0.8)",
);
const DIM: Param = Param::count("dim", 128, "width of the embeddings and the banks' rows");
const NEGATIVES: Param = Param::count(
    "negatives",
    16384,
    "negatives drawn per example (the paper: 16384; at most the training set's size)",
);
const NCE_TEMPERATURE: Param = Param::number(
    "nce_temperature",
    0.07,
    Range::Positive,
    "temperature of the embeddings' scores (the paper: 0.07)",
)
.fixed();
const MOMENTUM: Param = Param::number(
    "momentum",
    0.5,
    Range::Fraction,
    "how much of its old row a bank keeps at each update (the paper: 0.5)",
)
.fixed();

pub const SPEC: MethodSpec = MethodSpec {
    name: "crd",
    summary: "Tian et al. 2020: ce_weight * CE + beta * NCE of embeddings against memory banks",
    params: &[
        TEACHER_LAYER,
        STUDENT_LAYER,
        BETA,
        CE_WEIGHT,
        DIM,
        NEGATIVES,
        NCE_TEMPERATURE,
        MOMENTUM,
    ],
};

pub struct Crd {
    pub layers: LayerNames,
    pub beta: f64,
    pub ce_weight: f64,
    pub head: ContrastSpec,
}

/// The settings of the heads and banks, fixed for a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ContrastSpec {
    pub dim: i64,
    pub negatives: i64,
    pub temperature: f64,
    pub momentum: f64,
}

pub fn build(cfg: &DistillConfig) -> Crd {
    Crd {
        layers: LayerNames::new(cfg),
        beta: cfg.number(BETA.name),
        ce_weight: cfg.number(CE_WEIGHT.name),
        head: ContrastSpec {
            dim: cfg.number(DIM.name) as i64,
            negatives: cfg.number(NEGATIVES.name) as i64,
            temperature: cfg.number(NCE_TEMPERATURE.name),
            momentum: cfg.number(MOMENTUM.name),
        },
    }
}

/// CRD's NCE loss of one side's scores as odds against the noise, `o = h / c` (`[b, 1 + k]`,
/// the positive first): `-mean_i [ log(o_pos / (o_pos + 1)) + sum_neg log(1 / (o_neg + 1)) ]`,
/// the authors' `ContrastLoss` of `h` with their `eps` left out.
pub fn nce_loss(odds: &Tensor) -> Tensor {
    let positive = odds.select(1, 0);
    let negatives = odds.narrow(1, 1, odds.size()[1] - 1);
    let log_d1 = (&positive / (&positive + 1.0)).log();
    let log_d0 = -(negatives + 1.0).log();
    -(log_d1.sum(Kind::Float) + log_d0.sum(Kind::Float)) / odds.size()[0] as f64
}

/// The embedding heads and the memory banks, in a `VarStore` of their own: the heads
/// trainable, the banks and `Z` not, so that checkpoints hold all of it.
#[derive(Debug)]
pub struct ContrastHead {
    pub vs: nn::VarStore,
    student: nn::Linear,
    teacher: nn::Linear,
    /// `[rows, dim]` each; `z`: `[Z_s, Z_t]`, negative until the first batch sets them.
    student_bank: Tensor,
    teacher_bank: Tensor,
    z: Tensor,
    spec: ContrastSpec,
}

impl ContrastHead {
    /// Heads from the two layers' output shapes (one example's), banks of `rows` examples
    /// initialised uniformly in `±1 / sqrt(dim / 3)` as the authors' code.
    pub fn new(
        device: Device,
        spec: ContrastSpec,
        student: &[i64],
        teacher: &[i64],
        rows: i64,
    ) -> ContrastHead {
        let vs = nn::VarStore::new(device);
        let root = vs.root() / "crd";
        let linear = |name, inputs: &[i64]| {
            nn::linear(
                &root / name,
                inputs.iter().product(),
                spec.dim,
                Default::default(),
            )
        };
        let (student_head, teacher_head) = (linear("embed_s", student), linear("embed_t", teacher));
        let bound = 1.0 / (spec.dim as f64 / 3.0).sqrt();
        // Not trainable, but variables of the store: checkpoints save and restore them.
        let bank = |name| {
            let bank = root.zeros_no_train(name, &[rows, spec.dim]);
            let _ = tch::no_grad(|| bank.shallow_clone().uniform_(-bound, bound));
            bank
        };
        let (student_bank, teacher_bank) = (bank("bank_s"), bank("bank_t"));
        let z = root.zeros_no_train("z", &[2]);
        let _ = tch::no_grad(|| z.shallow_clone().fill_(-1.0));
        ContrastHead {
            vs,
            student: student_head,
            teacher: teacher_head,
            student_bank,
            teacher_bank,
            z,
            spec,
        }
    }

    /// The two sides' odds (`nce_loss`'s input) for the batch's examples `idx` (rows of the
    /// training set), then the banks' update with this batch's embeddings.
    pub fn odds(&self, student: &Tensor, teacher: &Tensor, idx: &Tensor) -> (Tensor, Tensor) {
        let embed = |head: &nn::Linear, x: &Tensor| unit_rows(&head.forward(&flat(x)));
        let (v_s, v_t) = (embed(&self.student, student), embed(&self.teacher, teacher));
        let rows = self.student_bank.size()[0];
        let k = self.spec.negatives.min(rows);
        // `k` rows drawn uniformly (the batch's seeded stream), the negatives of every example
        // of the batch: each example's are uniform draws as in the paper, and one `b x k`
        // product replaces gathering `b x k x dim` rows (a gigabyte at the paper's 16384).
        let drawn = Tensor::randint(rows, [k], (Kind::Int64, idx.device()));
        let noise = k as f64 / rows as f64;
        // The batch's own rows of each bank: the other side's positives, and this side's rows
        // to move. Copies (`index_select`): the banks change below, and backward needs the
        // rows as they were.
        let own = [&self.student_bank, &self.teacher_bank].map(|bank| bank.index_select(0, idx));
        let side = |v: &Tensor, bank: &Tensor, positives: &Tensor, which: i64| {
            let positive = (v * positives).sum_dim_intlist(1, true, Kind::Float);
            let negative = v.matmul(&bank.index_select(0, &drawn).tr());
            let h = (Tensor::cat(&[positive, negative], 1) / self.spec.temperature).exp();
            let z = tch::no_grad(|| {
                if self.z.double_value(&[which]) < 0.0 {
                    let mean = h.mean(Kind::Float).double_value(&[]);
                    let _ = self.z.get(which).fill_(mean * rows as f64);
                }
                self.z.double_value(&[which])
            });
            h / (z * noise)
        };
        let odds = (
            side(&v_s, &self.teacher_bank, &own[1], 0),
            side(&v_t, &self.student_bank, &own[0], 1),
        );
        tch::no_grad(|| {
            let momentum = self.spec.momentum;
            let banks = [(&self.student_bank, &v_s), (&self.teacher_bank, &v_t)];
            for ((bank, v), rows) in banks.into_iter().zip(own) {
                let moved = rows * momentum + v * (1.0 - momentum);
                let _ = bank.shallow_clone().index_copy_(0, idx, &unit_rows(&moved));
            }
        });
        odds
    }
}

impl Distiller for Crd {
    fn parts(&self, b: &Batch) -> Vec<Part> {
        with_ce(b, self.ce_weight, |l| {
            let loss = nce_loss(&l.student) + nce_loss(&l.teacher);
            vec![Part::new("crd", self.beta, loss)]
        })
    }

    fn feature_layers(&self, _epoch: usize) -> Option<&LayerNames> {
        Some(&self.layers)
    }

    fn head(&self) -> Option<HeadSpec> {
        Some(HeadSpec::Contrast(self.head))
    }
}

#[cfg(test)]
#[path = "crd_tests.rs"]
mod tests;
