//! The shared data sets (`../shared/data`) some end-to-end tests need: there, skipped, or
//! required (CI).

use std::path::{Path, PathBuf};

/// Set to `1` where the shared data sets must be present (CI runs with `../shared`): a test
/// that needs one then fails without it instead of skipping.
pub const REQUIRE_DATA: &str = "KD_TUI_REQUIRE_DATA";

/// `../shared/data/NAME` when it holds one of `files`. Otherwise `None` after a "skipped" line
/// on stderr (a Rust test cannot report a skip: the caller returns, and the test passes), or a
/// failure under `KD_TUI_REQUIRE_DATA=1`.
pub fn shared_data(name: &str, files: &[&str]) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data")
        .join(name);
    if files.iter().any(|f| dir.join(f).exists()) {
        return Some(dir);
    }
    let missing = format!("{name} not found at {}", dir.display());
    if std::env::var_os(REQUIRE_DATA).is_some_and(|v| v == "1") {
        panic!("{missing}, and {REQUIRE_DATA}=1 requires it");
    }
    eprintln!("skipped: {missing} (set {REQUIRE_DATA}=1 to make this a failure)");
    None
}

/// `../shared/data/mnist` when it holds MNIST (see `shared_data`).
pub fn mnist_dir() -> Option<PathBuf> {
    shared_data(
        "mnist",
        &["train-images-idx3-ubyte.gz", "train-images-idx3-ubyte"],
    )
}

/// The embedded digits: (label, 8x8 pixels scaled to 0..255).
pub fn digit_pixels() -> Vec<(usize, Vec<u8>)> {
    use std::io::Read;
    let mut text = String::new();
    flate2::read::GzDecoder::new(kd_tui::data::EMBEDDED_DIGITS)
        .read_to_string(&mut text)
        .unwrap();
    text.lines()
        .map(|line| {
            let v: Vec<f64> = line.split(',').map(|f| f.parse().unwrap()).collect();
            let pixels = v[..64].iter().map(|p| (p * 255.0 / 16.0) as u8).collect();
            (v[64] as usize, pixels)
        })
        .collect()
}
