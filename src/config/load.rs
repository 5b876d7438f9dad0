//! Loading presets: TOML text with positions, `--set` overrides, live edits, and errors that
//! name the file, line, column and key.

use super::Preset;
use std::fmt;
use std::io::Read;
use std::path::Path;

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
        let value = value.trim();
        decimal_integers(value).map_err(|m| format!("key `{key}`: {m}"))?;
        Ok(Override {
            key: key.to_string(),
            value: value.to_string(),
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

/// TOML reads `0x46`, `0o106`, `7_0` as integers, but a number typed on the command line or in
/// the cockpit is also compared as the decimal it says (resuming for more epochs): there only
/// plain decimal integers are integers.
fn decimal_integers(raw: &str) -> Result<(), String> {
    if let Ok(toml_edit::Value::Integer(n)) = raw.parse::<toml_edit::Value>() {
        let digits = raw.strip_prefix(['+', '-']).unwrap_or(raw);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "`{raw}` is not a number; write integers in decimal (`{}`)",
                n.value()
            ));
        }
    }
    Ok(())
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
    let mut preset: Preset = serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let key = if key == "." { String::new() } else { key };
        let inner = e.into_inner();
        let key = with_unknown_field(key, inner.message());
        blame(&key, inner.span(), plain_types(inner.message()))
    })?;
    // A preset written for one method, switched to another with --set: the file's settings
    // were for its method; the new one starts from its defaults and the other --set values.
    let file_method = text
        .parse::<toml::Table>()
        .ok()
        .and_then(|t| t.get("distill")?.get("method")?.as_str().map(String::from));
    if file_method.is_some_and(|m| m != preset.distill.method.as_str()) {
        let given: Vec<&str> = overrides
            .iter()
            .filter_map(|o| o.key.strip_prefix("distill."))
            .collect();
        preset.distill.reset_for_switch(&given);
    }
    preset.distill.complete();
    preset
        .validate()
        .map_err(|(key, message)| blame(&key, located.span_of(&key), message))?;
    Ok(preset)
}

/// The path of an unknown key. Inside a tagged table (`model = { kind = ... }`) serde's path
/// stops at the table; the message names the field, so the key is completed from it.
fn with_unknown_field(key: String, message: &str) -> String {
    let field = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next());
    match field {
        Some(f) if !key.ends_with(&format!(".{f}")) && key != f => {
            if key.is_empty() {
                f.to_string()
            } else {
                format!("{key}.{f}")
            }
        }
        _ => key,
    }
}

/// serde names Rust types ("expected usize"); say what a preset author would write instead.
fn plain_types(message: &str) -> String {
    message
        .replace("expected usize", "expected a non-negative integer")
        .replace("expected u64", "expected a non-negative integer")
        .replace("expected f64", "expected a number")
        .replace("a boolean", "true or false")
}

/// The largest preset file read: presets are a few kilobytes; `/dev/zero` is not one.
pub const MAX_PRESET_BYTES: u64 = 4 << 20;

/// Reads and loads a preset file (at most `MAX_PRESET_BYTES`).
pub fn load_file(path: &Path, overrides: &[Override]) -> Result<Preset, PresetError> {
    let origin = path.display().to_string();
    let refuse = |message: String| PresetError {
        origin: origin.clone(),
        line_col: None,
        key: String::new(),
        message,
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_PRESET_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| refuse(format!("cannot read preset: {e}")))?;
    if bytes.len() as u64 > MAX_PRESET_BYTES {
        return Err(refuse(format!(
            "larger than {} MiB, the most a preset may be",
            MAX_PRESET_BYTES >> 20
        )));
    }
    let text = String::from_utf8(bytes).map_err(|_| refuse("is not UTF-8 text".into()))?;
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

impl Preset {
    /// This preset with one live key changed, validated; the error says why a value is refused.
    pub fn with_edit(&self, key: &str, raw: &str) -> Result<Preset, String> {
        let live = self.live_keys();
        if !live.iter().any(|k| k == key) {
            return Err(format!(
                "`{key}` cannot change during a run (live keys: {})",
                live.join(", ")
            ));
        }
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(format!("`{key}` needs a value"));
        }
        decimal_integers(raw)?;
        let mut doc: toml_edit::DocumentMut =
            self.to_toml().parse().expect("a serialized preset parses");
        set_dotted(&mut doc, key, parse_override_value(raw))?;
        let mut edited: Preset = toml::from_str(&doc.to_string()).map_err(|e| {
            format!(
                "`{raw}` is not a valid {key}: {}",
                plain_types(e.message().trim())
            )
        })?;
        if edited.distill.method != self.distill.method {
            let on_features = [edited.distill.method, self.distill.method]
                .into_iter()
                .find(|m| m.on_features());
            if let Some(m) = on_features {
                return Err(format!(
                    "`{}` cannot be switched to or from during a run: the layers it learns \
                     from (and hint's regressor) are set up when the distilled phase starts",
                    m.as_str()
                ));
            }
            edited.distill.reset_for_switch(&[]);
        }
        edited.distill.complete();
        edited.validate().map_err(|(k, m)| {
            if k == key {
                format!("`{raw}` is not a valid {key}: {m}")
            } else {
                format!("{k} {m}")
            }
        })?;
        Ok(edited)
    }

    /// `with_edit` within the run's data: a batch size no larger than the training split
    /// (`train_examples`; 0: not known), which a step would otherwise take whole.
    pub fn with_run_edit(
        &self,
        key: &str,
        raw: &str,
        train_examples: usize,
    ) -> Result<Preset, String> {
        let edited = self.with_edit(key, raw)?;
        let batch = key
            .strip_suffix(".batch_size")
            .and_then(|_| edited.get(key)?.as_integer());
        match batch {
            Some(batch) if train_examples > 0 && batch as usize > train_examples => Err(format!(
                "a batch of {batch} is larger than the training split: at most {train_examples}"
            )),
            _ => Ok(edited),
        }
    }
}

#[cfg(test)]
mod tests;
