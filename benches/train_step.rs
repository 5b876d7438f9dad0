//! One optimizer step, on random data and on the CPU: the teacher's cross-entropy step and the
//! student's soft-distillation step (teacher logits computed beforehand, as the trainer does),
//! both with Adam, for digits-sized and MNIST-sized MLPs.
//!
//! Results land in `target/criterion/train_step/<step>/<workload>/`; scripts/compare-pytorch.sh
//! times the same steps in plain PyTorch and compares. Keep the two in step when changing one.

mod common;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use kd_tui::config::{Activation, MlpConfig};
use kd_tui::distill;
use kd_tui::model::{Mlp, Net};
use kd_tui::train::optim::Optimizer;
use tch::{nn, nn::OptimizerConfig, Device, Kind, Tensor};

/// Model and batch shapes of one benchmarked setting.
struct Workload {
    name: &'static str,
    inputs: usize,
    classes: usize,
    teacher: &'static [usize],
    student: &'static [usize],
    batch: i64,
}

const WORKLOADS: [Workload; 3] = [
    Workload {
        name: "digits",
        inputs: 64,
        classes: 10,
        teacher: &[256, 256],
        student: &[32],
        batch: 64,
    },
    // Between the two: a 256-256 teacher on MNIST-sized inputs.
    Workload {
        name: "mnist-small",
        inputs: 784,
        classes: 10,
        teacher: &[256, 256],
        student: &[32],
        batch: 128,
    },
    Workload {
        name: "mnist",
        inputs: 784,
        classes: 10,
        teacher: &[1200, 1200],
        student: &[64],
        batch: 128,
    },
];
/// As in presets/digits.toml.
const TEACHER_DROPOUT: f64 = 0.2;
const LR: f64 = 1e-3;
const TEMPERATURE: f64 = 4.0;
const ALPHA: f64 = 0.9;

fn mlp(vs: &nn::VarStore, hidden: &[usize], dropout: f64, w: &Workload) -> Mlp {
    let cfg = MlpConfig {
        hidden: hidden.to_vec(),
        activation: Activation::Relu,
        dropout,
    };
    Mlp::new(&vs.root(), &cfg, w.inputs, w.classes)
}

#[allow(clippy::disallowed_macros)] // a benchmark reports on its stderr
fn train_step(c: &mut Criterion) {
    tch::manual_seed(0);
    common::threads_from_env();
    eprintln!(
        "train_step: cpu, {} intra-op threads",
        tch::get_num_threads()
    );
    let mut group = common::group(c, "train_step");
    for w in &WORKLOADS {
        let x = Tensor::randn([w.batch, w.inputs as i64], (Kind::Float, Device::Cpu));
        let y = Tensor::randint(w.classes as i64, [w.batch], (Kind::Int64, Device::Cpu));

        let teacher_vs = nn::VarStore::new(Device::Cpu);
        let teacher = mlp(&teacher_vs, w.teacher, TEACHER_DROPOUT, w);
        let mut opt = nn::Adam::default().build(&teacher_vs, LR).expect("Adam");
        group.bench_function(BenchmarkId::new("teacher_ce_adam", w.name), |b| {
            b.iter(|| opt.backward_step(&distill::cross_entropy(&teacher.forward_t(&x, true), &y)))
        });

        // The same step with kd-tui's own Adam (the one runs use: its state goes into checkpoints).
        let owned_vs = nn::VarStore::new(Device::Cpu);
        let owned = mlp(&owned_vs, w.teacher, TEACHER_DROPOUT, w);
        let cfg = kd_tui::config::load(kd_tui::config::DIGITS_PRESET, "bench", &[])
            .expect("the digits preset")
            .teacher;
        let mut own = Optimizer::new(&cfg, &owned_vs);
        group.bench_function(BenchmarkId::new("teacher_ce_owned_adam", w.name), |b| {
            b.iter(|| {
                let loss = distill::cross_entropy(&owned.forward_t(&x, true), &y);
                own.zero_grad();
                loss.backward();
                own.step();
            })
        });

        let teacher_logits = tch::no_grad(|| teacher.forward_t(&x, false));
        let student_vs = nn::VarStore::new(Device::Cpu);
        let student = mlp(&student_vs, w.student, 0.0, w);
        let mut opt = nn::Adam::default().build(&student_vs, LR).expect("Adam");
        group.bench_function(BenchmarkId::new("student_soft_kd_adam", w.name), |b| {
            b.iter(|| {
                let logits = student.forward_t(&x, true);
                opt.backward_step(&distill::soft_kd_loss(
                    &logits,
                    &teacher_logits,
                    &y,
                    TEMPERATURE,
                    ALPHA,
                ))
            })
        });
        // What training runs on the CPU: the fused step (same loss and gradient).
        group.bench_function(
            BenchmarkId::new("student_soft_kd_fused_adam", w.name),
            |b| {
                b.iter(|| {
                    let logits = student.forward_t(&x, true);
                    let (surrogate, _, _) =
                        distill::soft_kd_fused(&logits, &teacher_logits, &y, TEMPERATURE, ALPHA)
                            .expect("CPU float logits");
                    opt.backward_step(&surrogate)
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, train_step);
criterion_main!(benches);
