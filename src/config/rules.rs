//! What values must satisfy: the checks shared by preset validation and live edits, and
//! `Preset::validate`, which applies them with the dotted key they belong to.

use super::{DataConfig, DataSource, MeanStd, ModelConfig, Normalize, Preset, RESNET_DEPTHS};
use crate::distill::DistillConfig;

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
/// A run always reports test accuracy, so the split cannot be empty.
fn test_fraction(f: f64) -> Result<(), String> {
    if f > 0.0 && f < 1.0 {
        Ok(())
    } else {
        Err(format!(
            "must be within (0, 1): a run reports test accuracy (got {f})"
        ))
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

fn sizes(sizes: &[usize], what: &str) -> Result<(), String> {
    if sizes.contains(&0) {
        Err(format!("{what} must be at least 1 (got {sizes:?})"))
    } else {
        Ok(())
    }
}

/// Pairs a message with the key (under `model`) it is about.
fn at(key: &'static str) -> impl Fn(String) -> (String, String) {
    move |m| (key.to_string(), m)
}

/// Checks one model's shape keys; the error names the key under `model`.
fn model(cfg: &ModelConfig) -> Result<(), (String, String)> {
    match cfg {
        ModelConfig::Mlp(m) => {
            if m.hidden.is_empty() {
                return Err(at("hidden")(
                    "must list at least one hidden layer size, e.g. [256, 256]".into(),
                ));
            }
            sizes(&m.hidden, "layer sizes").map_err(at("hidden"))?;
            dropout(m.dropout).map_err(at("dropout"))
        }
        ModelConfig::Cnn(c) => {
            if c.channels.is_empty() {
                return Err(at("channels")(
                    "must list at least one conv block's channels, e.g. [32, 64]".into(),
                ));
            }
            sizes(&c.channels, "channel counts").map_err(at("channels"))?;
            positive_count(c.kernel).map_err(at("kernel"))?;
            positive_count(c.stride).map_err(at("stride"))?;
            sizes(&c.hidden, "layer sizes").map_err(at("hidden"))?;
            dropout(c.dropout).map_err(at("dropout"))
        }
        ModelConfig::Resnet(r) => {
            if !RESNET_DEPTHS.contains(&r.depth) {
                return Err(at("depth")(format!(
                    "must be one of {RESNET_DEPTHS:?} (6n + 2; got {})",
                    r.depth
                )));
            }
            positive_count(r.width).map_err(at("width"))
        }
        ModelConfig::Torchscript(t) => match t.path.as_os_str().is_empty() {
            true => Err(at("path")(
                "must name a TorchScript file, e.g. \"teacher.pt\"".into(),
            )),
            false => Ok(()),
        },
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
        check("log_every", positive_count(self.log_every))?;
        self.check_bounds()?;
        check("diverge_factor", non_negative(self.diverge_factor))?;
        check("checkpoint_minutes", non_negative(self.checkpoint_minutes))?;
        if let Some(sweep) = &self.sweep {
            let keys = sweep
                .grid
                .keys()
                .chain(sweep.points.iter().flat_map(|p| p.keys()));
            for key in keys {
                if ["name", "seed", "seeds"].contains(&key.as_str()) || key.starts_with("sweep") {
                    return Err((
                        format!("sweep.{key}"),
                        "a sweep varies training settings; use seeds = [..] for seeds".into(),
                    ));
                }
            }
            if sweep.grid.values().any(Vec::is_empty) {
                return Err((
                    "sweep".into(),
                    "every swept key needs at least one value".into(),
                ));
            }
            if sweep.grid.is_empty() == sweep.points.is_empty() {
                return Err((
                    "sweep".into(),
                    "give either keys with lists of values (a grid) or `points`, not both".into(),
                ));
            }
        }
        if let Some(seeds) = &self.seeds {
            let mut distinct = seeds.clone();
            distinct.sort_unstable();
            distinct.dedup();
            if seeds.is_empty() || distinct.len() != seeds.len() {
                return Err((
                    "seeds".into(),
                    "must list one or more different seeds, e.g. [1, 2, 3]".into(),
                ));
            }
        }
        let device = crate::device::parse(&self.device);
        check("device", device.map(|_| ()))?;
        let timeout = self.distributed.timeout_s;
        // A day bounds it: a rank that waits longer is stuck, and 1e300 s is no Duration.
        if !(1.0..=86_400.0).contains(&timeout) {
            return Err((
                "distributed.timeout_s".into(),
                format!("must be within [1, 86400] seconds (got {timeout})"),
            ));
        }
        data(&self.data)?;
        for (role, net) in [("teacher", &self.teacher), ("student", &self.student)] {
            let key = |k: &str| format!("{role}.{k}");
            model(&net.model).map_err(|(k, m)| (key(&format!("model.{k}")), m))?;
            if net.checkpoint.is_none() && !net.model.is_torchscript() {
                check(&key("epochs"), positive_count(net.epochs))?;
            }
            check(&key("batch_size"), positive_count(net.batch_size))?;
            check(&key("lr"), lr(net.lr))?;
            check(&key("weight_decay"), non_negative(net.weight_decay))?;
            check(&key("momentum"), non_negative(net.momentum))?;
        }
        if self.student.checkpoint.is_some() {
            return Err((
                "student.checkpoint".into(),
                "only the teacher can be loaded from a checkpoint".into(),
            ));
        }
        if self.teacher.model.is_torchscript() && self.teacher.checkpoint.is_some() {
            return Err((
                "teacher.checkpoint".into(),
                "a TorchScript teacher holds its own weights; give one or the other".into(),
            ));
        }
        let method = crate::distill::spec(self.distill.method);
        for (role, net) in [("teacher", &self.teacher), ("student", &self.student)] {
            if net.model.is_torchscript() && method.param(&format!("{role}_layer")).is_some() {
                return Err((
                    "distill.method".into(),
                    format!(
                        "`{}` needs a named {role} layer, and the TorchScript {role} ({}) has \
                         no named features (only its logits); choose a method on logits",
                        method.name, net.model
                    ),
                ));
            }
        }
        for (key, init) in [
            ("teacher.init", self.teacher.init),
            ("teacher.baseline_init", self.teacher.baseline_init),
        ] {
            if !init.is_random() {
                return Err((
                    key.into(),
                    "only the student starts from the teacher's weights (student.init, \
                     student.baseline_init)"
                        .into(),
                ));
            }
        }
        if self.teacher.baseline.is_some() {
            return Err((
                "teacher.baseline".into(),
                "only the student has a baseline".into(),
            ));
        }
        distill(&self.distill)
    }
}

/// The longest side an image folder's images may be resized to.
pub const MAX_IMAGE_SIDE: usize = 4096;

/// Checks `[data]`: fractions, which keys apply to the source, image settings.
fn data(d: &DataConfig) -> Result<(), (String, String)> {
    let refuse = |key: &str, m: &str| Err((key.to_string(), m.to_string()));
    let check = |key: &str, r: Result<(), String>| r.map_err(|m| (key.to_string(), m));
    check("data.val_fraction", validation_fraction(d.val_fraction))?;
    check("data.test_fraction", test_fraction(d.test_fraction))?;
    if d.val_fraction + d.test_fraction >= 1.0 {
        return refuse(
            "data.val_fraction",
            "val_fraction + test_fraction must leave training data (sum < 1)",
        );
    }
    match (d.source.is_embedded(), &d.path) {
        (true, Some(_)) => {
            return refuse(
                "data.path",
                "the embedded `digits` and `mnist-subset` sources take no path",
            )
        }
        (true, None) | (false, Some(_)) => {}
        (false, None) => {
            return refuse(
                "data.path",
                "required for this source (mnist: folder of IDX files; cifar10: folder of the \
                 binary batches; csv: file; images: the folder holding train/<class>/)",
            )
        }
    }
    let (csv, images) = (d.source == DataSource::Csv, d.source == DataSource::Images);
    for (key, given, applies, to) in [
        ("data.label", d.label.is_some(), csv, "csv files only"),
        ("data.header", !d.header.is_auto(), csv, "csv files only"),
        (
            "data.classes",
            d.classes.is_some(),
            csv || images,
            "csv files and image folders only",
        ),
        (
            "data.channels",
            d.channels.is_some(),
            images,
            "image folders only",
        ),
        ("data.size", d.size.is_some(), images, "image folders only"),
        ("data.skip_bad", d.skip_bad, images, "image folders only"),
        (
            "data.cache",
            !d.cache.is_auto(),
            images,
            "image folders only",
        ),
    ] {
        if given && !applies {
            return refuse(key, &format!("applies to {to}"));
        }
    }
    if d.classes.as_ref().is_some_and(|c| c.len() < 2) {
        return refuse("data.classes", "must list at least two classes");
    }
    if let Some(c) = d.channels.filter(|c| ![1, 3].contains(c)) {
        return refuse(
            "data.channels",
            &format!("must be 1 (gray) or 3 (RGB) (got {c})"),
        );
    }
    if let Some(size) = d
        .size
        .filter(|s| s.iter().any(|&x| x == 0 || x > MAX_IMAGE_SIDE))
    {
        return refuse(
            "data.size",
            &format!("[height, width] must each be within 1..={MAX_IMAGE_SIDE} (got {size:?})"),
        );
    }
    if let Normalize::PerChannel(m) = &d.normalize {
        let channels = d.source.fixed_channels().or(d.channels);
        check("data.normalize", mean_std(m, csv, channels))?;
    }
    if let Some(limit) = d.train_limit {
        check("data.train_limit", positive_count(limit))?;
    }
    Ok(())
}

/// Per-channel statistics: one mean and one positive std per channel (when the channels are
/// known before the data is read; an image folder's default is checked when it is loaded).
fn mean_std(m: &MeanStd, flat: bool, channels: Option<usize>) -> Result<(), String> {
    if flat {
        return Err("mean and std are per image channel; csv data is flat features".into());
    }
    if m.mean.is_empty() || m.mean.len() != m.std.len() {
        return Err(format!(
            "needs one mean and one std per channel (got {} and {})",
            m.mean.len(),
            m.std.len()
        ));
    }
    if let Some(c) = channels.filter(|&c| c != m.mean.len()) {
        return Err(format!(
            "lists {} means and stds for images of {c} channel{}",
            m.mean.len(),
            if c == 1 { "" } else { "s" }
        ));
    }
    if !m.mean.iter().all(|x| x.is_finite()) || !m.std.iter().all(|&s| s.is_finite() && s > 0.0) {
        return Err(format!(
            "means must be numbers and stds numbers > 0 (got mean = {:?}, std = {:?})",
            m.mean, m.std
        ));
    }
    Ok(())
}

/// Checks `[distill]` against the method's declaration: every key declared, every value allowed,
/// every required key given.
fn distill(cfg: &DistillConfig) -> Result<(), (String, String)> {
    let spec = crate::distill::spec(cfg.method);
    let key = |k: &str| format!("distill.{k}");
    for (name, value) in &cfg.params {
        let Some(param) = spec.param(name) else {
            let allowed: Vec<String> = std::iter::once("method")
                .chain(spec.params.iter().map(|p| p.name))
                .map(|n| format!("`{n}`"))
                .collect();
            return Err((
                key(name),
                format!(
                    "unknown field `{name}` for method `{}`, expected one of {}",
                    spec.name,
                    allowed.join(", ")
                ),
            ));
        };
        param.check(value).map_err(|m| (key(name), m))?;
    }
    match spec
        .params
        .iter()
        .find(|p| !cfg.params.contains_key(p.name))
    {
        Some(missing) => Err((
            key(missing.name),
            format!(
                "required by method `{}`: {} ({})",
                spec.name,
                missing.doc,
                missing.allowed()
            ),
        )),
        None => Ok(()),
    }
}
