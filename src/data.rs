//! Datasets: the embedded digits, MNIST-format IDX folders and CSV files, split into
//! stratified train / validation / test sets from the run seed.

use crate::preset::{DataConfig, DataSource, Normalize};
use flate2::read::GzDecoder;
use rand::{rngs::StdRng, seq::SliceRandom, SeedableRng};
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use tch::{Device, Tensor};

/// UCI optical digits as shipped by scikit-learn (CC BY 4.0): 64 pixels in 0..16, then the label.
pub const EMBEDDED_DIGITS: &[u8] = include_bytes!("../assets/digits.csv.gz");

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

fn err(file: impl fmt::Display, message: impl Into<String>) -> DataError {
    DataError {
        file: file.to_string(),
        message: message.into(),
    }
}

/// Examples as one feature matrix `[n, dim]` (f32) and one label vector `[n]` (i64).
#[derive(Debug)]
pub struct Split {
    pub features: Tensor,
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
    pub input_dim: usize,
    pub num_classes: usize,
    /// Human description, e.g. "digits (embedded, 1797 examples)".
    pub description: String,
}

/// Examples as loaded, before splitting and normalisation.
#[derive(Debug)]
struct Raw {
    features: Vec<f32>,
    labels: Vec<i64>,
    dim: usize,
}

impl Raw {
    fn len(&self) -> usize {
        self.labels.len()
    }

    fn select(&self, idx: &[usize]) -> Raw {
        let mut features = Vec::with_capacity(idx.len() * self.dim);
        for &i in idx {
            features.extend_from_slice(&self.features[i * self.dim..(i + 1) * self.dim]);
        }
        Raw {
            features,
            labels: idx.iter().map(|&i| self.labels[i]).collect(),
            dim: self.dim,
        }
    }

    fn into_split(self) -> Split {
        let n = self.labels.len() as i64;
        Split {
            features: Tensor::from_slice(&self.features).view([n, self.dim as i64]),
            labels: Tensor::from_slice(&self.labels),
        }
    }
}

/// Loads, splits and normalises the configured data.
pub fn load(cfg: &DataConfig, seed: u64) -> Result<Splits, DataError> {
    let (all, official_test, max_value, description) = match cfg.source {
        DataSource::Digits => {
            let raw = parse_csv(
                &gunzip(EMBEDDED_DIGITS, "assets/digits.csv.gz")?,
                "assets/digits.csv.gz",
            )?;
            let description = format!("digits (embedded, {} examples)", raw.len());
            (raw, None, Some(16.0), description)
        }
        DataSource::Csv => {
            let path = required_path(cfg)?;
            let raw = parse_csv(&read_maybe_gz(path)?, &path.display().to_string())?;
            let description = format!("csv {} ({} examples)", path.display(), raw.len());
            (raw, None, None, description)
        }
        // Sources with an official test split; both hold 8-bit pixels.
        DataSource::Mnist | DataSource::Cifar10 => {
            let dir = required_path(cfg)?;
            let (name, train, test) = match cfg.source {
                DataSource::Mnist => (
                    "mnist",
                    read_idx_pair(dir, "train")?,
                    read_idx_pair(dir, "t10k")?,
                ),
                _ => (
                    "cifar10",
                    read_cifar_batches(dir, &CIFAR_TRAIN_FILES)?,
                    read_cifar_batches(dir, &["test_batch.bin"])?,
                ),
            };
            let description = format!(
                "{name} {} ({} train, {} test)",
                dir.display(),
                train.len(),
                test.len()
            );
            (train, Some(test), Some(255.0), description)
        }
    };
    let num_classes = all.labels.iter().copied().max().unwrap_or(0) as usize + 1;
    if num_classes < 2 {
        return Err(err(&description, "needs at least two classes"));
    }
    let (mut train_idx, val_idx, test) = match official_test {
        Some(test) => {
            let (train_idx, val_idx, _) =
                stratified_split(&all.labels, cfg.val_fraction, 0.0, seed);
            (train_idx, val_idx, test)
        }
        None => {
            let (train_idx, val_idx, test_idx) =
                stratified_split(&all.labels, cfg.val_fraction, cfg.test_fraction, seed);
            let test = all.select(&test_idx);
            (train_idx, val_idx, test)
        }
    };
    if let Some(limit) = cfg.train_limit {
        train_idx.truncate(limit);
    }
    let (mut train, mut val, mut test) = (all.select(&train_idx), all.select(&val_idx), test);
    if train.len() == 0 {
        return Err(err(
            &description,
            "no training examples left after the validation/test split",
        ));
    }
    if val.len() == 0 {
        return Err(err(
            &description,
            "the validation split is empty; raise data.val_fraction",
        ));
    }
    normalize(
        cfg.normalize,
        max_value,
        &mut train,
        &mut [&mut val, &mut test],
    );
    Ok(Splits {
        input_dim: all.dim,
        num_classes,
        description,
        train: train.into_split(),
        val: val.into_split(),
        test: test.into_split(),
    })
}

