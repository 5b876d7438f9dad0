//! Datasets: the embedded digits, MNIST-format IDX folders, CIFAR-10 batches, CSV files and
//! image folders (one file per source), split into stratified train / validation / test sets
//! from the run seed.
//! Examples are stored flat; the `InputShape` says how a model may view them.

pub mod augment;
mod byte_rows;
mod cache_folder;
mod cifar;

/// CIFAR-10's binary batch files: the training batches, then the test batch.
pub const CIFAR_FILES: [&str; 6] = [
    cifar::CIFAR_TRAIN_FILES[0],
    cifar::CIFAR_TRAIN_FILES[1],
    cifar::CIFAR_TRAIN_FILES[2],
    cifar::CIFAR_TRAIN_FILES[3],
    cifar::CIFAR_TRAIN_FILES[4],
    "test_batch.bin",
];
mod csv;
mod feature_rows;
mod idx;
mod image_cache;
mod images;
mod mnist_subset;
mod normalize;
mod progress;
mod read;

pub use cache_folder::{cache_root, keep_limit, touch, write_aside};
pub use feature_rows::FeatureRows;
pub use progress::screen_in_use;
pub use read::MAX_DATA_BYTES;

use crate::config::{DataConfig, DataSource};
use crate::protocol::InputShape;
use byte_rows::{ByteRows, ByteStore};
pub use images::UnreadableImage;
use images::{ImageFiles, StreamedRows};
use normalize::{normalization, Affine};
use rand::{rngs::StdRng, seq::SliceRandom, SeedableRng};
use read::{gunzip, read_maybe_gz};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use tch::{Device, Tensor};

/// UCI optical digits as shipped by scikit-learn (CC BY 4.0): 64 pixels in 0..16, then the label.
pub const EMBEDDED_DIGITS: &[u8] = include_bytes!("../../assets/digits.csv.gz");

/// A data problem, naming the file and what was expected.
#[derive(Debug, Clone, PartialEq)]
pub struct DataError {
    pub file: String,
    pub message: String,
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file, self.message)
    }
}

impl std::error::Error for DataError {}

pub(crate) fn err(file: impl fmt::Display, message: impl Into<String>) -> DataError {
    DataError {
        file: file.to_string(),
        message: message.into(),
    }
}

/// Examples as feature rows `[n, prod(shape)]` and one label vector `[n]` (i64).
#[derive(Debug)]
pub struct Split {
    pub features: FeatureRows,
    pub labels: Tensor,
}

impl Split {
    pub fn len(&self) -> usize {
        self.labels.size()[0] as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn to_device(&self, device: Device) -> Split {
        Split {
            features: self.features.to_device(device),
            labels: self.labels.to_device(device),
        }
    }
}

/// The three splits of a dataset and its shape.
#[derive(Debug)]
pub struct Splits {
    pub train: Split,
    pub val: Split,
    pub test: Split,
    pub input: InputShape,
    pub num_classes: usize,
    /// The data's label value of each class index (`"0"`..`"9"` for the image sources).
    pub classes: Vec<String>,
    /// Human description, e.g. "digits (embedded, 1797 examples)".
    pub description: String,
    /// What identifies the data beyond the preset (an image folder's listing), if anything:
    /// the teacher-output cache keys by it.
    pub fingerprint: Option<String>,
}

/// Examples as loaded, before splitting and normalisation.
#[derive(Debug)]
struct Raw {
    features: Values,
    labels: Vec<i64>,
    shape: InputShape,
}

/// Feature values as read: 8-bit pixels stay bytes, in the final tensors too (`FeatureRows`).
#[derive(Debug, PartialEq)]
enum Values {
    Bytes(ByteRows),
    Floats(Vec<f32>),
    /// Images of a folder too large for memory (the file of each example), decoded as read.
    Files(Arc<ImageFiles>, Vec<usize>),
}

impl Values {
    /// Bytes a source read into memory, in rows of `dim`.
    fn owned_bytes(bytes: Vec<u8>, dim: usize) -> Values {
        Values::Bytes(ByteRows::all(ByteStore::Owned(bytes), dim))
    }
}

/// Rows `idx` of a row-major matrix with `dim` columns.
fn rows<T: Copy>(values: &[T], dim: usize, idx: &[usize]) -> Vec<T> {
    let mut out = Vec::with_capacity(idx.len() * dim);
    for &i in idx {
        out.extend_from_slice(&values[i * dim..(i + 1) * dim]);
    }
    out
}

impl Raw {
    fn len(&self) -> usize {
        self.labels.len()
    }

