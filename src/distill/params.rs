//! Hyperparameter declarations and the checks that come from them.

/// What values a number may take.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Range {
    /// `> 0`
    Positive,
    /// `[0, 1]`
    Fraction,
    /// `>= 0`
    NonNegative,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ParamKind {
    Number {
        default: f64,
        range: Range,
    },
    /// A whole number of epochs, `>= 0`.
    Epochs {
        default: usize,
    },
    /// A layer name (`kd-tui models PRESET` lists them); required.
    Layer,
    /// One layer name or a list of them (`["features.0", "features.1"]`); required.
    Layers,
    /// On or off (`true` / `false`).
    Switch {
        default: bool,
    },
    /// A whole number `>= 1` (a width, a number of draws); set before the phase starts.
    Count {
        default: usize,
    },
}

/// One hyperparameter of a method.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Param {
    pub name: &'static str,
    pub kind: ParamKind,
    /// Editable while the run goes on (takes effect at the next step).
    pub live: bool,
    pub doc: &'static str,
}

impl Param {
    pub const fn number(
        name: &'static str,
        default: f64,
        range: Range,
        doc: &'static str,
    ) -> Param {
        Param {
            name,
            kind: ParamKind::Number { default, range },
            live: true,
            doc,
        }
    }

    pub const fn epochs(name: &'static str, default: usize, doc: &'static str) -> Param {
        Param {
            name,
            kind: ParamKind::Epochs { default },
            live: true,
            doc,
        }
    }

    pub const fn switch(name: &'static str, default: bool, doc: &'static str) -> Param {
        Param {
            name,
            kind: ParamKind::Switch { default },
            live: true,
            doc,
        }
    }

    pub const fn count(name: &'static str, default: usize, doc: &'static str) -> Param {
        Param {
            name,
            kind: ParamKind::Count { default },
            live: false,
            doc,
        }
    }

    /// The same, not editable during a run (what it sets is built when the phase starts).
    pub const fn fixed(self) -> Param {
        Param {
            live: false,
            ..self
        }
    }

    pub const fn layer(name: &'static str, doc: &'static str) -> Param {
        Param {
            name,
            kind: ParamKind::Layer,
            live: false,
            doc,
        }
    }

    /// One or more layer names: a name, or a list of names.
    pub const fn layers(name: &'static str, doc: &'static str) -> Param {
        Param {
            kind: ParamKind::Layers,
            ..Param::layer(name, doc)
        }
    }

    /// The value a preset gets when it leaves this out; `None` when it must be given.
    pub fn default_value(&self) -> Option<toml::Value> {
        match self.kind {
            ParamKind::Number { default, .. } => Some(toml::Value::Float(default)),
            ParamKind::Epochs { default } => Some(toml::Value::Integer(default as i64)),
            ParamKind::Layer | ParamKind::Layers => None,
            ParamKind::Switch { default } => Some(toml::Value::Boolean(default)),
            ParamKind::Count { default } => Some(toml::Value::Integer(default as i64)),
        }
    }

    /// Checks a value (as TOML) and returns it in its canonical type (integers given for a
    /// number become floats).
    pub fn check(&self, value: &toml::Value) -> Result<toml::Value, String> {
        match self.kind {
            ParamKind::Number { range, .. } => {
                let x = match value {
                    toml::Value::Float(f) => *f,
                    toml::Value::Integer(i) => *i as f64,
                    other => return Err(format!("expected a number, found {other}")),
                };
                let (ok, allowed) = match range {
                    Range::Positive => (x.is_finite() && x > 0.0, "a number > 0"),
                    Range::Fraction => ((0.0..=1.0).contains(&x), "within [0, 1]"),
                    Range::NonNegative => (x.is_finite() && x >= 0.0, "a number >= 0"),
                };
                if ok {
                    Ok(toml::Value::Float(x))
                } else {
                    Err(format!("must be {allowed} (got {x})"))
                }
            }
            ParamKind::Epochs { .. } => match value {
                toml::Value::Integer(i) if *i >= 0 => Ok(value.clone()),
                other => Err(format!("expected a non-negative integer, found {other}")),
            },
            ParamKind::Layer => match value {
                toml::Value::String(s) if !s.is_empty() => Ok(value.clone()),
                other => Err(format!("expected a layer name in quotes, found {other}")),
            },
            ParamKind::Layers => match value {
                toml::Value::String(s) if !s.is_empty() => Ok(value.clone()),
                toml::Value::Array(names)
                    if !names.is_empty()
                        && names
                            .iter()
                            .all(|n| n.as_str().is_some_and(|s| !s.is_empty())) =>
                {
                    Ok(value.clone())
                }
                other => Err(format!(
                    "expected a layer name in quotes or a list of them, found {other}"
                )),
            },
            ParamKind::Switch { .. } => match value {
                toml::Value::Boolean(_) => Ok(value.clone()),
                other => Err(format!("expected true or false, found {other}")),
            },
            ParamKind::Count { .. } => match value {
                toml::Value::Integer(i) if *i >= 1 => Ok(value.clone()),
                other => Err(format!("expected an integer >= 1, found {other}")),
            },
        }
    }

    /// What the preset documentation and error messages say is allowed.
    pub fn allowed(&self) -> String {
        match self.kind {
            ParamKind::Number { default, range } => {
                let range = match range {
                    Range::Positive => "> 0",
                    Range::Fraction => "in [0, 1]",
                    Range::NonNegative => ">= 0",
                };
                format!("{range}, default {default}")
            }
            ParamKind::Epochs { default } => format!("epochs >= 0, default {default}"),
            ParamKind::Layer => "a layer name (kd-tui models PRESET lists them)".into(),
            ParamKind::Layers => {
                "a layer name or a list of them (kd-tui models PRESET lists them)".into()
            }
            ParamKind::Switch { default } => format!("true or false, default {default}"),
            ParamKind::Count { default } => format!("an integer >= 1, default {default}"),
        }
    }
}
