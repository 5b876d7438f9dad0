//! `threads`: how many intra-op CPU threads a phase trains with. Small matrices run faster on
//! one thread than on several (the work is too small to split, and the threads' hand-offs cost
//! more than they give), large ones faster on all of them. `auto` decides per phase from the
//! work of one training step, by a rule (never a timing), so that a run, its resume and a rerun
//! with the same seed use the same number of threads and get bit-identical weights.

use crate::config::Threads;
use crate::model::Model;
use crate::protocol::InputShape;
use tch::{Device, Kind, Tensor};

/// Below this many floating-point operations per training step, one thread is faster. Measured
/// on this project's 2-core machine, one phase with `threads = 1` and `= 2` (train seconds,
/// `kd-tui --batch ... --set threads=N`): digits' 256-256 teacher (32 MFLOP per step) 0.33 s vs
/// 0.39 s and its 32 student (1 MFLOP) 0.09 s vs 0.15 s; the digits CNN teacher (15 MFLOP)
/// 0.83-0.97 s vs 0.85-0.87 s; on MNIST (batch 128, one epoch) the 32 student (20 MFLOP)
/// 0.122 s vs 0.119 s, a 128-128 teacher (91 MFLOP) 0.43 s vs 0.39 s, 256-256 0.86 s vs 0.75 s,
/// 800-800 4.4 s vs 2.8 s. (With more than one OpenMP pool alive, two threads lost up to
/// 500 MFLOP: see `keep_serial`.)
pub const ONE_THREAD_BELOW_FLOPS: f64 = 5.0e7;

/// Floating-point operations of one training step (forward and backward, about three forward
/// passes) on `batch` examples: each parameter is used twice (multiply, add) per position of the
/// layer output it makes (one for a dense layer, height x width for a convolution).
pub fn step_flops(model: &Model, input: &InputShape, batch: usize) -> f64 {
    let x = Tensor::zeros([1, input.numel() as i64], (Kind::Float, Device::Cpu));
    let (_, features) = tch::no_grad(|| {
        model
            .net
            .forward_features(&x.to_device(model.vs.device()), false)
    });
    // A parameter no named layer accounts for (a TorchScript module names none): a
    // convolution's kernel (4-D) at every input position, an upper bound; anything else once.
    let image_positions: i64 = input.dims().iter().skip(1).map(|&d| d as i64).product();
    let unnamed = |t: &Tensor| if t.dim() == 4 { image_positions } else { 1 };
    let positions = |param: &str, t: &Tensor| {
        features
            .iter()
            .filter(|(name, _)| param.starts_with(&format!("{name}.")))
            .max_by_key(|(name, _)| name.len())
            .map_or_else(
                || unnamed(t),
                |(_, f)| f.size().iter().skip(2).product::<i64>().max(1),
            )
    };
    let forward: f64 = model
        .vs
        .variables()
        .iter()
        .map(|(name, t)| 2.0 * t.numel() as f64 * positions(name, t) as f64)
        .sum();
    3.0 * forward * batch as f64
}

/// Keeps the libtorch work of the calling thread on one CPU thread. The main thread calls it
/// before it loads data, so that the trainer's OpenMP pool is the process's only one: libgomp
/// gives each thread that starts parallel work a pool of its own, and once a process has more
/// pool threads than cores, an idle one spins only a hundred rounds before it sleeps, so the
/// trainer's helper would sleep and be woken at every operation. Measured: one MNIST epoch of
/// the 800-800 teacher took 3.2 s with the main thread's pool alive and 2.6 s without it.
pub fn keep_serial() {
    tch::set_num_threads(1);
}

/// The CPU cores this process may use: the machine's, shared out among the ranks of a
/// data-parallel job on it (`LOCAL_WORLD_SIZE`, as torchrun and `--nproc` set it).
pub fn cores() -> usize {
    let machine = std::thread::available_parallelism().map_or(1, |n| n.get());
    let ranks = std::env::var("LOCAL_WORLD_SIZE")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(1);
    (machine / ranks).max(1)
}

/// Runs `f` (forward passes of `model` over `examples` at once) with the threads `setting`
/// gives that work, then goes back to `current`: the teacher's pass over the training set is
/// large work even when the student it serves trains on one thread.
pub fn for_forward<T>(
    setting: Threads,
    model: &Model,
    input: &InputShape,
    examples: usize,
    current: usize,
    f: impl FnOnce() -> T,
) -> T {
    if model.vs.device() != Device::Cpu {
        return f();
    }
    let cores = cores();
    let (n, _) = choose(setting, step_flops(model, input, examples) / 3.0, cores);
    tch::set_num_threads(n as i32);
    let out = f();
    tch::set_num_threads(current.max(1) as i32);
    out
}

/// The threads a phase trains with on the CPU, and why.
pub fn choose(setting: Threads, flops: f64, cores: usize) -> (usize, String) {
    match setting {
        Threads::Count(n) => (n, format!("{n} (set)")),
        Threads::Auto if flops < ONE_THREAD_BELOW_FLOPS => {
            (1, format!("1 (auto: {:.0} MFLOP per step)", flops / 1e6))
        }
        Threads::Auto => (
            cores,
            format!("{cores} (auto: {:.0} MFLOP per step)", flops / 1e6),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{load, DIGITS_PRESET};

    #[test]
    fn a_dense_layer_counts_once_and_a_convolution_per_position() {
        let preset = load(DIGITS_PRESET, "d", &[]).unwrap();
        let input = InputShape::image(1, 8, 8);
        let mlp = Model::new(&preset.student.model, &input, 10, Device::Cpu).unwrap();
        // mlp 32 on 64 inputs: 64*32 + 32 + 32*10 + 10 = 2410 parameters.
        assert_eq!(step_flops(&mlp, &input, 1), 3.0 * 2.0 * 2410.0);
        let cnn_cfg = load(
            DIGITS_PRESET,
            "d",
            &[
                "student.model={ kind = \"cnn\", channels = [4], kernel = 3, pool = \"none\" }"
                    .parse()
                    .unwrap(),
            ],
        )
        .unwrap()
        .student
        .model;
        let cnn = Model::new(&cnn_cfg, &input, 10, Device::Cpu).unwrap();
        // 4 3x3 filters (36 + 4) at 8x8 positions, then 4*8*8*10 + 10 for the head.
        let expected = 2.0 * (40.0 * 64.0 + 2570.0);
        assert_eq!(step_flops(&cnn, &input, 2), 3.0 * expected * 2.0);
    }

    #[test]
    fn auto_takes_one_thread_for_small_steps_and_every_core_for_large_ones() {
        assert_eq!(choose(Threads::Auto, 3.0e7, 2).0, 1);
        assert_eq!(choose(Threads::Auto, 2.0e9, 2).0, 2);
        assert_eq!(choose(Threads::Count(3), 1.0, 2).0, 3);
    }
}
