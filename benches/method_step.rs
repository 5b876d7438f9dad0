//! One distilled optimizer step per method, on the same CNN pair and batch: the cost each
//! method adds over soft distillation. As the trainer does, the teacher's logits and layer
//! outputs are computed once beforehand; a step is the student's forward pass (with its layer
//! outputs for a method on features), the method's loss, backward and kd-tui's Adam.
//!
//! Results land in `target/criterion/method_step/<method>/`. The ratios to `soft` are what the
//! issue asks for: `cargo bench --bench method_step` then read each `estimates.json`'s median.

mod common;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use kd_tui::config::{self, Override, Preset};
use kd_tui::distill::{self, Batch, Head, LayerOutputs, Method};
use kd_tui::model::{feature, Model};
use kd_tui::protocol::InputShape;
use kd_tui::train::optim::Optimizer;
use tch::{Device, Kind, Tensor};

/// MNIST-sized images in batches of 128, a CNN teacher 10x the student's width.
const BATCH: i64 = 128;
const CLASSES: usize = 10;
/// MNIST's training split: the rows of `crd`'s memory banks.
const TRAIN_ROWS: i64 = 54_000;
const MODELS: [&str; 2] = [
    r#"teacher.model={ kind = "cnn", channels = [16, 32], kernel = 3, hidden = [128] }"#,
    r#"student.model={ kind = "cnn", channels = [4, 8], kernel = 3, hidden = [16] }"#,
];
/// The last convolution's feature maps on both sides (what `at` needs; the others take them
/// flattened).
const LAYERS: [&str; 2] = [
    r#"distill.teacher_layer="features.1""#,
    r#"distill.student_layer="features.1""#,
];

/// The digits preset with the CNN pair and `method` at its paper's defaults.
fn preset(method: Method) -> Preset {
    let name = format!("distill.method=\"{}\"", method.as_str());
    let on_features = method.on_features();
    let mut set: Vec<&str> = MODELS.to_vec();
    set.push(&name);
    if on_features {
        set.extend(LAYERS);
    }
    let set: Vec<Override> = set
        .iter()
        .map(|s| s.parse().expect("an override"))
        .collect();
    config::load(config::DIGITS_PRESET, "bench", &set).expect("the bench's preset")
}

fn method_step(c: &mut Criterion) {
    tch::manual_seed(0);
    common::threads_from_env();
    let input = InputShape::image(1, 28, 28);
    let x = Tensor::randn([BATCH, 1, 28, 28], (Kind::Float, Device::Cpu));
    let y = Tensor::randint(CLASSES as i64, [BATCH], (Kind::Int64, Device::Cpu));
    let mut group = common::group(c, "method_step");
    // Every method that learns from the teacher's outputs or layers, `hint` (a regressor over
    // the same layers) and `hard` (argmax labels) aside.
    let methods = Method::ALL
        .into_iter()
        .filter(|m| !matches!(m, Method::Hard | Method::Hint));
    for method in methods {
        let preset = preset(method);
        let teacher = Model::new(&preset.teacher.model, &input, CLASSES, Device::Cpu)
            .expect("the teacher takes 28x28 images");
        let student = Model::new(&preset.student.model, &input, CLASSES, Device::Cpu)
            .expect("the student takes 28x28 images");
        let distiller = distill::build(&preset.distill);
        // One layer pair: the methods on features as this benchmark's preset names them.
        let layers = distiller
            .feature_layers(1)
            .map(|names| (names.teacher[0].clone(), names.student[0].clone()));
        let (teacher_logits, teacher_layer) = tch::no_grad(|| {
            let (logits, features) = teacher.net.forward_features(&x, false);
            let layer = layers.as_ref().map(|(t, _)| feature(features, t));
            (logits, layer)
        });
        let mut opt = Optimizer::new(&preset.student, &student.vs);
        // `crd`'s heads and banks (over MNIST's 54,000 training examples), with their optimizer.
        let head = distiller.head().map(|spec| {
            let shape = |t: &Tensor| t.size()[1..].to_vec();
            let student_layer = tch::no_grad(|| {
                let name = &layers
                    .as_ref()
                    .expect("a method with a head names layers")
                    .1;
                feature(student.net.forward_features(&x, false).1, name)
            });
            let teacher_layer = teacher_layer.as_ref().expect("the teacher's layer");
            let head = Head::new(
                spec,
                Device::Cpu,
                &shape(&student_layer),
                &shape(teacher_layer),
                TRAIN_ROWS,
            );
            let opt = Optimizer::new(&preset.student, head.vs());
            (head, opt)
        });
        let mut head = head;
        let idx = Tensor::randint(TRAIN_ROWS, [BATCH], (Kind::Int64, Device::Cpu));
        group.bench_function(BenchmarkId::from_parameter(method.as_str()), |b| {
            b.iter(|| {
                let (logits, layer_outputs) = match (&layers, &teacher_layer) {
                    (Some((_, s)), Some(t)) => {
                        let (logits, features) = student.net.forward_features(&x, true);
                        let (student, teacher) = match &head {
                            Some((head, _)) => head.map(&feature(features, s), t, &idx),
                            None => (feature(features, s), t.shallow_clone()),
                        };
                        (logits, vec![LayerOutputs { student, teacher }])
                    }
                    _ => (student.net.forward_t(&x, true), Vec::new()),
                };
                let batch = Batch {
                    student: &logits,
                    teacher: &teacher_logits,
                    labels: &y,
                    epoch: 1,
                    layers: layer_outputs,
                };
                let loss = distiller.step_loss(&batch).objective();
                opt.zero_grad();
                if let Some((_, head_opt)) = head.as_mut() {
                    head_opt.zero_grad();
                }
                loss.backward();
                opt.step();
                if let Some((_, head_opt)) = head.as_mut() {
                    head_opt.step();
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, method_step);
criterion_main!(benches);
