//! Embeds an rpath to libtorch so `target/*/kd-tui` (and tests, benches) run without
//! LD_LIBRARY_PATH, and compiles the C++ shim (`csrc/`) against libtorch's headers.
//! libtorch's CUDA backend is not linked here but loaded at start-up when a GPU may be used
//! (`device::cuda`): linked, it cost every CPU run 0.3 s and 390 MB of mapped libraries.
// A build script speaks to cargo through `println!` (clippy.toml keeps it out of src/).
#![allow(clippy::disallowed_macros)]
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    println!("cargo:rerun-if-changed=csrc");
    // torch-sys (links = "tch") exports the directory it linked against.
    let dir =
        std::env::var("DEP_TCH_LIBTORCH_LIB").expect("torch-sys exports DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    let include = Path::new(&dir).join("../include");
    // The same C++ ABI as libtorch (torch-sys's variable; PyTorch wheels use the new one).
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into());
    let mut shim = cc::Build::new();
    shim.cpp(true)
        .std("c++17")
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .define("_GLIBCXX_USE_CXX11_ABI", abi.as_str())
        .flag("-w")
        .file("csrc/autocast.cpp")
        .file("csrc/dist.cpp")
        .file("csrc/jit.cpp")
        .file("csrc/optim.cpp");
    // Gloo's own headers (Debian's libgloo-dev; scripts/kd installs it): libtorch_cpu.so has
    // ProcessGroupGloo built in, the wheel lacks only these. Without them, no Gloo backend.
    let gloo = Path::new("/usr/include/gloo/config.h");
    if gloo.exists() {
        shim.define("USE_C10D_GLOO", None);
        println!("cargo:rerun-if-changed=/usr/include/gloo/config.h");
    } else {
        // Installing libgloo-dev later touches /usr/include: the shim is then rebuilt with it.
        println!("cargo:rerun-if-changed=/usr/include");
        println!(
            "cargo:warning=no /usr/include/gloo (libgloo-dev): kd-tui builds without the Gloo \
             backend, so --nproc and torchrun jobs on the CPU are refused; to fix: \
             sudo apt-get install libgloo-dev (then build again)"
        );
    }
    shim.compile("kd_shim");
    nccl_shim(&shim, Path::new(&dir), &abi);
}

/// The NCCL backend (`csrc/nccl.cpp`) as a shared library of its own, which kd-tui embeds and
/// loads at run time after libtorch's CUDA backend; built where the headers it needs are: the
/// torch wheel's nvidia packages (nccl.h, the CUDA runtime, and cccl and crt, which
/// scripts/libtorch-env.sh adds).
fn nccl_shim(shim: &cc::Build, lib_dir: &Path, abi: &str) {
    println!("cargo::rustc-check-cfg=cfg(kd_nccl)");
    let nvidia = lib_dir.join("../../nvidia");
    let includes: Vec<_> = std::fs::read_dir(&nvidia)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("include"))
        .filter(|p| p.is_dir())
        .collect();
    let needed = [
        "nccl.h",
        "cuda_runtime_api.h",
        "crt/host_config.h",
        "nv/target",
    ];
    let missing: Vec<_> = needed
        .iter()
        .filter(|h| !includes.iter().any(|i| i.join(h).exists()))
        .collect();
    if !missing.is_empty() {
        // Adding the headers later (scripts/libtorch-env.sh does) rebuilds the shim with NCCL.
        println!("cargo:rerun-if-changed={}", nvidia.display());
        println!(
            "cargo:warning=no NCCL backend: {} not found under {}",
            missing
                .iter()
                .map(|h| h.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            nvidia.display()
        );
        return;
    }
    let out =
        std::path::PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("libkd_nccl.so");
    let include = lib_dir.join("../include");
    let mut command = shim.get_compiler().to_command();
    command
        .args([
            "-shared",
            "-fPIC",
            "-O2",
            "-w",
            "-DUSE_C10D_NCCL",
            "-DUSE_CUDA",
        ])
        .arg(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .arg("-I")
        .arg(&include)
        .arg("-I")
        .arg(include.join("torch/csrc/api/include"));
    for dir in &includes {
        command.arg("-I").arg(dir);
    }
    command
        .arg("csrc/nccl.cpp")
        .arg("-o")
        .arg(&out)
        .arg("-L")
        .arg(lib_dir)
        .args(["-ltorch_cuda", "-ltorch_cpu", "-lc10_cuda", "-lc10"]);
    let status = command.status().expect("running the C++ compiler");
    assert!(
        status.success(),
        "compiling csrc/nccl.cpp failed: {command:?}"
    );
    println!("cargo:rustc-env=KD_NCCL_SHIM={}", out.display());
    println!("cargo:rustc-cfg=kd_nccl");
}