fn required_path(cfg: &DataConfig) -> Result<&PathBuf, DataError> {
    cfg.path
        .as_ref()
        .ok_or_else(|| err("preset", "data.path is required for this source"))
}

fn normalize(how: Normalize, max_value: Option<f32>, train: &mut Raw, others: &mut [&mut Raw]) {
    let dim = train.dim;
    let (shift, scale): (Vec<f32>, Vec<f32>) = match how {
        Normalize::None => return,
        Normalize::Scale => {
            let max = max_value
                .unwrap_or_else(|| train.features.iter().fold(0.0_f32, |m, v| m.max(v.abs())))
                .max(f32::MIN_POSITIVE);
            (vec![0.0; dim], vec![1.0 / max; dim])
        }
        Normalize::Standardize => {
            let n = train.len().max(1) as f64;
            let mut mean = vec![0.0_f64; dim];
            let mut sq = vec![0.0_f64; dim];
            for row in train.features.chunks(dim) {
                for (j, &v) in row.iter().enumerate() {
                    mean[j] += f64::from(v) / n;
                    sq[j] += f64::from(v) * f64::from(v) / n;
                }
            }
            let inv_std = mean
                .iter()
                .zip(&sq)
                .map(|(m, s)| {
                    let std = (s - m * m).max(0.0).sqrt();
                    if std < 1e-8 {
                        1.0
                    } else {
                        (1.0 / std) as f32
                    }
                })
                .collect();
            (mean.iter().map(|&m| m as f32).collect(), inv_std)
        }
    };
    for raw in std::iter::once(train).chain(others.iter_mut().map(|r| &mut **r)) {
        for row in raw.features.chunks_mut(dim) {
            for (j, v) in row.iter_mut().enumerate() {
                *v = (*v - shift[j]) * scale[j];
            }
        }
    }
}

/// Per class: shuffle with the seed, then take test, validation and train shares, so every
/// split keeps the class balance and the same seed always gives the same split.
fn stratified_split(
    labels: &[i64],
    val_fraction: f64,
    test_fraction: f64,
    seed: u64,
) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
    let mut rng = StdRng::seed_from_u64(crate::seed::derive(seed, "split", 0));
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

fn gunzip(bytes: &[u8], name: &str) -> Result<Vec<u8>, DataError> {
    let mut out = Vec::new();
    GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .map_err(|e| err(name, format!("truncated or corrupt gzip data ({e})")))?;
    Ok(out)
}

/// Reads a file, un-gzipping it when its name ends in `.gz`.
fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, DataError> {
    let bytes =
        std::fs::read(path).map_err(|e| err(path.display(), format!("cannot read: {e}")))?;
    if path.extension().is_some_and(|e| e == "gz") {
        gunzip(&bytes, &path.display().to_string())
    } else {
        Ok(bytes)
    }
}

/// CSV of numbers, label (a non-negative integer) in the last column; an optional header line.
fn parse_csv(bytes: &[u8], name: &str) -> Result<Raw, DataError> {
    let text = std::str::from_utf8(bytes).map_err(|_| err(name, "is not UTF-8 text"))?;
    let mut features = Vec::new();
    let mut labels = Vec::new();
    let mut dim = None;
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if line_no == 1 && fields[0].parse::<f64>().is_err() {
            continue; // header
        }
        let expected = *dim.get_or_insert(fields.len());
        if fields.len() != expected {
            return Err(err(
                name,
                format!(
                    "line {line_no}: expected {expected} fields, found {}",
                    fields.len()
                ),
            ));
        }
        if expected < 2 {
            return Err(err(
                name,
                format!("line {line_no}: needs at least one feature and a label"),
            ));
        }
        let (label, values) = fields.split_last().expect("at least two fields");
        for v in values {
            let x: f32 = v
                .parse()
                .map_err(|_| err(name, format!("line {line_no}: `{v}` is not a number")))?;
            if !x.is_finite() {
                return Err(err(
                    name,
                    format!("line {line_no}: `{v}` is not a finite number"),
                ));
            }
            features.push(x);
        }
        let label: i64 = label
            .parse()
            .ok()
            .filter(|l: &i64| (0..100_000).contains(l))
            .ok_or_else(|| {
                err(
                    name,
                    format!("line {line_no}: label `{label}` is not a class index (0, 1, 2, ...)"),
                )
            })?;
        labels.push(label);
    }
    let dim = dim.ok_or_else(|| err(name, "contains no examples"))? - 1;
    Ok(Raw {
        features,
        labels,
        dim,
    })
}

