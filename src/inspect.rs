//! `kd-tui models PRESET`: what the preset's teacher and student are, layer by layer, and the
//! check that the layers a method on features names exist, both from a forward pass of one example.

use crate::config::{DataSource, ModelConfig, Preset};
use crate::model::{Model, Torchscript};
use crate::protocol::InputShape;
use tch::{Device, Kind, Tensor};

/// Each named layer of a model with the shape of its output for one example.
pub fn layers(
    cfg: &ModelConfig,
    input: &InputShape,
    classes: usize,
) -> Result<Vec<(String, Vec<i64>)>, String> {
    let model = Model::new(cfg, input, classes, Device::Cpu).map_err(|e| e.to_string())?;
    let x = Tensor::zeros([1, input.numel() as i64], (Kind::Float, Device::Cpu));
    let (_, features) = tch::no_grad(|| model.net.forward_features(&x, false));
    Ok(features
        .into_iter()
        .map(|(name, t)| (name, t.size()[1..].to_vec()))
        .collect())
}

/// The shape of one example, and the classes, of a fixed-format source as its standard files
/// have them (MNIST: 1x28x28 images, CIFAR-10: 3x32x32; ten classes each); `None` for sources
/// whose shape only their files tell.
pub fn format_shape(source: DataSource) -> Option<(InputShape, usize)> {
    match source {
        DataSource::Mnist => Some((InputShape::image(1, 28, 28), 10)),
        DataSource::Cifar10 => Some((InputShape::image(3, 32, 32), 10)),
        _ => None,
    }
}

/// The models of a preset for data of `input` shape, as text.
pub fn describe(preset: &Preset, input: &InputShape, classes: usize) -> Result<String, String> {
    let mut out = format!("input {input}, {classes} classes\n");
    for (role, net) in [("teacher", &preset.teacher), ("student", &preset.student)] {
        let model =
            Model::new(&net.model, input, classes, Device::Cpu).map_err(|e| e.to_string())?;
        out.push_str(&format!(
            "\n{role}: {} ({} parameters)\n",
            net.model,
            model.size().params
        ));
        for (name, shape) in layers(&net.model, input, classes)? {
            out.push_str(&format!("  {name:<16} {shape:?}\n"));
        }
        out.push_str(&format!("  {:<16} [{classes}] (logits)\n", "output"));
    }
    Ok(out)
}

/// A weights file against the model it should hold: every tensor the model has, of its shape,
/// and no other; the error lists the differences.
pub fn check_weights(
    cfg: &ModelConfig,
    input: &InputShape,
    classes: usize,
    path: &std::path::Path,
) -> Result<(), String> {
    let saved: std::collections::BTreeMap<String, Vec<i64>> = Tensor::read_safetensors(path)
        .map_err(|e| format!("cannot be read as safetensors ({e})"))?
        .into_iter()
        .map(|(name, t)| (name, t.size()))
        .collect();
    let model = Model::new(cfg, input, classes, Device::Cpu).map_err(|e| e.to_string())?;
    let wanted: std::collections::BTreeMap<String, Vec<i64>> = model
        .vs
        .variables()
        .into_iter()
        .map(|(name, t)| (name, t.size()))
        .collect();
    let mut problems: Vec<String> = Vec::new();
    for (name, shape) in &wanted {
        match saved.get(name) {
            None => problems.push(format!("`{name}` {shape:?} is missing")),
            Some(s) if s != shape => problems.push(format!(
                "`{name}` is {s:?} in the file, {shape:?} in `{cfg}`"
            )),
            Some(_) => {}
        }
    }
    problems.extend(
        saved
            .keys()
            .filter(|name| !wanted.contains_key(*name))
            .map(|name| format!("`{name}` is not in `{cfg}`")),
    );
    if problems.is_empty() {
        return Ok(());
    }
    let shown = problems.len().min(8);
    let more = problems.len() - shown;
    Err(format!(
        "does not hold the teacher the preset describes: {}{}",
        problems[..shown].join("; "),
        if more > 0 {
            format!("; and {more} more")
        } else {
            String::new()
        }
    ))
}

