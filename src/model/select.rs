//! Weight selection (Xu et al., ICLR 2024, "Initializing Models with Larger Ones"): a student
//! starts from weights selected out of the trained teacher's instead of a random
//! initialisation (`student.init = "teacher"`, `student.baseline_init = "teacher"`).
//!
//! Which pairs map (`check`, before training; anything else is refused, naming the mismatch):
//! - mlp to mlp: as many hidden layers, each no wider than the teacher's; layer i from layer i.
//! - cnn to cnn: as many conv blocks and head layers, each no wider; the same kernel, stride,
//!   padding, pooling and batch norm (the feature map's size, and so the head's input, must
//!   agree). Batch norm's weights and running statistics follow their conv's channels.
//! - resnet to resnet: no deeper and no wider; each stage's blocks are the teacher's first ones
//!   (a block's identity shortcut takes the selected channels where the teacher's block had a
//!   projection).
//!
//! Which entries: the student's variables carry the teacher's names (`VarStore::variables`), and
//! each dimension of each tensor is selected on its own by `uniform`, the uniform element
//! selection of the paper's code: a teacher dimension of `t` entries gives a student's `s`
//! entries `i * (t / s)` where `s` divides `t`, else `round(i * (t - 1) / (s - 1))` (a linspace
//! from the first entry to the last, rounded half to even, computed exactly). A layer's output
//! units and the next layer's inputs have the same sizes, so they get the same indices; equal
//! sizes select everything in order, so a student of the teacher's shape receives exactly the
//! teacher's weights. One exception: a cnn's first head layer reads the last feature map
//! flattened channel-major, and its inputs are selected by whole channels (those the last conv
//! block kept, each with its height x width positions).
//!
//! The selection is a function of the teacher's weights alone: a resumed run, whose teacher is
//! read back from `teacher.safetensors`, selects the same.

use crate::config::ModelConfig;
use tch::{nn, Tensor};

/// Why `teacher`'s weights cannot map onto `student`, if they cannot.
pub fn check(teacher: &ModelConfig, student: &ModelConfig) -> Result<(), String> {
    let kind = |m: &ModelConfig| match m {
        ModelConfig::Mlp(_) => "mlp",
        ModelConfig::Cnn(_) => "cnn",
        ModelConfig::Resnet(_) => "resnet",
        ModelConfig::Torchscript(_) => "torchscript",
    };
    match (teacher, student) {
        (ModelConfig::Torchscript(_), _) | (_, ModelConfig::Torchscript(_)) => Err(format!(
            "a TorchScript model's weights are not built from a shape here; selection needs an \
             mlp, cnn or resnet on both sides (teacher {teacher}, student {student})"
        )),
        (ModelConfig::Mlp(t), ModelConfig::Mlp(s)) => widths("hidden layer", &t.hidden, &s.hidden),
        (ModelConfig::Cnn(t), ModelConfig::Cnn(s)) => {
            let same = [
                ("kernel", t.kernel, s.kernel),
                ("stride", t.stride, s.stride),
                ("padding", t.padding(), s.padding()),
                ("batch_norm", t.batch_norm as usize, s.batch_norm as usize),
            ];
            if let Some((key, t, s)) = same.into_iter().find(|(_, t, s)| t != s) {
                return Err(format!(
                    "the teacher's {key} is {t} and the student's {s}: a cnn's weights map \
                     only onto the same {key}"
                ));
            }
            if t.pool != s.pool {
                return Err(format!(
                    "the teacher pools {:?} and the student {:?}: the head's inputs would not \
                     map",
                    t.pool, s.pool
                ));
            }
            widths("conv block", &t.channels, &s.channels)?;
            widths("head layer", &t.hidden, &s.hidden)
        }
        (ModelConfig::Resnet(t), ModelConfig::Resnet(s)) => {
            if s.depth > t.depth {
                return Err(format!(
                    "the student ({student}) is deeper than the teacher ({teacher}): each stage \
                     takes the teacher's first blocks"
                ));
            }
            if s.width > t.width {
                return Err(format!(
                    "the student ({student}) is wider than the teacher ({teacher})"
                ));
            }
            Ok(())
        }
        _ => Err(format!(
            "the {} teacher's weights do not map onto the {} student ({teacher} to {student}): \
             selection needs the same kind on both sides",
            kind(teacher),
            kind(student)
        )),
    }
}

