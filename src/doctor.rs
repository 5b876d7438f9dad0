//! `kd-tui doctor`: what a user runs first on a new box. Which libtorch this binary runs on,
//! whether its CUDA backend is there, what the NVIDIA driver sees, and the CPU threads.

use crate::device::{cuda, nvml, DeviceSpec};
use std::fmt::Write;

/// The report, one fact per line.
pub fn report() -> String {
    let mut out = String::new();
    let mut line = |key: &str, value: String| {
        let _ = writeln!(out, "{key:<14}{value}");
    };
    line("kd-tui", env!("CARGO_PKG_VERSION").to_string());
    match cuda::libtorch() {
        Some(lib) => {
            let build = match &lib.cuda {
                Some(cuda) => format!("CUDA {cuda} build"),
                None => "CPU-only build".into(),
            };
            let version = lib.version.as_deref().unwrap_or("version unknown");
            line("libtorch", format!("{version} ({build})"));
            line("found at", lib.lib_dir.display().to_string());
        }
        None => line("libtorch", "not found in this process's memory map".into()),
    }
    let backend = cuda::load_backend();
    line(
        "CUDA backend",
        match &backend {
            Ok(path) if cuda::backend_registered() => format!(
                "registered (cudart {}, from {})",
                cudart_version(tch::utils::version_cudart()),
                path.display()
            ),
            Ok(path) => format!("{} loaded but not registered", path.display()),
            Err(e) => format!("missing: {e}"),
        },
    );
    let driver = cuda::driver();
    line(
        "NVIDIA driver",
        match &driver {
            Ok(d) => format!("supports CUDA {}, {} GPU(s)", d.cuda, d.gpus.len()),
            Err(e) => e.clone(),
        },
    );
    match crate::device::nvml::Nvml::open() {
        Ok(nvml) => {
            let version = nvml
                .driver_version()
                .unwrap_or_else(|e| format!("unknown ({e})"));
            line("GPU use", format!("NVML, driver {version}"));
            match nvml.all() {
                Ok(gpus) => {
                    for (name, reading) in gpus {
                        line("", format!("{} {name}", nvml::reading_text(&reading)));
                    }
                }
                Err(e) => line("", format!("NVML could not read the GPUs: {e}")),
            }
        }
        Err(why) => line("GPU use", why),
    }
    let usable = match (&backend, &driver) {
        (Err(e), _) => Err(e.to_string()),
        (_, Err(e)) => Err(e.clone()),
        (Ok(_), Ok(_)) if tch::Cuda::device_count() == 0 => {
            Err("libtorch sees no CUDA device (check CUDA_VISIBLE_DEVICES)".into())
        }
        (Ok(_), Ok(d)) => Ok(d.gpus.clone()),
    };
    match &usable {
        Ok(gpus) => {
            line(
                "CUDA",
                format!("usable, {} device(s)", tch::Cuda::device_count()),
            );
            for (i, gpu) in gpus.iter().enumerate() {
                line("", format!("cuda:{i}  {gpu}"));
            }
            line("cuDNN", yes_no(tch::Cuda::cudnn_is_available()).into());
        }
        Err(why) => line("CUDA", format!("unusable: {why}")),
    }
    let built = |b: bool| if b { "built" } else { "not built" };
    line(
        "data-parallel",
        format!(
            "gloo {} (CPU), nccl {} (GPU); --nproc N, torchrun's RANK, WORLD_SIZE, ... or \
             Slurm's SLURM_PROCID, SLURM_NTASKS",
            built(crate::collective::gloo_built()),
            built(crate::collective::nccl_built())
        ),
    );
    if !crate::collective::gloo_built() {
        line(
            "",
            "to build gloo: sudo apt-get install libgloo-dev, then build kd-tui again".into(),
        );
    }
    line("memory", crate::memory::describe());
    let auto = crate::device::resolve(DeviceSpec::Auto).map(crate::device::describe);
    line("device auto", auto.unwrap_or_else(|e| e));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let omp = std::env::var("OMP_NUM_THREADS")
        .map(|v| format!(", OMP_NUM_THREADS={v}"))
        .unwrap_or_default();
    line(
        "CPU threads",
        format!(
            "libtorch intra-op {} of {cores} cores{omp}; a preset's `threads = \"auto\"` picks per phase",
            tch::get_num_threads()
        ),
    );
    out
}

/// `13.0` from cudart's `13000`.
fn cudart_version(v: i64) -> String {
    format!("{}.{}", v / 1000, (v % 1000) / 10)
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}