/// A method on features (`hint`, `at`, ...): the named teacher and student layers exist (the
/// error lists the names there are), and output feature maps where the method needs them.
pub fn check_feature_layers(
    preset: &Preset,
    input: &InputShape,
    classes: usize,
) -> Result<(), String> {
    let method = preset.distill.method;
    if !method.on_features() {
        return Ok(());
    }
    let (teachers, students) = (
        preset.distill.names("teacher_layer"),
        preset.distill.names("student_layer"),
    );
    if teachers.len() != students.len() {
        return Err(format!(
            "key `distill.student_layer`: {} student layer(s) for {} teacher layer(s) in \
             `distill.teacher_layer`; `{}` pairs them in order, so give as many of each",
            students.len(),
            teachers.len(),
            method.as_str()
        ));
    }
    for (role, net, names) in [
        ("teacher", &preset.teacher, teachers),
        ("student", &preset.student, students),
    ] {
        let layers = layers(&net.model, input, classes)?;
        for wanted in names {
            check_layer(method, role, net, &layers, wanted)?;
        }
    }
    Ok(())
}

/// One named layer of the `role` model `net`, among its `layers`.
fn check_layer(
    method: crate::distill::Method,
    role: &str,
    net: &crate::config::NetConfig,
    layers: &[(String, Vec<i64>)],
    wanted: &str,
) -> Result<(), String> {
    let Some((_, shape)) = layers.iter().find(|(n, _)| n == wanted) else {
        let names: Vec<&str> = layers.iter().map(|(n, _)| n.as_str()).collect();
        return Err(format!(
            "key `distill.{role}_layer`: the {role} ({}) has no layer `{wanted}`; its layers: {}",
            net.model,
            if names.is_empty() {
                "none (a single linear layer)".to_string()
            } else {
                names.join(", ")
            }
        ));
    };
    if method.needs_feature_maps() && shape.len() != 3 {
        return Err(format!(
            "key `distill.{role}_layer`: `{}` needs feature maps on both sides, and the \
             {role}'s layer `{wanted}` ({}) outputs {shape:?} per example, not a map \
             [channels, height, width]; name a convolutional layer (a cnn or resnet {role})",
            method.as_str(),
            net.model,
        ));
    }
    Ok(())
}

/// A TorchScript teacher or student against the data: it loads, and a probe batch of two zero examples
/// `[2, *input]` gives one tensor `[2, classes]`; the error says what went wrong or came back.
pub fn check_torchscript(
    path: &std::path::Path,
    input: &InputShape,
    classes: usize,
) -> Result<(), String> {
    let first = |e: tch::TchError| libtorch_reason(&e.to_string());
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let module = Torchscript::load(&vs, path, input)
        .map_err(|e| format!("cannot be loaded as TorchScript: {}", first(e)))?;
    let x = Tensor::zeros([2, input.numel() as i64], (Kind::Float, Device::Cpu));
    let given = format!("given a batch of 2 examples of shape {input}");
    let out = tch::no_grad(|| module.output(&x))
        .map_err(|e| format!("its forward failed, {given}: {}", first(e)))?;
    let tch::IValue::Tensor(logits) = out else {
        return Err(format!(
            "{given}, it returned {}, not one tensor of logits [2, {classes}]",
            ivalue_kind(&out)
        ));
    };
    match logits.size().as_slice() {
        [2, c] if *c == classes as i64 => Ok(()),
        shape => Err(format!(
            "{given}, it returned a tensor of shape {shape:?}, not logits [2, {classes}] \
             ({classes} classes in the data)"
        )),
    }
}

/// What kind of value a module returned, in words.
fn ivalue_kind(v: &tch::IValue) -> String {
    use tch::IValue as V;
    match v {
        V::Tuple(items) => format!("a tuple of {} values", items.len()),
        V::GenericList(items) => format!("a list of {} values", items.len()),
        V::TensorList(items) => format!("a list of {} tensors", items.len()),
        V::GenericDict(_) => "a dict".into(),
        V::None => "None".into(),
        other => format!("{other:?}").chars().take(40).collect(),
    }
}

/// The line of a libtorch error that says what went wrong: the TorchScript interpreter's
/// `RuntimeError: ...` after its traceback, else the first line (no C++ backtrace).
fn libtorch_reason(text: &str) -> String {
    let text = text.strip_prefix("Internal torch error: ").unwrap_or(text);
    let lines = text
        .split('\n')
        .take_while(|l| !l.starts_with("Exception raised from"));
    let raised = lines.filter(|l| l.contains("Error: ")).last();
    raised
        .or_else(|| text.split(['\n', '\\']).next())
        .unwrap_or(text)
        .trim()
        .to_string()
}