/// As many layers, each no wider in the student.
fn widths(what: &str, teacher: &[usize], student: &[usize]) -> Result<(), String> {
    if teacher.len() != student.len() {
        return Err(format!(
            "the teacher has {} {what}s and the student {}: selection maps {what} to {what}",
            teacher.len(),
            student.len()
        ));
    }
    match teacher.iter().zip(student).position(|(t, s)| s > t) {
        Some(i) => Err(format!(
            "{what} {} has {} units in the student and {} in the teacher: a student's can be \
             no wider",
            i + 1,
            student[i],
            teacher[i]
        )),
        None => Ok(()),
    }
}

/// The `student` of a teacher dimension's `teacher` entries that the student keeps, in order
/// (`student <= teacher`).
pub fn uniform(teacher: usize, student: usize) -> Vec<i64> {
    assert!(0 < student && student <= teacher, "{student} of {teacher}");
    if teacher.is_multiple_of(student) {
        let step = teacher / student;
        return (0..student).map(|i| (i * step) as i64).collect();
    }
    // student >= 2 here: 1 divides every size.
    let (last, gaps) = (teacher - 1, student - 1);
    (0..student)
        .map(|i| {
            let (q, r) = (i * last / gaps, i * last % gaps);
            let up = 2 * r > gaps || (2 * r == gaps && q % 2 == 1);
            (q + usize::from(up)) as i64
        })
        .collect()
}

/// `uniform` over groups of `size` consecutive entries: whole groups kept or left.
fn grouped(teacher: usize, student: usize, size: usize) -> Vec<i64> {
    uniform(teacher, student)
        .into_iter()
        .flat_map(|g| (0..size as i64).map(move |p| g * size as i64 + p))
        .collect()
}

/// Copies into every variable of `student` (built from `student_cfg`) its selection out of the
/// same-named variable of `teacher` (built from `teacher_cfg`); `check` must have passed.
pub fn select(
    teacher: &nn::VarStore,
    teacher_cfg: &ModelConfig,
    student: &nn::VarStore,
    student_cfg: &ModelConfig,
) -> Result<(), String> {
    check(teacher_cfg, student_cfg)?;
    let from = teacher.variables();
    // A cnn head's first layer reads [channels, height, width] flattened.
    let flat = match (teacher_cfg, student_cfg) {
        (ModelConfig::Cnn(t), ModelConfig::Cnn(s)) => t.channels.last().zip(s.channels.last()),
        _ => None,
    };
    let mut names: Vec<(String, Tensor)> = student.variables().into_iter().collect();
    names.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, mut to) in names {
        let source = from
            .get(&name)
            .ok_or_else(|| format!("the teacher has no `{name}` for the student's"))?;
        let (t_shape, s_shape) = (source.size(), to.size());
        if t_shape.len() != s_shape.len() {
            return Err(format!(
                "`{name}` is {t_shape:?} in the teacher and {s_shape:?} in the student"
            ));
        }
        let mut picked = source.shallow_clone();
        for (dim, (&t, &s)) in t_shape.iter().zip(&s_shape).enumerate() {
            if t == s {
                continue;
            }
            if s > t {
                return Err(format!(
                    "`{name}` is {t_shape:?} in the teacher and {s_shape:?} in the student"
                ));
            }
            let (t, s) = (t as usize, s as usize);
            let index = match flat {
                Some((&tc, &sc)) if name == "classifier.0.weight" && dim == 1 => {
                    let size = t / tc;
                    if t != tc * size || s != sc * size {
                        return Err(format!(
                            "`{name}`'s inputs ({t} and {s}) are not {tc} and {sc} channels \
                             of one feature map's size"
                        ));
                    }
                    grouped(tc, sc, size)
                }
                _ => uniform(t, s),
            };
            let index = Tensor::from_slice(&index).to_device(source.device());
            picked = picked.index_select(dim as i64, &index);
        }
        tch::no_grad(|| to.copy_(&picked));
    }
    Ok(())
}

#[cfg(test)]
#[path = "select_tests.rs"]
mod tests;
