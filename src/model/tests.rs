//! Output shapes and parameter counts against hand computations, names, batch-norm statistics
//! through save/load, and a few training steps lowering the loss, for each kind.

use super::*;
use crate::config::{Activation, CnnConfig, MlpConfig, ModelConfig, Pool, ResnetConfig};
use tch::{nn::OptimizerConfig, Kind};

fn mlp(hidden: &[usize], dropout: f64) -> ModelConfig {
    ModelConfig::Mlp(MlpConfig {
        hidden: hidden.to_vec(),
        activation: Activation::Relu,
        dropout,
    })
}

fn cnn(channels: &[usize], kernel: usize, batch_norm: bool, hidden: &[usize]) -> ModelConfig {
    ModelConfig::Cnn(CnnConfig {
        channels: channels.to_vec(),
        kernel,
        stride: 1,
        padding: None,
        batch_norm,
        pool: Pool::Max,
        hidden: hidden.to_vec(),
        dropout: 0.5,
    })
}

fn resnet(depth: usize, width: usize) -> ModelConfig {
    ModelConfig::Resnet(ResnetConfig { depth, width })
}

fn build(cfg: &ModelConfig, input: InputShape, classes: usize) -> Model {
    Model::new(cfg, &input, classes, Device::Cpu).unwrap()
}

fn zeros(n: i64, input: &InputShape) -> Tensor {
    Tensor::zeros([n, input.numel() as i64], (Kind::Float, Device::Cpu))
}

fn names(model: &Model) -> Vec<String> {
    let mut names: Vec<String> = model.vs.variables().into_keys().collect();
    names.sort();
    names
}

#[test]
fn mlp_shapes_names_and_parameter_count() {
    let input = InputShape::flat(64);
    let model = build(&mlp(&[8, 4], 0.5), input.clone(), 10);
    assert_eq!(model.net.forward_t(&zeros(3, &input), true).size(), [3, 10]);
    // (64*8+8) + (8*4+4) + (4*10+10)
    assert_eq!(
        model.size(),
        ModelSize {
            params: 520 + 36 + 50,
            bytes: 4 * 606
        }
    );
    let names = names(&model);
    assert_eq!(names[0], "layers.0.bias");
    assert_eq!(names[5], "layers.2.weight");
    // An MLP takes images too, flattened.
    let on_images = build(&mlp(&[8], 0.0), InputShape::image(1, 8, 8), 10);
    assert_eq!(on_images.size().params, 64 * 8 + 8 + 8 * 10 + 10);
}

#[test]
fn eval_mode_is_deterministic_despite_dropout() {
    let model = build(&mlp(&[16], 0.5), InputShape::flat(4), 3);
    let x = Tensor::ones([2, 4], (Kind::Float, Device::Cpu));
    assert!(model.logits(&x).equal(&model.logits(&x)));
}

#[test]
fn cnn_shapes_and_parameter_count() {
    // The MNIST teacher: 5x5 convs of 32 and 64 channels with 2x2 max pooling, 1024-unit head.
    let input = InputShape::image(1, 28, 28);
    let model = build(&cnn(&[32, 64], 5, false, &[1024]), input.clone(), 10);
    let conv1 = 32 * 25 + 32; // one input channel
    let conv2 = 32 * 64 * 25 + 64;
    let fc1 = 64 * 7 * 7 * 1024 + 1024; // 28 -> 14 -> 7
    let fc2 = 1024 * 10 + 10;
    assert_eq!(model.size().params, conv1 + conv2 + fc1 + fc2);
    let (logits, features) = model.net.forward_features(&zeros(2, &input), false);
    assert_eq!(logits.size(), [2, 10]);
    let shapes: Vec<(String, Vec<i64>)> =
        features.into_iter().map(|(n, t)| (n, t.size())).collect();
    assert_eq!(
        shapes,
        [
            ("features.0".to_string(), vec![2, 32, 14, 14]),
            ("features.1".to_string(), vec![2, 64, 7, 7]),
            ("classifier.0".to_string(), vec![2, 1024]),
        ]
    );
    assert_eq!(
        model.net.feature_names(),
        ["features.0", "features.1", "classifier.0"]
    );
    assert!(names(&model).contains(&"features.1.conv.weight".to_string()));
}

