//! Presets: the TOML file that describes a whole run, `--set` overrides, and validation.
//!
//! Every error names the file, the line and column, the key and what is allowed, so a user can
//! fix a preset without reading code. Validation runs before any data is loaded.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

/// The embedded default preset (`presets/digits.toml`).
pub const DEFAULT_PRESET: &str = include_str!("../presets/digits.toml");
/// How the embedded default is named in messages.
pub const DEFAULT_PRESET_NAME: &str = "<embedded presets/digits.toml>";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preset {
    pub name: String,
    #[serde(default = "defaults::seed")]
    pub seed: u64,
    #[serde(default = "defaults::device")]
    pub device: String,
    /// Log a step record every this many optimizer steps.
    #[serde(default = "defaults::log_every")]
    pub log_every: usize,
    pub data: DataConfig,
    pub teacher: NetConfig,
    pub student: NetConfig,
    pub distill: DistillConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataSource {
    Digits,
    Mnist,
    Cifar10,
    Csv,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Normalize {
    /// Divide by the source's maximum pixel value (digits 16, MNIST 255, CSV: train maximum).
    Scale,
    /// Per-feature zero mean and unit variance, statistics from the training split.
    Standardize,
    None,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    pub source: DataSource,
    /// File or folder for file-based sources (mnist: the folder of IDX files; csv: the file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    #[serde(default = "defaults::val_fraction")]
    pub val_fraction: f64,
    /// Fraction held out for test where the source has no test split of its own.
    #[serde(default = "defaults::test_fraction")]
    pub test_fraction: f64,
    #[serde(default = "defaults::normalize")]
    pub normalize: Normalize,
    /// Use at most this many training examples (quick experiments on big sources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_limit: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    Mlp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    Relu,
    Gelu,
    Tanh,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub kind: ModelKind,
    pub hidden: Vec<usize>,
    #[serde(default = "defaults::activation")]
    pub activation: Activation,
    #[serde(default)]
    pub dropout: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    Adam,
    Adamw,
    Sgd,
}

/// Teacher and student share one shape; `checkpoint` is teacher-only, `baseline` student-only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetConfig {
    pub model: ModelConfig,
    pub epochs: usize,
    pub batch_size: usize,
    #[serde(default = "defaults::optimizer")]
    pub optimizer: OptimizerKind,
    pub lr: f64,
    #[serde(default)]
    pub weight_decay: f64,
    /// Momentum for `sgd`.
    #[serde(default = "defaults::momentum")]
    pub momentum: f64,
    /// Teacher only: load these safetensors weights instead of training.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<PathBuf>,
    /// Student only: also train the same student without distillation, for comparison.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Cross-entropy against the teacher's argmax labels.
    Hard,
    /// Hinton et al.: temperature-softened KL mixed with cross-entropy.
    Soft,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Hard => "hard",
            Method::Soft => "soft",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistillConfig {
    pub method: Method,
    #[serde(default = "defaults::temperature")]
    pub temperature: f64,
    #[serde(default = "defaults::alpha")]
    pub alpha: f64,
}

mod defaults {
    use super::*;
    pub fn seed() -> u64 {
        7
    }
    pub fn device() -> String {
        "auto".into()
    }
    pub fn log_every() -> usize {
        10
    }
    pub fn val_fraction() -> f64 {
        0.1
    }
    pub fn test_fraction() -> f64 {
        0.2
    }
    pub fn normalize() -> Normalize {
        Normalize::Scale
    }
    pub fn activation() -> Activation {
        Activation::Relu
    }
    pub fn optimizer() -> OptimizerKind {
        OptimizerKind::Adam
    }
    pub fn momentum() -> f64 {
        0.9
    }
    pub fn temperature() -> f64 {
        4.0
    }
    pub fn alpha() -> f64 {
        0.9
    }
}

impl NetConfig {
    pub fn trains_baseline(&self) -> bool {
        self.baseline.unwrap_or(true)
    }
}

/// Keys that may change while a run is going on; they take effect at the next optimizer step.
pub const LIVE_KEYS: &[&str] = &[
    "teacher.lr",
    "teacher.batch_size",
    "teacher.epochs",
    "student.lr",
    "student.batch_size",
    "student.epochs",
    "distill.method",
    "distill.temperature",
    "distill.alpha",
];

/// A preset problem: where (file, line, column), which key, and what is wrong or allowed.
#[derive(Debug, Clone, PartialEq)]
pub struct PresetError {
    pub origin: String,
    pub line_col: Option<(usize, usize)>,
    pub key: String,
    pub message: String,
}

impl fmt::Display for PresetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.origin)?;
        if let Some((line, col)) = self.line_col {
            write!(f, ":{line}:{col}")?;
        }
        if self.key.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": key `{}`: {}", self.key, self.message)
        }
    }
}

