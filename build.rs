//! Embeds an rpath to libtorch so `target/*/kd-tui` (and tests, benches) run without LD_LIBRARY_PATH.
fn main() {
    // torch-sys (links = "tch") exports the directory it linked against.
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
}