#[test]
fn cnn_with_batch_norm_has_no_conv_bias_and_keeps_running_statistics() {
    let input = InputShape::image(1, 8, 8);
    let model = build(&cnn(&[4], 3, true, &[]), input, 3);
    // conv 1*4*9 (no bias) + bn 4+4 + linear 4*4*4*3+3; running mean/var are not parameters.
    assert_eq!(model.size().params, 36 + 8 + 64 * 3 + 3);
    let names = names(&model);
    assert!(
        names.contains(&"features.0.bn.running_mean".to_string()),
        "{names:?}"
    );
    assert!(
        !names.contains(&"features.0.conv.bias".to_string()),
        "{names:?}"
    );
}

#[test]
fn a_cnn_that_shrinks_the_image_to_nothing_is_refused() {
    let e = Model::new(
        &cnn(&[8, 8, 8, 8], 3, false, &[]),
        &InputShape::image(1, 8, 8),
        10,
        Device::Cpu,
    )
    .unwrap_err();
    assert!(e.reason.contains("empty after conv block 4"), "{e}");
    let e = check_fits(&cnn(&[8], 3, false, &[]), &InputShape::flat(20)).unwrap_err();
    assert!(e.to_string().contains("cannot take [20] inputs"), "{e}");
    assert!(check_fits(&resnet(8, 1), &InputShape::flat(20)).is_err());
    assert!(check_fits(&mlp(&[8], 0.0), &InputShape::flat(20)).is_ok());
}

/// Parameters of the CIFAR ResNets, from the architecture: a 3x3 stem, then per block two 3x3
/// convs with batch norm, a 1x1 conv + batch norm where the shape changes, and the classifier.
fn resnet_params(depth: usize, channels: [usize; 4], classes: usize) -> usize {
    let n = (depth - 2) / 6;
    let conv = |i: usize, o: usize, k: usize| i * o * k * k;
    let bn = |c: usize| 2 * c;
    let mut total = conv(3, channels[0], 3) + bn(channels[0]);
    let mut inputs = channels[0];
    for (s, &width) in channels[1..].iter().enumerate() {
        for b in 0..n {
            total += conv(inputs, width, 3) + bn(width) + conv(width, width, 3) + bn(width);
            if inputs != width || (s > 0 && b == 0) {
                total += conv(inputs, width, 1) + bn(width);
            }
            inputs = width;
        }
    }
    total + inputs * classes + classes
}

#[test]
fn resnet_parameter_counts_match_the_architecture_and_the_literature() {
    let input = InputShape::image(3, 32, 32);
    for (depth, width, channels) in [
        (8, 1, [16, 16, 32, 64]),
        (20, 1, [16, 16, 32, 64]),
        (8, 4, [32, 64, 128, 256]),
    ] {
        let model = build(&resnet(depth, width), input.clone(), 100);
        assert_eq!(
            model.size().params,
            resnet_params(depth, channels, 100),
            "resnet{depth}x{width}"
        );
    }
    // Published CIFAR-100 sizes: resnet8x4 1.23M, resnet32x4 7.43M parameters.
    let r8x4 = build(&resnet(8, 4), input.clone(), 100).size().params;
    let r32x4 = build(&resnet(32, 4), input.clone(), 100).size().params;
    assert!((1_220_000..1_240_000).contains(&r8x4), "{r8x4}");
    assert!((7_420_000..7_440_000).contains(&r32x4), "{r32x4}");
    let model = build(&resnet(8, 1), input.clone(), 10);
    let (logits, features) = model.net.forward_features(&zeros(2, &input), false);
    assert_eq!(logits.size(), [2, 10]);
    let shapes: Vec<Vec<i64>> = features.iter().map(|(_, t)| t.size()).collect();
    assert_eq!(
        shapes,
        [
            vec![2, 16, 32, 32],
            vec![2, 32, 16, 16],
            vec![2, 64, 8, 8],
            vec![2, 64]
        ]
    );
    assert!(names(&model).contains(&"layer2.0.downsample.0.weight".to_string()));
}