/// Finds `<stem>` or `<stem>.gz` in `dir`.
fn find_file(dir: &Path, stem: &str) -> Result<PathBuf, DataError> {
    [dir.join(stem), dir.join(format!("{stem}.gz"))]
        .into_iter()
        .find(|p| p.exists())
        .ok_or_else(|| {
            err(
                dir.join(format!("{stem}.gz")).display(),
                "not found (expected an MNIST-format IDX file, optionally gzipped)",
            )
        })
}

/// Reads one IDX file: checks the magic number and that the data length matches the header.
fn read_idx(path: &Path, expected_dims: usize) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let name = path.display();
    let bytes = read_maybe_gz(path)?;
    if bytes.len() < 4
        || bytes[0] != 0
        || bytes[1] != 0
        || bytes[2] != 0x08
        || bytes[3] as usize != expected_dims
    {
        return Err(err(name, format!("not an IDX file of unsigned bytes with {expected_dims} dimension(s) (bad magic number)")));
    }
    let header = 4 + 4 * expected_dims;
    if bytes.len() < header {
        return Err(err(
            name,
            format!(
                "truncated: expected a {header}-byte header, found {} bytes",
                bytes.len()
            ),
        ));
    }
    let dims: Vec<usize> = bytes[4..header]
        .chunks(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let expected: usize = dims.iter().product();
    let found = bytes.len() - header;
    if found != expected {
        let shape = dims
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(" x ");
        return Err(err(
            name,
            format!(
                "truncated or padded: header says {shape} = {expected} data bytes, found {found}"
            ),
        ));
    }
    Ok((dims, bytes[header..].to_vec()))
}

fn read_idx_pair(dir: &Path, prefix: &str) -> Result<Raw, DataError> {
    let images_path = find_file(dir, &format!("{prefix}-images-idx3-ubyte"))?;
    let labels_path = find_file(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
    let (dims, pixels) = read_idx(&images_path, 3)?;
    let (ldims, labels) = read_idx(&labels_path, 1)?;
    if dims[0] != ldims[0] {
        return Err(err(
            labels_path.display(),
            format!(
                "has {} labels for {} images in {}",
                ldims[0],
                dims[0],
                images_path.display()
            ),
        ));
    }
    Ok(Raw {
        features: pixels.into_iter().map(f32::from).collect(),
        labels: labels.into_iter().map(i64::from).collect(),
        dim: dims[1] * dims[2],
    })
}

/// CIFAR-10's binary version: records of one label byte and 3072 pixel bytes (the red, green
/// and blue 32x32 planes), in `data_batch_1..5.bin` and `test_batch.bin`.
const CIFAR_RECORD: usize = 1 + 3 * 32 * 32;

const CIFAR_TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];