impl std::error::Error for PresetError {}

/// A `--set key.path=value` override from the command line.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    pub key: String,
    pub value: String,
}

impl std::str::FromStr for Override {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (key, value) = s
            .split_once('=')
            .ok_or_else(|| format!("`{s}` is not of the form key.path=value"))?;
        let key = key.trim();
        if key.is_empty() || key.split('.').any(str::is_empty) {
            return Err(format!("`{key}` is not a dotted key path like teacher.lr"));
        }
        Ok(Override {
            key: key.to_string(),
            value: value.trim().to_string(),
        })
    }
}

impl Override {
    /// An error blamed on this flag.
    fn error(&self, key: &str, message: String) -> PresetError {
        PresetError {
            origin: format!("--set {}={}", self.key, self.value),
            line_col: None,
            key: key.to_string(),
            message,
        }
    }
}

/// Parses a value the way TOML would (`3e-4`, `true`, `[32, 16]`, `"soft"`), falling back to a
/// bare string so `--set distill.method=hard` works without quotes.
fn parse_override_value(raw: &str) -> toml_edit::Value {
    raw.parse::<toml_edit::Value>()
        .unwrap_or_else(|_| toml_edit::Value::from(raw))
}

/// Sets `key` (dotted) in `doc`, creating tables on the way.
fn set_dotted(
    doc: &mut toml_edit::DocumentMut,
    key: &str,
    value: toml_edit::Value,
) -> Result<(), String> {
    let parts: Vec<&str> = key.split('.').collect();
    let (last, parents) = parts.split_last().expect("non-empty key path");
    let mut item = doc.as_item_mut();
    for (depth, part) in parents.iter().enumerate() {
        if item.get(part).is_none() {
            if !item.is_table_like() {
                return Err(format!("`{}` is not a table", parents[..depth].join(".")));
            }
            item[part] = toml_edit::table();
        }
        item = &mut item[part];
    }
    if !item.is_table_like() {
        return Err(format!("`{}` is not a table", parents.join(".")));
    }
    item[*last] = toml_edit::value(value);
    Ok(())
}

/// Loads, overrides and validates a preset.
///
/// `origin` names the text in messages (a file path, or the embedded default).
pub fn load(text: &str, origin: &str, overrides: &[Override]) -> Result<Preset, PresetError> {
    let located = Located { text, origin };
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| located.error_at(e.span(), "", e.message().trim()))?;
    for o in overrides {
        set_dotted(&mut doc, &o.key, parse_override_value(&o.value))
            .map_err(|message| o.error(&o.key, message))?;
    }
    let resolved = doc.to_string();
    // Errors go to the flag that set the key, else to the key in the file. Spans from the
    // parser refer to the resolved text, which matches the file only without overrides.
    let blame = |key: &str, span: Option<std::ops::Range<usize>>, message: String| match overrides
        .iter()
        .find(|o| key == o.key || key.starts_with(&format!("{}.", o.key)))
    {
        Some(o) => o.error(key, message),
        None => {
            let span = located
                .span_of(key)
                .or(span.filter(|_| overrides.is_empty()));
            located.error_at(span, key, &message)
        }
    };
    let de = toml::Deserializer::parse(&resolved)
        .map_err(|e| blame("", e.span(), e.message().to_string()))?;
    let preset: Preset = serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let key = if key == "." { String::new() } else { key };
        let inner = e.into_inner();
        blame(&key, inner.span(), plain_types(inner.message()))
    })?;
    preset
        .validate()
        .map_err(|(key, message)| blame(&key, located.span_of(&key), message))?;
    Ok(preset)
}

/// serde names Rust types ("expected usize"); say what a preset author would write instead.
fn plain_types(message: &str) -> String {
    message
        .replace("expected usize", "expected a non-negative integer")
        .replace("expected u64", "expected a non-negative integer")
        .replace("expected f64", "expected a number")
        .replace("a boolean", "true or false")
}