/// Ten Adam steps on a fixed batch of random images lower the training loss.
fn loss_falls(cfg: &ModelConfig, input: InputShape) {
    tch::manual_seed(0);
    let model = build(cfg, input.clone(), 4);
    let x = Tensor::randn([16, input.numel() as i64], (Kind::Float, Device::Cpu));
    let y = Tensor::randint(4, [16], (Kind::Int64, Device::Cpu));
    let mut opt = nn::Adam::default().build(&model.vs, 1e-2).unwrap();
    let loss = |train| crate::distill::cross_entropy(&model.net.forward_t(&x, train), &y);
    let before = tch::no_grad(|| loss(false)).double_value(&[]);
    for _ in 0..10 {
        opt.backward_step(&loss(true));
    }
    let after = tch::no_grad(|| loss(false)).double_value(&[]);
    assert!(after < before * 0.8, "{cfg}: {before} -> {after}");
}

#[test]
fn a_few_training_steps_lower_the_loss() {
    loss_falls(&mlp(&[16], 0.0), InputShape::flat(12));
    loss_falls(&cnn(&[4, 8], 3, true, &[16]), InputShape::image(1, 8, 8));
    loss_falls(&resnet(8, 1), InputShape::image(3, 8, 8));
}

#[test]
fn batch_norm_statistics_are_saved_and_restored_with_the_weights() {
    let input = InputShape::image(3, 8, 8);
    let model = build(&resnet(8, 1), input.clone(), 4);
    // Training-mode passes move the running statistics away from their initial 0 / 1.
    let x = Tensor::randn([8, input.numel() as i64], (Kind::Float, Device::Cpu)) * 3.0 + 2.0;
    tch::no_grad(|| {
        for _ in 0..3 {
            let _ = model.net.forward_t(&x, true);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    model.vs.save(&path).unwrap();
    let mut fresh = build(&resnet(8, 1), input, 4);
    assert!(!fresh
        .logits(&x)
        .allclose(&model.logits(&x), 1e-5, 1e-5, false));
    fresh.vs.load(&path).unwrap();
    let mean = |m: &Model| m.vs.variables()["bn1.running_mean"].copy();
    assert!(mean(&model).abs().sum(Kind::Float).double_value(&[]) > 0.1);
    assert!(mean(&fresh).equal(&mean(&model)));
    assert!(fresh
        .logits(&x)
        .allclose(&model.logits(&x), 1e-5, 1e-5, false));
}

#[test]
fn bf16_autocast_computes_in_bf16_and_returns_float32() {
    let input = InputShape::flat(64);
    tch::manual_seed(5);
    let model = build(&mlp(&[32], 0.0), input.clone(), 10);
    let x = Tensor::randn([8, 64], (Kind::Float, Device::Cpu));
    let exact = model.logits(&x);
    let mixed = model.with_precision(Precision::Bf16);
    let (logits, features) = mixed.net.forward_features(&x, true);
    assert_eq!(
        (logits.kind(), features[0].1.kind()),
        (Kind::Float, Kind::Float)
    );
    let diff = f64::try_from((&logits - &exact).abs().max()).unwrap();
    // bf16 keeps 8 bits of mantissa: close to float32, and not equal (it did run in bf16).
    assert!(diff > 0.0 && diff < 0.05, "max |bf16 - fp32| = {diff}");
    logits.sum(Kind::Float).backward();
    for (name, w) in mixed.vs.variables() {
        assert_eq!(
            (w.kind(), w.grad().kind()),
            (Kind::Float, Kind::Float),
            "{name}"
        );
        assert!(
            w.grad().abs().sum(Kind::Float).double_value(&[]) > 0.0,
            "{name}"
        );
    }
    // The region ended: plain code on this thread is back in float32.
    assert_eq!(x.matmul(&x.tr()).kind(), Kind::Float);
}

#[test]
fn an_mlp_too_large_for_memory_is_refused_before_anything_is_allocated() {
    // 64 -> 2e9 -> 2: 134e9 parameters, about 3 TB with what training keeps beside them.
    let e = check_fits(&mlp(&[2_000_000_000], 0.0), &InputShape::flat(64)).unwrap_err();
    assert!(
        e.reason.contains("134000000002 parameters need about"),
        "{e}"
    );
    assert!(!e.reason.contains("frame #"), "{e}");
}