fn read_cifar_batches(dir: &Path, files: &[&str]) -> Result<Raw, DataError> {
    let mut raw = Raw {
        features: Vec::new(),
        labels: Vec::new(),
        dim: CIFAR_RECORD - 1,
    };
    for file in files {
        let path = find_file(dir, file)?;
        let bytes = read_maybe_gz(&path)?;
        if bytes.is_empty() || bytes.len() % CIFAR_RECORD != 0 {
            return Err(err(
                path.display(),
                format!(
                    "truncated: {} bytes is not a whole number of {CIFAR_RECORD}-byte records (label + 3x32x32 pixels)",
                    bytes.len()
                ),
            ));
        }
        for (i, record) in bytes.chunks(CIFAR_RECORD).enumerate() {
            if record[0] > 9 {
                return Err(err(
                    path.display(),
                    format!(
                        "record {}: label {} is not a CIFAR-10 class (0-9)",
                        i + 1,
                        record[0]
                    ),
                ));
            }
            raw.labels.push(i64::from(record[0]));
            raw.features
                .extend(record[1..].iter().map(|&b| f32::from(b)));
        }
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preset::DataConfig;
    use tch::Kind;

    fn digits_cfg() -> DataConfig {
        DataConfig {
            source: DataSource::Digits,
            path: None,
            val_fraction: 0.1,
            test_fraction: 0.2,
            normalize: Normalize::Scale,
            train_limit: None,
        }
    }

    #[test]
    fn digits_split_is_complete_stratified_scaled_and_deterministic() {
        let a = load(&digits_cfg(), 7).unwrap();
        assert_eq!((a.input_dim, a.num_classes), (64, 10));
        assert_eq!(a.train.len() + a.val.len() + a.test.len(), 1797);
        // Every class appears in proportion in the test split (~36 each of ~180).
        let counts = a.test.labels.bincount::<Tensor>(None, 10);
        let counts: Vec<i64> = Vec::try_from(counts).unwrap();
        assert!(counts.iter().all(|&c| (34..=38).contains(&c)), "{counts:?}");
        let max = a.train.features.max().double_value(&[]);
        let min = a.train.features.min().double_value(&[]);
        assert!(
            (0.0..=1.0).contains(&min) && (max - 1.0).abs() < 1e-6,
            "{min} {max}"
        );
        let b = load(&digits_cfg(), 7).unwrap();
        assert!(a.test.labels.equal(&b.test.labels) && a.train.features.equal(&b.train.features));
        let c = load(&digits_cfg(), 8).unwrap();
        assert!(
            !a.train.labels.equal(&c.train.labels),
            "another seed gives another split"
        );
    }

    #[test]
    fn standardize_uses_train_statistics() {
        let s = load(
            &DataConfig {
                normalize: Normalize::Standardize,
                ..digits_cfg()
            },
            1,
        )
        .unwrap();
        let mean = s
            .train
            .features
            .mean_dim(0, false, Kind::Float)
            .abs()
            .max()
            .double_value(&[]);
        assert!(mean < 1e-4, "train mean {mean}");
    }

    #[test]
    fn csv_errors_name_the_line() {
        let e = parse_csv(b"1,2,0\n3,4\n", "f.csv").unwrap_err();
        assert_eq!(e.to_string(), "f.csv: line 2: expected 3 fields, found 2");
        let e = parse_csv(b"a,b,label\n1,x,0\n", "f.csv").unwrap_err();
        assert!(e.message.contains("line 2: `x` is not a number"), "{e}");
        let e = parse_csv(b"1,2,-1\n", "f.csv").unwrap_err();
        assert!(e.message.contains("label `-1`"), "{e}");
    }

    #[test]
    fn cifar10_batches_load_and_truncation_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let record = |label: u8, pixel: u8| {
            let mut r = vec![label];
            r.extend(std::iter::repeat_n(pixel, CIFAR_RECORD - 1));
            r
        };
        for i in 1..=5 {
            let bytes: Vec<u8> = (0..20u8).flat_map(|k| record(k % 10, k)).collect();
            std::fs::write(dir.path().join(format!("data_batch_{i}.bin")), bytes).unwrap();
        }
        let test: Vec<u8> = (0..10u8).flat_map(|k| record(k, 255)).collect();
        std::fs::write(dir.path().join("test_batch.bin"), &test).unwrap();
        let cfg = DataConfig {
            source: DataSource::Cifar10,
            path: Some(dir.path().to_path_buf()),
            ..digits_cfg()
        };
        let s = load(&cfg, 3).unwrap();
        assert_eq!((s.input_dim, s.num_classes), (3072, 10));
        assert_eq!(s.train.len() + s.val.len(), 100);
        assert_eq!(s.test.len(), 10);
        assert_eq!(
            s.test.features.max().double_value(&[]),
            1.0,
            "scaled by 255"
        );

        std::fs::write(dir.path().join("test_batch.bin"), &test[..test.len() - 7]).unwrap();
        let e = load(&cfg, 3).unwrap_err();
        assert!(e.file.ends_with("test_batch.bin"), "{e}");
        assert!(e.message.contains("3073-byte records"), "{e}");
    }

    #[test]
    fn truncated_gzip_is_reported() {
        let cut = &EMBEDDED_DIGITS[..EMBEDDED_DIGITS.len() / 2];
        let e = gunzip(cut, "digits.csv.gz").unwrap_err();
        assert!(e.message.contains("truncated"), "{e}");
    }

    #[test]
    fn truncated_idx_names_file_and_expected_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t10k-images-idx3-ubyte");
        let mut bytes = vec![0, 0, 8, 3];
        for d in [2u32, 28, 28] {
            bytes.extend_from_slice(&d.to_be_bytes());
        }
        bytes.extend(std::iter::repeat_n(0u8, 28 * 28 + 5));
        std::fs::write(&path, &bytes).unwrap();
        let e = read_idx(&path, 3).unwrap_err();
        assert!(e.file.ends_with("t10k-images-idx3-ubyte"));
        assert!(
            e.message
                .contains("2 x 28 x 28 = 1568 data bytes, found 789"),
            "{e}"
        );
    }
}
