//! One training step of a TorchScript student, as a run takes it on the CPU: the module loaded
//! into a `VarStore` (`model::Torchscript`), its forward pass in training mode, the fused
//! soft-distillation loss against teacher logits computed beforehand, and kd-tui's own Adam.
//!
//! `KD_TUI_BENCH_MODULE=student.pt` names the module (a scripted MNIST-sized CNN taking
//! `[n, 1, 28, 28]`); scripts/bench_torchscript_step.py writes it, runs this bench and the same
//! module's step in PyTorch eager by turns, and prints the ratios. Results land in
//! `target/criterion/torchscript_step/`.

mod common;

use criterion::{criterion_group, criterion_main, Criterion};
use kd_tui::distill;
use kd_tui::model::{Net, Torchscript};
use kd_tui::protocol::InputShape;
use kd_tui::train::optim::Optimizer;
use tch::{nn, Device, Kind, Tensor};

/// As scripts/bench_torchscript_step.py: an MNIST batch, soft distillation as in the presets.
const BATCH: i64 = 128;
const CLASSES: i64 = 10;
const TEMPERATURE: f64 = 4.0;
const ALPHA: f64 = 0.9;

fn torchscript_step(c: &mut Criterion) {
    let path = std::env::var_os("KD_TUI_BENCH_MODULE")
        .expect("KD_TUI_BENCH_MODULE=student.pt: run scripts/bench_torchscript_step.py");
    common::threads_from_env();
    tch::manual_seed(0);
    let vs = nn::VarStore::new(Device::Cpu);
    let student = Torchscript::load(&vs, path.as_ref(), &InputShape::image(1, 28, 28))
        .expect("the student module");
    let x = Tensor::randn([BATCH, 28 * 28], (Kind::Float, Device::Cpu));
    let y = Tensor::randint(CLASSES, [BATCH], (Kind::Int64, Device::Cpu));
    let teacher_logits = Tensor::randn([BATCH, CLASSES], (Kind::Float, Device::Cpu));
    let cfg = kd_tui::config::load(kd_tui::config::DIGITS_PRESET, "bench", &[])
        .expect("the digits preset")
        .student;
    let mut opt = Optimizer::new(&cfg, &vs);
    let mut group = common::group(c, "torchscript_step");
    group.bench_function("student_soft_kd_fused_adam", |b| {
        b.iter(|| {
            let logits = student.forward_t(&x, true);
            let (surrogate, _, _) =
                distill::soft_kd_fused(&logits, &teacher_logits, &y, TEMPERATURE, ALPHA)
                    .expect("CPU float logits");
            opt.zero_grad();
            surrogate.backward();
            opt.step();
        })
    });
    group.finish();
}

criterion_group!(benches, torchscript_step);
criterion_main!(benches);
