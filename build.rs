//! Embeds an rpath to libtorch so `target/*/kd-tui` (and tests, benches) run without
//! LD_LIBRARY_PATH, and compiles the C++ shim (`csrc/`) against libtorch's headers.
//! libtorch's CUDA backend is not linked here but loaded at start-up when a GPU may be used
//! (`device::cuda`): linked, it cost every CPU run 0.3 s and 390 MB of mapped libraries.
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
    cc::Build::new()
        .cpp(true)
        .std("c++17")
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .define("_GLIBCXX_USE_CXX11_ABI", abi.as_str())
        .flag("-w")
        .file("csrc/autocast.cpp")
        .compile("kd_shim");
}