    fn dim(&self) -> usize {
        self.shape.numel()
    }

    fn select(&self, idx: &[usize]) -> Raw {
        let dim = self.dim();
        Raw {
            features: match &self.features {
                Values::Bytes(b) => Values::Bytes(b.select(idx)),
                Values::Floats(v) => Values::Floats(rows(v, dim, idx)),
                Values::Files(files, rows) => {
                    Values::Files(files.clone(), idx.iter().map(|&i| rows[i]).collect())
                }
            },
            labels: idx.iter().map(|&i| self.labels[i]).collect(),
            shape: self.shape.clone(),
        }
    }

    /// Every feature value as an f64 (for statistics); none for images decoded as read, which
    /// would all be decoded for it.
    fn values(&self) -> Option<Box<dyn Iterator<Item = f64> + '_>> {
        match &self.features {
            Values::Bytes(b) => Some(Box::new(b.values().map(f64::from))),
            Values::Floats(v) => Some(Box::new(v.iter().map(|&f| f64::from(f)))),
            Values::Files(..) => None,
        }
    }

    /// The tensors, normalised by `affine` with f32 arithmetic: `(v - shift) * scale`. Floats
    /// are normalised here, in one pass on the host; bytes stay bytes, normalised per batch.
    fn into_split(self, affine: Option<&Affine>) -> Split {
        let size = [self.labels.len() as i64, self.dim() as i64];
        let features = match (self.features, affine) {
            (Values::Bytes(b), a) if b.is_paged() => FeatureRows::paged(b, a),
            (Values::Bytes(b), a) => FeatureRows::bytes(b.to_tensor(), a),
            (Values::Files(files, rows), a) => {
                FeatureRows::streamed(StreamedRows::new(files, rows), a)
            }
            (Values::Floats(v), None) => FeatureRows::floats(Tensor::from_slice(&v).view(size)),
            (Values::Floats(v), Some(a)) => {
                FeatureRows::floats(Tensor::from_slice(&a.apply(&v)).view(size))
            }
        };
        Split {
            features,
            labels: Tensor::from_slice(&self.labels),
        }
    }
}

/// A source's examples as read: its training examples, the validation and test examples it
/// has of its own (else they are drawn from the training ones), and what it says of itself.
#[derive(Debug)]
struct Source {
    all: Raw,
    val: Option<Raw>,
    test: Option<Raw>,
    /// The largest pixel value, for `scale` (csv: none; the training maximum is used).
    max_value: Option<f32>,
    description: String,
    classes: Vec<String>,
    /// What identifies the data beyond the preset (an image folder's listing), if anything.
    fingerprint: Option<String>,
}

/// Loads, splits and normalises the configured data.
pub fn load(cfg: &DataConfig, seed: u64) -> Result<Splits, DataError> {
    let source = match cfg.source {
        DataSource::Digits => {
            let name = "assets/digits.csv.gz";
            let options = csv::Options::label_last_no_header();
            let (mut all, classes) = csv::parse(&gunzip(EMBEDDED_DIGITS, name)?, name, &options)?;
            all.shape = InputShape::image(1, 8, 8);
            let description = format!("digits (embedded, {} examples)", all.len());
            Source::own(all, None, Some(16.0), description, classes)
        }
        DataSource::MnistSubset => mnist_subset::read()?,
        DataSource::Csv => {
            let path = required_path(cfg)?;
            let name = path.display().to_string();
            let (all, classes) = csv::parse(&read_maybe_gz(path)?, &name, &csv::Options::of(cfg))?;
            let description = format!("csv {name} ({} examples)", all.len());
            Source::own(all, None, None, description, classes)
        }
        // Sources with an official test split; both hold 8-bit pixels.
        DataSource::Mnist | DataSource::Cifar10 => {
            let dir = required_path(cfg)?;
            let (name, train, test) = match cfg.source {
                DataSource::Mnist => {
                    let train = idx::read_idx_pair(dir, "train", None)?;
                    let test = idx::read_idx_pair(dir, "t10k", Some(&train.shape))?;
                    ("mnist", train, test)
                }
                _ => (
                    "cifar10",
                    cifar::read_cifar_batches(dir, &cifar::CIFAR_TRAIN_FILES)?,
                    cifar::read_cifar_batches(dir, &["test_batch.bin"])?,
                ),
            };
            let description = format!(
                "{name} {} ({} train, {} test)",
                dir.display(),
                train.len(),
                test.len()
            );
            let seen: std::collections::BTreeSet<i64> = train.labels.iter().copied().collect();
            if let Some(label) = test.labels.iter().find(|l| !seen.contains(l)) {
                return Err(err(
                    &description,
                    format!("test label {label} never occurs in the training data"),
                ));
            }
            let count = 1 + train
                .labels
                .iter()
                .chain(&test.labels)
                .max()
                .copied()
                .unwrap_or(0);
            let classes = (0..count).map(|c| c.to_string()).collect();
            Source::own(train, Some(test), Some(255.0), description, classes)
        }
        DataSource::Images => images::read(cfg, required_path(cfg)?)?,
    };
    split(source, cfg, seed)
}