/// Reads and loads a preset file.
pub fn load_file(path: &Path, overrides: &[Override]) -> Result<Preset, PresetError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| PresetError {
        origin: origin.clone(),
        line_col: None,
        key: String::new(),
        message: format!("cannot read preset: {e}"),
    })?;
    load(&text, &origin, overrides)
}

/// The preset text with its name, for turning byte spans into line/column and finding keys.
struct Located<'a> {
    text: &'a str,
    origin: &'a str,
}

impl Located<'_> {
    fn line_col(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before
            .rfind('\n')
            .map_or(before.len(), |nl| before.len() - nl - 1)
            + 1;
        (line, col)
    }

    fn error_at(
        &self,
        span: Option<std::ops::Range<usize>>,
        key: &str,
        message: &str,
    ) -> PresetError {
        PresetError {
            origin: self.origin.to_string(),
            line_col: span.map(|s| self.line_col(s.start)),
            key: key.to_string(),
            message: message.to_string(),
        }
    }

    /// Span of a dotted key (its name, else its value) in the original text, or of its
    /// nearest parent.
    fn span_of(&self, key: &str) -> Option<std::ops::Range<usize>> {
        let doc = toml_edit::Document::parse(self.text).ok()?;
        let mut item = doc.as_item();
        let mut span = None;
        for part in key.split('.').filter(|p| !p.is_empty()) {
            let key_span = item
                .as_table_like()
                .and_then(|t| t.key(part))
                .and_then(|k| k.span());
            match item.get(part) {
                Some(next) => {
                    item = next;
                    span = key_span.or(next.span()).or(span);
                }
                None => break,
            }
        }
        span
    }
}

/// What a value must satisfy; shared by preset validation and live edits.
pub mod rules {
    pub fn temperature(t: f64) -> Result<(), String> {
        if t.is_finite() && t > 0.0 {
            Ok(())
        } else {
            Err(format!("must be a number > 0 (got {t})"))
        }
    }
    pub fn alpha(a: f64) -> Result<(), String> {
        if (0.0..=1.0).contains(&a) {
            Ok(())
        } else {
            Err(format!("must be within [0, 1] (got {a})"))
        }
    }
    pub fn lr(lr: f64) -> Result<(), String> {
        if lr.is_finite() && lr > 0.0 {
            Ok(())
        } else {
            Err(format!("must be a number > 0 (got {lr})"))
        }
    }
    pub fn positive_count(n: usize) -> Result<(), String> {
        if n > 0 {
            Ok(())
        } else {
            Err("must be at least 1 (got 0)".into())
        }
    }
    /// The validation split picks the reported (best) weights, so it cannot be empty.
    pub fn validation_fraction(f: f64) -> Result<(), String> {
        if f > 0.0 && f < 1.0 {
            Ok(())
        } else {
            Err(format!(
                "must be within (0, 1): validation accuracy picks the weights that are reported (got {f})"
            ))
        }
    }
    pub fn fraction_below_one(f: f64) -> Result<(), String> {
        if (0.0..1.0).contains(&f) {
            Ok(())
        } else {
            Err(format!("must be within [0, 1) (got {f})"))
        }
    }
    pub fn non_negative(x: f64) -> Result<(), String> {
        if x.is_finite() && x >= 0.0 {
            Ok(())
        } else {
            Err(format!("must be a number >= 0 (got {x})"))
        }
    }
    pub fn dropout(p: f64) -> Result<(), String> {
        if (0.0..1.0).contains(&p) {
            Ok(())
        } else {
            Err(format!("must be within [0, 1) (got {p})"))
        }
    }
}

