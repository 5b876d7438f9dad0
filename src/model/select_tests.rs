//! Weight selection: the teacher's own shape receives the teacher's weights, smaller students
//! the hand-computed slices, and the pairs that cannot map are refused.

use super::*;
use crate::config::{Activation, CnnConfig, MlpConfig, Pool, ResnetConfig};
use crate::model::Model;
use crate::protocol::InputShape;
use tch::{Device, Kind};

fn mlp(hidden: &[usize]) -> ModelConfig {
    ModelConfig::Mlp(MlpConfig {
        hidden: hidden.to_vec(),
        activation: Activation::Relu,
        dropout: 0.0,
    })
}

fn cnn(channels: &[usize], kernel: usize, hidden: &[usize]) -> ModelConfig {
    ModelConfig::Cnn(CnnConfig {
        channels: channels.to_vec(),
        kernel,
        stride: 1,
        padding: None,
        batch_norm: true,
        pool: Pool::Max,
        hidden: hidden.to_vec(),
        dropout: 0.0,
    })
}

fn resnet(depth: usize, width: usize) -> ModelConfig {
    ModelConfig::Resnet(ResnetConfig { depth, width })
}

/// A model whose every entry is distinct (running statistics included): a value tells where it
/// came from.
fn marked(cfg: &ModelConfig, input: &InputShape, classes: usize) -> Model {
    let model = Model::new(cfg, input, classes, Device::Cpu).unwrap();
    let mut vars: Vec<_> = model.vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for (i, (_, mut v)) in vars.into_iter().enumerate() {
        let values =
            Tensor::arange(v.numel() as i64, (Kind::Float, Device::Cpu)) + 1000.0 * i as f64;
        tch::no_grad(|| v.copy_(&values.view(v.size().as_slice())));
    }
    model
}

/// `student` built, then selected out of `teacher`.
fn selected(teacher: &Model, t: &ModelConfig, s: &ModelConfig, input: &InputShape) -> Model {
    let student = Model::new(s, input, 3, Device::Cpu).unwrap();
    select(&teacher.vs, t, &student.vs, s).unwrap();
    student
}

/// The teacher's `name` with `rows` of dimension 0 and `cols` of dimension 1 (all when empty).
fn slice(model: &Model, name: &str, rows: &[i64], cols: &[i64]) -> Tensor {
    let mut t = model.vs.variables()[name].shallow_clone();
    for (dim, keep) in [(0, rows), (1, cols)] {
        if !keep.is_empty() {
            t = t.index_select(dim, &Tensor::from_slice(keep));
        }
    }
    t
}

fn assert_var(student: &Model, name: &str, expected: &Tensor) {
    let got = &student.vs.variables()[name];
    assert!(got.equal(expected), "{name}: {got} != {expected}");
}

#[test]
fn uniform_follows_the_papers_rule() {
    assert_eq!(uniform(5, 5), [0, 1, 2, 3, 4]);
    assert_eq!(uniform(8, 4), [0, 2, 4, 6]);
    assert_eq!(uniform(8, 1), [0]);
    // round(linspace(0, 7, 3)) = round([0, 3.5, 7]), half to even
    assert_eq!(uniform(8, 3), [0, 4, 7]);
    // round([0, 1.5, 3, 4.5, 6])
    assert_eq!(uniform(7, 5), [0, 2, 3, 4, 6]);
    assert_eq!(uniform(10, 4), [0, 3, 6, 9]);
    assert_eq!(grouped(4, 2, 3), [0, 1, 2, 6, 7, 8]);
}

#[test]
fn the_teachers_own_shape_receives_exactly_its_weights() {
    let flat = InputShape::flat(5);
    let image = InputShape::image(3, 8, 8);
    for (cfg, input) in [
        (mlp(&[8, 6]), &flat),
        (cnn(&[4, 6], 3, &[5]), &image),
        (resnet(14, 2), &image),
    ] {
        let teacher = marked(&cfg, input, 3);
        let student = selected(&teacher, &cfg, &cfg, input);
        let (t, s) = (teacher.vs.variables(), student.vs.variables());
        assert_eq!(t.len(), s.len(), "{cfg}");
        for (name, value) in &t {
            assert!(value.equal(&s[name]), "{cfg}: {name}");
        }
    }
}