impl Source {
    /// A source without a validation split or a fingerprint of its own.
    fn own(
        all: Raw,
        test: Option<Raw>,
        max_value: Option<f32>,
        description: String,
        classes: Vec<String>,
    ) -> Source {
        Source {
            all,
            val: None,
            test,
            max_value,
            description,
            classes,
            fingerprint: None,
        }
    }
}

/// The stratified splits a source lacks, drawn from its training examples, then normalised.
fn split(source: Source, cfg: &DataConfig, seed: u64) -> Result<Splits, DataError> {
    let Source {
        all,
        val,
        test,
        max_value,
        description,
        classes,
        fingerprint,
    } = source;
    let num_classes: usize = classes.len();
    if num_classes < 2 {
        return Err(err(&description, "needs at least two classes"));
    }
    let fraction = |own: &Option<Raw>, f: f64| if own.is_some() { 0.0 } else { f };
    let (val_f, test_f) = (
        fraction(&val, cfg.val_fraction),
        fraction(&test, cfg.test_fraction),
    );
    let (mut train_idx, val_idx, test_idx) = stratified_split(&all.labels, val_f, test_f, seed);
    if let Some(limit) = cfg.train_limit {
        train_idx.truncate(limit);
    }
    let val = val.unwrap_or_else(|| all.select(&val_idx));
    let test = test.unwrap_or_else(|| all.select(&test_idx));
    let train = all.select(&train_idx);
    if train.len() == 0 {
        return Err(err(
            &description,
            "no training examples left after the validation/test split",
        ));
    }
    if test.len() == 0 {
        return Err(err(
            &description,
            "the test split is empty; raise data.test_fraction",
        ));
    }
    if val.len() == 0 {
        return Err(err(
            &description,
            "the validation split is empty; raise data.val_fraction",
        ));
    }
    let affine = normalization(&cfg.normalize, max_value, &train)?;
    let input = all.shape.clone();
    // The source's examples go before the tensors are made: at most twice the bytes at once.
    drop(all);
    Ok(Splits {
        input,
        num_classes,
        classes,
        description,
        fingerprint,
        train: train.into_split(affine.as_ref()),
        val: val.into_split(affine.as_ref()),
        test: test.into_split(affine.as_ref()),
    })
}

fn required_path(cfg: &DataConfig) -> Result<&PathBuf, DataError> {
    cfg.path
        .as_ref()
        .ok_or_else(|| err("preset", "data.path is required for this source"))
}

/// Per class: shuffle with the seed, then take test, validation and train shares, so every
/// split keeps the class balance and the same seed always gives the same split.
fn stratified_split(
    labels: &[i64],
    val_fraction: f64,
    test_fraction: f64,
    seed: u64,
) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
    let mut rng = StdRng::seed_from_u64(crate::random::derive(seed, "split", 0));
    let classes = labels.iter().copied().max().map_or(0, |m| m as usize + 1);
    let (mut train, mut val, mut test) = (Vec::new(), Vec::new(), Vec::new());
    for class in 0..classes {
        let mut idx: Vec<usize> = (0..labels.len())
            .filter(|&i| labels[i] == class as i64)
            .collect();
        idx.shuffle(&mut rng);
        let n = idx.len() as f64;
        let n_test = (n * test_fraction).round() as usize;
        let n_val = ((n * val_fraction).round() as usize).min(idx.len() - n_test);
        test.extend_from_slice(&idx[..n_test]);
        val.extend_from_slice(&idx[n_test..n_test + n_val]);
        train.extend_from_slice(&idx[n_test + n_val..]);
    }
    // Mix classes so that `train_limit` keeps a balanced subset.
    train.shuffle(&mut rng);
    (train, val, test)
}

#[cfg(test)]
mod tests;