impl Preset {
    /// Checks ranges that types cannot express. Returns the offending dotted key and why.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let check = |key: &str, r: Result<(), String>| r.map_err(|m| (key.to_string(), m));
        if self.name.trim().is_empty() || self.name.contains(['/', '\\']) {
            return Err((
                "name".into(),
                "must be a non-empty name without slashes".into(),
            ));
        }
        check("log_every", rules::positive_count(self.log_every))?;
        let device = crate::device::parse(&self.device);
        check("device", device.map(|_| ()))?;
        let d = &self.data;
        check(
            "data.val_fraction",
            rules::validation_fraction(d.val_fraction),
        )?;
        check(
            "data.test_fraction",
            rules::fraction_below_one(d.test_fraction),
        )?;
        if d.val_fraction + d.test_fraction >= 1.0 {
            return Err((
                "data.val_fraction".into(),
                "val_fraction + test_fraction must leave training data (sum < 1)".into(),
            ));
        }
        match (d.source, &d.path) {
            (DataSource::Digits, Some(_)) => {
                return Err((
                    "data.path".into(),
                    "the embedded `digits` source takes no path".into(),
                ))
            }
            (DataSource::Mnist | DataSource::Cifar10 | DataSource::Csv, None) => {
                return Err((
                    "data.path".into(),
                    "required for this source (mnist: folder of IDX files; cifar10: folder of the binary batches; csv: file)".into(),
                ))
            }
            _ => {}
        }
        if let Some(limit) = d.train_limit {
            check("data.train_limit", rules::positive_count(limit))?;
        }
        for (role, net) in [("teacher", &self.teacher), ("student", &self.student)] {
            let key = |k: &str| format!("{role}.{k}");
            if net.model.hidden.is_empty() {
                return Err((
                    key("model.hidden"),
                    "must list at least one hidden layer size, e.g. [256, 256]".into(),
                ));
            }
            if net.model.hidden.contains(&0) {
                return Err((key("model.hidden"), "layer sizes must be at least 1".into()));
            }
            check(&key("model.dropout"), rules::dropout(net.model.dropout))?;
            if net.checkpoint.is_none() {
                check(&key("epochs"), rules::positive_count(net.epochs))?;
            }
            check(&key("batch_size"), rules::positive_count(net.batch_size))?;
            check(&key("lr"), rules::lr(net.lr))?;
            check(&key("weight_decay"), rules::non_negative(net.weight_decay))?;
            check(&key("momentum"), rules::non_negative(net.momentum))?;
        }
        if self.student.checkpoint.is_some() {
            return Err((
                "student.checkpoint".into(),
                "only the teacher can be loaded from a checkpoint".into(),
            ));
        }
        if self.teacher.baseline.is_some() {
            return Err((
                "teacher.baseline".into(),
                "only the student has a baseline".into(),
            ));
        }
        check(
            "distill.temperature",
            rules::temperature(self.distill.temperature),
        )?;
        check("distill.alpha", rules::alpha(self.distill.alpha))?;
        Ok(())
    }

    /// The value at a dotted key, as TOML.
    pub fn get(&self, key: &str) -> Option<toml::Value> {
        let root = toml::Value::try_from(self).ok()?;
        key.split('.')
            .try_fold(root, |v, part| v.get(part).cloned())
    }

    /// This preset with one live key changed, validated; the error says why a value is refused.
    pub fn with_edit(&self, key: &str, raw: &str) -> Result<Preset, String> {
        if !LIVE_KEYS.contains(&key) {
            return Err(format!(
                "`{key}` cannot change during a run (live keys: {})",
                LIVE_KEYS.join(", ")
            ));
        }
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(format!("`{key}` needs a value"));
        }
        let mut doc: toml_edit::DocumentMut =
            self.to_toml().parse().expect("a serialized preset parses");
        set_dotted(&mut doc, key, parse_override_value(raw))?;
        let edited: Preset = toml::from_str(&doc.to_string()).map_err(|e| {
            format!(
                "`{raw}` is not a valid {key}: {}",
                plain_types(e.message().trim())
            )
        })?;
        edited.validate().map_err(|(k, m)| format!("{k} {m}"))?;
        Ok(edited)
    }

    /// The preset as TOML, as the run folder records it.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a preset always serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ov(s: &str) -> Override {
        s.parse().unwrap()
    }

    #[test]
    fn shipped_presets_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("presets");
        let mut count = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                load_file(&path, &[]).unwrap_or_else(|e| panic!("{e}"));
                count += 1;
            }
        }
        assert!(count >= 2, "digits and mnist presets");
    }

    #[test]
    fn default_preset_loads() {
        let p = load(DEFAULT_PRESET, DEFAULT_PRESET_NAME, &[]).unwrap();
        assert_eq!(p.data.source, DataSource::Digits);
        assert_eq!(p.distill.method, Method::Soft);
    }

    #[test]
    fn overrides_change_values_and_types() {
        let p = load(
            DEFAULT_PRESET,
            "d",
            &[
                ov("teacher.lr=3e-4"),
                ov("distill.method=hard"),
                ov("student.model.hidden=[8, 4]"),
            ],
        )
        .unwrap();
        assert_eq!(p.teacher.lr, 3e-4);
        assert_eq!(p.distill.method, Method::Hard);
        assert_eq!(p.student.model.hidden, vec![8, 4]);
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let text = DEFAULT_PRESET.replace("[distill]", "[distill]\ntemprature = 3.0");
        let e = load(&text, "x.toml", &[]).unwrap_err();
        let line = text
            .lines()
            .position(|l| l.starts_with("temprature"))
            .unwrap()
            + 1;
        assert_eq!(e.line_col.map(|l| l.0), Some(line), "{e}");
        assert!(e.to_string().contains("temprature"), "{e}");
        assert!(
            e.to_string().contains("temperature"),
            "lists allowed keys: {e}"
        );
    }

    #[test]
    fn out_of_range_values_are_rejected_with_location() {
        for (from, to, key) in [
            (
                "temperature = 4.0",
                "temperature = 0.0",
                "distill.temperature",
            ),
            ("alpha = 0.9", "alpha = 1.5", "distill.alpha"),
            (
                "val_fraction = 0.1",
                "val_fraction = 0.0",
                "data.val_fraction",
            ),
        ] {
            let text = DEFAULT_PRESET.replacen(from, to, 1);
            let e = load(&text, "x.toml", &[]).unwrap_err();
            assert_eq!(e.key, key);
            let line = text
                .lines()
                .position(|l| l.trim_start().starts_with(to))
                .unwrap()
                + 1;
            assert_eq!(e.line_col.unwrap().0, line, "{e}");
        }
    }

    #[test]
    fn override_errors_blame_the_flag() {
        let e = load(DEFAULT_PRESET, "x.toml", &[ov("teacher.epochs=0")]).unwrap_err();
        assert_eq!(e.origin, "--set teacher.epochs=0");
        assert_eq!(e.key, "teacher.epochs");
        let e = load(DEFAULT_PRESET, "x.toml", &[ov("teacher.epochs=ten")]).unwrap_err();
        assert_eq!(e.key, "teacher.epochs");
        assert!(e.message.contains("integer"), "{e}");
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let e = load("name = \"x\"\n[data\n", "bad.toml", &[]).unwrap_err();
        assert_eq!(e.line_col.unwrap().0, 2, "{e}");
    }

    #[test]
    fn override_syntax_is_checked() {
        assert!("teacher.lr".parse::<Override>().is_err());
        assert!(".lr=1".parse::<Override>().is_err());
    }

    #[test]
    fn live_edits_are_validated() {
        let p = load(DEFAULT_PRESET, "d", &[]).unwrap();
        let e = p.with_edit("distill.temperature", "8").unwrap();
        assert_eq!(e.distill.temperature, 8.0);
        assert_eq!(e.get("distill.temperature"), Some(toml::Value::Float(8.0)));
        assert_eq!(
            p.with_edit("distill.method", "hard")
                .unwrap()
                .distill
                .method,
            Method::Hard
        );
        assert!(p
            .with_edit("distill.temperature", "-1")
            .unwrap_err()
            .contains("> 0"));
        assert!(p
            .with_edit("distill.alpha", "1.5")
            .unwrap_err()
            .contains("[0, 1]"));
        assert!(p.with_edit("teacher.lr", "0").unwrap_err().contains("> 0"));
        assert!(p
            .with_edit("teacher.lr", "fast")
            .unwrap_err()
            .contains("not a valid teacher.lr"));
        assert!(p
            .with_edit("distill.method", "magic")
            .unwrap_err()
            .contains("hard"));
        assert!(p
            .with_edit("teacher.model.hidden", "[3]")
            .unwrap_err()
            .contains("cannot change"));
    }

    #[test]
    fn resolved_preset_round_trips() {
        let p = load(DEFAULT_PRESET, "d", &[ov("seed=11")]).unwrap();
        let again = load(&p.to_toml(), "resolved", &[]).unwrap();
        assert_eq!(p, again);
    }
}