#[test]
fn a_smaller_mlp_receives_the_uniformly_selected_units() {
    let input = InputShape::flat(5);
    let t_cfg = mlp(&[8, 6]);
    let teacher = marked(&t_cfg, &input, 3);
    for (hidden, first, second) in [
        ([3, 3], vec![0, 4, 7], vec![0, 2, 4]),
        ([4, 4], vec![0, 2, 4, 6], vec![0, 2, 3, 5]),
    ] {
        let s_cfg = mlp(&hidden);
        let student = selected(&teacher, &t_cfg, &s_cfg, &input);
        assert_var(
            &student,
            "layers.0.weight",
            &slice(&teacher, "layers.0.weight", &first, &[]),
        );
        assert_var(
            &student,
            "layers.0.bias",
            &slice(&teacher, "layers.0.bias", &first, &[]),
        );
        let inner = slice(&teacher, "layers.1.weight", &second, &first);
        assert_var(&student, "layers.1.weight", &inner);
        assert_var(
            &student,
            "layers.1.bias",
            &slice(&teacher, "layers.1.bias", &second, &[]),
        );
        let head = slice(&teacher, "layers.2.weight", &[], &second);
        assert_var(&student, "layers.2.weight", &head);
        assert_var(
            &student,
            "layers.2.bias",
            &slice(&teacher, "layers.2.bias", &[], &[]),
        );
    }
}

#[test]
fn a_smaller_cnn_receives_the_selected_channels_and_units() {
    // 1x4x4 images: one 3x3 conv block and 2x2 pooling leave 2x2 positions per channel.
    let input = InputShape::image(1, 4, 4);
    let t_cfg = cnn(&[4], 3, &[6]);
    let s_cfg = cnn(&[2], 3, &[3]);
    let teacher = marked(&t_cfg, &input, 3);
    let student = selected(&teacher, &t_cfg, &s_cfg, &input);
    let channels = [0, 2];
    let conv = slice(&teacher, "features.0.conv.weight", &channels, &[]);
    assert_var(&student, "features.0.conv.weight", &conv);
    for stat in ["weight", "bias", "running_mean", "running_var"] {
        let name = format!("features.0.bn.{stat}");
        assert_var(&student, &name, &slice(&teacher, &name, &channels, &[]));
    }
    // Channels 0 and 2, each with its 4 positions, of the flattened [4, 2, 2] map.
    let flat = [0, 1, 2, 3, 8, 9, 10, 11];
    let units = [0, 2, 4];
    let first = slice(&teacher, "classifier.0.weight", &units, &flat);
    assert_var(&student, "classifier.0.weight", &first);
    let bias = slice(&teacher, "classifier.0.bias", &units, &[]);
    assert_var(&student, "classifier.0.bias", &bias);
    let last = slice(&teacher, "classifier.1.weight", &[], &units);
    assert_var(&student, "classifier.1.weight", &last);
}

#[test]
fn a_shallower_resnet_takes_each_stages_first_blocks() {
    let input = InputShape::image(3, 8, 8);
    let (t_cfg, s_cfg) = (resnet(14, 2), resnet(8, 1));
    let teacher = marked(&t_cfg, &input, 3);
    let student = selected(&teacher, &t_cfg, &s_cfg, &input);
    // Stage 2's first block: every other of 64 output channels, and of 32 inputs.
    let (out, inp) = (uniform(64, 32), uniform(32, 16));
    let conv = slice(&teacher, "layer2.0.conv1.weight", &out, &inp);
    assert_var(&student, "layer2.0.conv1.weight", &conv);
    assert!(!student.vs.variables().contains_key("layer2.1.conv1.weight"));
}

#[test]
fn pairs_that_cannot_map_are_refused_with_the_reason() {
    let refused = |t: ModelConfig, s: ModelConfig| check(&t, &s).unwrap_err();
    let m = refused(cnn(&[8], 3, &[]), mlp(&[4]));
    assert!(
        m.contains("cnn teacher") && m.contains("mlp student"),
        "{m}"
    );
    let m = refused(cnn(&[8], 5, &[]), cnn(&[4], 3, &[]));
    assert!(
        m.contains("kernel is 5") && m.contains("student's 3"),
        "{m}"
    );
    let m = refused(mlp(&[8]), mlp(&[4, 4]));
    assert!(m.contains("1 hidden layers and the student 2"), "{m}");
    let m = refused(mlp(&[8, 8]), mlp(&[4, 9]));
    assert!(m.contains("hidden layer 2 has 9 units"), "{m}");
    let m = refused(resnet(8, 1), resnet(14, 1));
    assert!(m.contains("deeper"), "{m}");
    assert!(check(&resnet(8, 4), &resnet(8, 1)).is_ok());
}
