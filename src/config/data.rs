//! `[data]`: where the examples come from and how they are prepared.

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataSource {
    Digits,
    /// A stratified subset of MNIST compiled into the binary, with its own validation and test
    /// splits (`assets/mnist-subset/`, made by `scripts/make_mnist_subset.py`).
    #[serde(rename = "mnist-subset")]
    MnistSubset,
    Mnist,
    Cifar10,
    Csv,
    /// A folder of image files: `DIR/train/<class>/...`, optionally `DIR/val/...`, `DIR/test/...`.
    Images,
}

impl DataSource {
    /// The channels of the source's images where the source fixes them.
    pub fn fixed_channels(self) -> Option<usize> {
        match self {
            DataSource::Digits | DataSource::MnistSubset | DataSource::Mnist => Some(1),
            DataSource::Cifar10 => Some(3),
            DataSource::Csv | DataSource::Images => None,
        }
    }

    /// Whether the data is compiled into the binary (no `path`).
    pub fn is_embedded(self) -> bool {
        matches!(self, DataSource::Digits | DataSource::MnistSubset)
    }
}

/// The `normalize` key: a word, or a table of per-channel statistics.
#[derive(Debug, Clone, PartialEq)]
pub enum Normalize {
    /// Divide by the source's maximum pixel value (digits 16, MNIST 255, CSV: train maximum).
    Scale,
    /// Per-feature zero mean and unit variance, statistics from the training split.
    Standardize,
    None,
    /// torchvision's `Normalize` after `ToTensor`: `(p / max - mean) / std` per channel, with
    /// `max` the source's largest pixel value (255; the embedded digits: 16). A TorchScript
    /// teacher expects the normalisation it was trained with (ImageNet's, often).
    PerChannel(MeanStd),
}

/// `normalize = { mean = [...], std = [...] }`, one value per channel, in 0..1 pixel units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeanStd {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

const NORMALIZE_FORMS: &str =
    "`scale`, `standardize`, `none` or { mean = [...], std = [...] } (one value per channel)";

impl Serialize for Normalize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Normalize::Scale => s.serialize_str("scale"),
            Normalize::Standardize => s.serialize_str("standardize"),
            Normalize::None => s.serialize_str("none"),
            Normalize::PerChannel(m) => m.serialize(s),
        }
    }
}

/// By hand rather than `untagged`: serde's untagged enums lose the inner error ("did not match
/// any variant"), and a preset's error must say which field of the table is wrong.
impl<'de> Deserialize<'de> for Normalize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Normalize, D::Error> {
        struct Forms;
        impl<'de> de::Visitor<'de> for Forms {
            type Value = Normalize;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(NORMALIZE_FORMS)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Normalize, E> {
                match v {
                    "scale" => Ok(Normalize::Scale),
                    "standardize" => Ok(Normalize::Standardize),
                    "none" => Ok(Normalize::None),
                    _ => Err(E::custom(format!(
                        "unknown variant `{v}`, expected {NORMALIZE_FORMS}"
                    ))),
                }
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Normalize, A::Error> {
                MeanStd::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(Normalize::PerChannel)
            }
        }
        d.deserialize_any(Forms)
    }
}

/// `cache`: where an image folder's decoded, resized pixels are kept, in a run and between runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataCache {
    /// `memory`, plus a cache file when the decoded bytes fit the disk budget (4 GiB, and half
    /// the free space); `none` when they do not fit in memory (a cache file already written is
    /// read, its rows left on disk).
    #[default]
    Auto,
    /// Decoded at set-up every run and kept in memory; no cache file.
    Memory,
    /// Decoded once into a file of the per-user cache folder, whatever its size, read back by
    /// the next run over the same folder; each batch's rows are read from the file as drawn.
    Disk,
    /// Nothing kept: each batch's images are decoded from their files as it is drawn, the
    /// next batch ahead while the model trains.
    None,
}

impl DataCache {
    pub fn is_auto(&self) -> bool {
        *self == DataCache::Auto
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    pub source: DataSource,
    /// File or folder for file-based sources (mnist: the folder of IDX files; csv: the file;
    /// images: the folder holding `train/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    #[serde(default = "val_fraction")]
    pub val_fraction: f64,
    /// Fraction held out for test where the source has no test split of its own.
    #[serde(default = "test_fraction")]
    pub test_fraction: f64,
    #[serde(default = "normalize")]
    pub normalize: Normalize,
    /// Use at most this many training examples (quick experiments on big sources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_limit: Option<usize>,
    /// csv: the label column, by header name or 0-based index (negative counts from the end);
    /// default: the last column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<LabelColumn>,
    /// csv: whether the first line names the columns; `auto` looks for a non-number in it.
    #[serde(default, skip_serializing_if = "Header::is_auto")]
    pub header: Header,
    /// csv: the class values, images: the class folders' names, in class-index order. Filled in
    /// from the data when absent (the run folder's preset.toml records it); when given, a label
    /// or folder not listed is an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<Vec<String>>,
    /// images: 1 (gray) or 3 (RGB); default 3 when any image is stored in colour, else 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<usize>,
    /// images: `[height, width]` every image is resized to; default the most common size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<[usize; 2]>,
    /// images: skip images that cannot be decoded (the data description counts them) instead
    /// of refusing the folder.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skip_bad: bool,
    #[serde(default, skip_serializing_if = "DataCache::is_auto")]
    pub cache: DataCache,
}

fn val_fraction() -> f64 {
    0.1
}
fn test_fraction() -> f64 {
    0.2
}
fn normalize() -> Normalize {
    Normalize::Scale
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LabelColumn {
    Index(i64),
    Name(String),
}

/// `header = "auto" | true | false`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "HeaderValue", into = "HeaderValue")]
pub enum Header {
    #[default]
    Auto,
    Given(bool),
}

impl Header {
    pub fn is_auto(&self) -> bool {
        *self == Header::Auto
    }
}

/// How `header` is written in TOML.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum HeaderValue {
    Flag(bool),
    Word(String),
}

impl TryFrom<HeaderValue> for Header {
    type Error = String;
    fn try_from(v: HeaderValue) -> Result<Header, String> {
        match v {
            HeaderValue::Flag(b) => Ok(Header::Given(b)),
            HeaderValue::Word(w) if w == "auto" => Ok(Header::Auto),
            HeaderValue::Word(w) => Err(format!("must be \"auto\", true or false (got \"{w}\")")),
        }
    }
}

impl From<Header> for HeaderValue {
    fn from(h: Header) -> HeaderValue {
        match h {
            Header::Auto => HeaderValue::Word("auto".into()),
            Header::Given(b) => HeaderValue::Flag(b),
        }
    }
}
