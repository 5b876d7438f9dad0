//! Hostile input, fuzzed: presets and `--set` flags, MNIST IDX files, CIFAR batches, CSV files
//! teacher weights (safetensors) and teacher-output cache files, each mutated from the seed
//! corpus in `tests/fuzz-corpus` (the weights' and the cache's seeds are files kd-tui wrote). Every case must end in `Ok` or an error: no
//! panic, no hang, no allocation a header alone asks for.
//!
//! The test command runs a bounded smoke run (`KD_TUI_FUZZ_CASES`, 64 cases per target by
//! default); a long run: `KD_TUI_FUZZ_CASES=20000 cargo test --release --test fuzz_inputs`.

use kd_tui::config::{self, Override};
use kd_tui::protocol::InputShape;
use proptest::prelude::*;
use std::path::Path;
use std::str::FromStr;

fn cases() -> u32 {
    std::env::var("KD_TUI_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(64)
}

fn corpus(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fuzz-corpus")
            .join(name),
    )
    .unwrap()
}

/// Mutations of a seed: bytes overwritten, a cut, bytes appended.
#[derive(Debug, Clone)]
struct Mutation {
    writes: Vec<(usize, u8)>,
    cut: Option<usize>,
    tail: Vec<u8>,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    (
        prop::collection::vec((any::<usize>(), any::<u8>()), 0..8),
        prop::option::of(any::<usize>()),
        prop::collection::vec(any::<u8>(), 0..16),
    )
        .prop_map(|(writes, cut, tail)| Mutation { writes, cut, tail })
}

impl Mutation {
    fn apply(&self, seed: &[u8]) -> Vec<u8> {
        let mut bytes = seed.to_vec();
        for &(at, b) in &self.writes {
            if !bytes.is_empty() {
                let i = at % bytes.len();
                bytes[i] = b;
            }
        }
        if let Some(cut) = self.cut {
            bytes.truncate(cut % (bytes.len() + 1));
        }
        bytes.extend_from_slice(&self.tail);
        bytes
    }
}

/// Loads `source` data from `dir` through the preset, as a run would.
fn load_data(source: &str, path: &Path) -> Result<(), String> {
    let text = kd_tui::config::DIGITS_PRESET
        .replace(
            "source = \"digits\"",
            &format!(
                "source = \"{source}\"\npath = {}",
                toml::Value::String(path.display().to_string())
            ),
        )
        .replace("val_fraction = 0.1 ", "val_fraction = 0.34")
        .replace("test_fraction = 0.2 ", "test_fraction = 0.34");
    let preset = config::load(&text, "fuzz.toml", &[]).map_err(|e| e.to_string())?;
    kd_tui::data::load(&preset.data, 7)
        .map(drop)
        .map_err(|e| e.to_string())
}

#[test]
fn the_seed_corpus_loads() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ] {
        std::fs::write(dir.path().join(name), corpus(name)).unwrap();
    }
    load_data("mnist", dir.path()).unwrap();
    for name in kd_tui::data::CIFAR_FILES {
        std::fs::write(dir.path().join(name), corpus("cifar-record.bin")).unwrap();
    }
    load_data("cifar10", dir.path()).unwrap();
    let csv = dir.path().join("table.csv");
    std::fs::write(&csv, corpus("table.csv")).unwrap();
    load_data("csv", &csv).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn presets(m in mutation(), text in ".{0,200}") {
        let seed = kd_tui::config::DIGITS_PRESET.as_bytes();
        let mutated = String::from_utf8_lossy(&m.apply(seed)).into_owned();
        let _ = config::load(&mutated, "fuzz.toml", &[]);
        let _ = config::load(&text, "fuzz.toml", &[]);
        if let Ok(o) = Override::from_str(&text) {
            let _ = config::load(kd_tui::config::DIGITS_PRESET, "fuzz.toml", &[o]);
        }
    }

    #[test]
    fn mnist_idx_files(file in 0usize..4, m in mutation()) {
        let names = [
            "train-images-idx3-ubyte",
            "train-labels-idx1-ubyte",
            "t10k-images-idx3-ubyte",
            "t10k-labels-idx1-ubyte",
        ];
        let dir = tempfile::tempdir().unwrap();
        for (i, name) in names.iter().enumerate() {
            let seed = corpus(name);
            let bytes = if i == file { m.apply(&seed) } else { seed };
            std::fs::write(dir.path().join(name), bytes).unwrap();
        }
        let _ = load_data("mnist", dir.path());
    }

    #[test]
    fn cifar_batches(file in 0usize..6, m in mutation()) {
        let names = kd_tui::data::CIFAR_FILES;
        let dir = tempfile::tempdir().unwrap();
        let seed = corpus("cifar-record.bin");
        for (i, name) in names.iter().enumerate() {
            let bytes = if i == file { m.apply(&seed) } else { seed.clone() };
            std::fs::write(dir.path().join(name), bytes).unwrap();
        }
        let _ = load_data("cifar10", dir.path());
    }

    #[test]
    fn csv_files(m in mutation()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("table.csv");
        std::fs::write(&path, m.apply(&corpus("table.csv"))).unwrap();
        let _ = load_data("csv", &path);
    }

    #[test]
    fn teacher_weights(m in mutation()) {
        let cfg = config::load(kd_tui::config::DIGITS_PRESET, "d", &[]).unwrap().student.model;
        let input = InputShape::image(1, 8, 8);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("teacher.safetensors");
        let model = kd_tui::model::Model::new(&cfg, &input, 10, tch::Device::Cpu).unwrap();
        model.vs.save(&path).unwrap();
        let seed = std::fs::read(&path).unwrap();
        std::fs::write(&path, m.apply(&seed)).unwrap();
        let mut model = kd_tui::model::Model::new(&cfg, &input, 10, tch::Device::Cpu).unwrap();
        let _ = model.vs.load(&path);
    }

    #[test]
    fn teacher_output_cache_files(m in mutation()) {
        // A file that still reads after the mutation must read the very logits written.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.safetensors");
        let logits = tch::Tensor::arange(30, (tch::Kind::Float, tch::Device::Cpu)).view([3, 10]);
        kd_tui::train::cache::write_logits(&path, &logits).unwrap();
        let seed = std::fs::read(&path).unwrap();
        std::fs::write(&path, m.apply(&seed)).unwrap();
        if let Ok(read) = kd_tui::train::cache::read_logits(&path, 3, 10) {
            prop_assert!(read.equal(&logits));
        }
    }
}
