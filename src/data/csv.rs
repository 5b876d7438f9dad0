//! CSV files as people have them: numbers in every column but the label's, an optional header
//! line, the label column anywhere (by name or index), class values of any spelling.
//!
//! Labels are class *values*, mapped to indices `0..k` in sorted order (numerically when every
//! value is a number), unless the preset lists `data.classes` itself. Labels that are equal
//! numbers (`1`, `1.0`, `1e0`) are one class.

use super::{err, DataError, Raw, Values};
use crate::config::bounds::{class_key, ClassKey};
use crate::config::{DataConfig, Header, LabelColumn};
use crate::protocol::InputShape;
use std::collections::{HashMap, HashSet};

pub struct Options {
    pub label: Option<LabelColumn>,
    pub header: Header,
    pub classes: Option<Vec<String>>,
}

impl Options {
    pub fn of(cfg: &DataConfig) -> Options {
        Options {
            label: cfg.label.clone(),
            header: cfg.header,
            classes: cfg.classes.clone(),
        }
    }

    /// The embedded digits: 64 pixels then the label, no header.
    pub fn label_last_no_header() -> Options {
        Options {
            label: None,
            header: Header::Given(false),
            classes: None,
        }
    }
}

fn fields(line: &str) -> Vec<&str> {
    line.split(',')
        .map(|f| f.trim().trim_matches('"'))
        .collect()
}

/// Index of the label column among `count` columns.
fn label_column(
    options: &Options,
    header: Option<&[&str]>,
    count: usize,
    name: &str,
) -> Result<usize, DataError> {
    match &options.label {
        None => Ok(count - 1),
        Some(LabelColumn::Index(i)) => {
            let at = if *i < 0 { count as i64 + i } else { *i };
            usize::try_from(at)
                .ok()
                .filter(|&a| a < count)
                .ok_or_else(|| {
                    err(
                        name,
                        format!(
                        "data.label = {i}: the file has {count} columns (0..{} or -1..-{count})",
                        count - 1
                    ),
                    )
                })
        }
        Some(LabelColumn::Name(wanted)) => {
            let header = header.ok_or_else(|| {
                err(
                    name,
                    format!(
                        "data.label = \"{wanted}\" names a column, but the file has no header \
                         line (data.header = false, or its first line is all numbers)"
                    ),
                )
            })?;
            header.iter().position(|h| h == wanted).ok_or_else(|| {
                err(
                    name,
                    format!(
                        "data.label = \"{wanted}\": no such column; the header has: {}",
                        header.join(", ")
                    ),
                )
            })
        }
    }
}

/// Parses the file; returns the examples (labels as class indices) and the class values.
pub fn parse(bytes: &[u8], name: &str, options: &Options) -> Result<(Raw, Vec<String>), DataError> {
    let text = std::str::from_utf8(bytes).map_err(|_| err(name, "is not UTF-8 text"))?;
    // Spreadsheets save UTF-8 with a byte-order mark; it is not part of the first field.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.trim().is_empty())
        .peekable();
    let &(_, first) = lines
        .peek()
        .ok_or_else(|| err(name, "contains no examples"))?;
    let first = fields(first);
    let count = first.len();
    if count < 2 {
        return Err(err(name, "line 1: needs at least one feature and a label"));
    }
    let is_number = |f: &&str| f.parse::<f64>().is_ok();
    let has_header = match options.header {
        Header::Given(h) => h,
        // A header is a first line with a non-number outside the label column (anywhere, when
        // the label column is named).
        Header::Auto => match &options.label {
            Some(LabelColumn::Name(_)) => !first.iter().all(is_number),
            _ => {
                let label = label_column(options, None, count, name)?;
                first
                    .iter()
                    .enumerate()
                    .any(|(i, f)| i != label && !is_number(f))
            }
        },
    };
    let header = has_header.then(|| first.clone());
    let label = label_column(options, header.as_deref(), count, name)?;
    if has_header {
        lines.next();
    }
    let mut features = Vec::new();
    let mut values: Vec<(usize, String)> = Vec::new();
    for (line_no, line) in lines {
        let fields = fields(line);
        if fields.len() != count {
            return Err(err(
                name,
                format!(
                    "line {line_no}: expected {count} fields, found {}",
                    fields.len()
                ),
            ));
        }
        for (i, v) in fields.iter().enumerate() {
            if i == label {
                continue;
            }
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
        if fields[label].is_empty() {
            return Err(err(name, format!("line {line_no}: the label is empty")));
        }
        values.push((line_no, fields[label].to_string()));
    }
    if values.is_empty() {
        return Err(err(name, "contains no examples"));
    }
    let classes = options
        .classes
        .clone()
        .unwrap_or_else(|| class_values(&values));
    let index: HashMap<ClassKey, i64> = classes
        .iter()
        .enumerate()
        .map(|(i, c)| (class_key(c), i as i64))
        .collect();
    let labels = values
        .iter()
        .map(|(line_no, v)| {
            index.get(&class_key(v)).copied().ok_or_else(|| {
                err(
                    name,
                    format!(
                        "line {line_no}: label `{v}` is not one of data.classes ({})",
                        classes.join(", ")
                    ),
                )
            })
        })
        .collect::<Result<Vec<i64>, DataError>>()?;
    let raw = Raw {
        features: Values::Floats(features),
        labels,
        shape: InputShape::flat(count - 1),
    };
    Ok((raw, classes))
}

/// The distinct label values, numerically sorted when they are all numbers (`2` before `10`).
/// Equal numbers are one class, named by its first spelling in text order (`1` for `1.0`).
fn class_values(values: &[(usize, String)]) -> Vec<String> {
    let mut spellings: Vec<&str> = values.iter().map(|(_, v)| v.as_str()).collect();
    spellings.sort_unstable();
    spellings.dedup();
    let mut seen = HashSet::new();
    let mut distinct: Vec<&str> = spellings
        .into_iter()
        .filter(|v| seen.insert(class_key(v)))
        .collect();
    let numbers: Option<Vec<f64>> = distinct.iter().map(|v| v.parse().ok()).collect();
    if let Some(numbers) = numbers {
        let mut paired: Vec<(f64, &str)> = numbers.into_iter().zip(distinct).collect();
        paired.sort_by(|a, b| a.0.total_cmp(&b.0));
        distinct = paired.into_iter().map(|(_, v)| v).collect();
    }
    distinct.into_iter().map(String::from).collect()
}

#[cfg(test)]
mod tests;
