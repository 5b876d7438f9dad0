//! Sizes and shapes that cross the seam: an example's shape, a model's size.

use std::fmt;

/// The shape of one example: `[features]` for tabular data, `[channels, height, width]` for
/// images.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct InputShape(Vec<usize>);

impl InputShape {
    pub fn flat(features: usize) -> InputShape {
        InputShape(vec![features])
    }

    pub fn image(channels: usize, height: usize, width: usize) -> InputShape {
        InputShape(vec![channels, height, width])
    }

    pub fn dims(&self) -> &[usize] {
        &self.0
    }

    /// Values per example.
    pub fn numel(&self) -> usize {
        self.0.iter().product()
    }
}

impl fmt::Display for InputShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dims: Vec<String> = self.0.iter().map(usize::to_string).collect();
        write!(f, "[{}]", dims.join(", "))
    }
}

/// Size of a model's trainable parameters (batch-norm running statistics are not counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ModelSize {
    pub params: usize,
    pub bytes: usize,
}

/// Where a student's weights start: `random` (the seeded initialisation) or `teacher` (weights
/// selected out of the trained teacher's: `model::select`). The preset's `student.init` and
/// `student.baseline_init`; the summary records each student's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightInit {
    #[default]
    Random,
    Teacher,
}

impl WeightInit {
    pub fn is_random(&self) -> bool {
        *self == WeightInit::Random
    }

    pub fn as_str(self) -> &'static str {
        match self {
            WeightInit::Random => "random",
            WeightInit::Teacher => "teacher",
        }
    }
}
