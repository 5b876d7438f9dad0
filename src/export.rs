//! `kd-tui export RUN_DIR`: a finished run's model for deployment, as TorchScript (traced, for
//! `torch.jit.load`; a TorchScript model is its own module) or as its safetensors weights.
//!
//! The TorchScript module takes a batch `[n, *input]` (the run's `input` shape from
//! `summary.json`, e.g. `[n, 1, 28, 28]`), normalised as the run's `data.normalize` did, and
//! returns the logits `[n, classes]`; class index `i` is the data's label `classes[i]`.

use crate::config::{self, ModelConfig, Preset, TorchscriptConfig};
use crate::exit::Failure;
use crate::model::Model;
use crate::protocol::summary::RunSummary;
use crate::protocol::Phase;
use std::path::{Path, PathBuf};
use tch::{CModule, Device, Tensor};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Torchscript,
    Safetensors,
}

impl Format {
    fn extension(self) -> &'static str {
        match self {
            Format::Torchscript => "pt",
            Format::Safetensors => "safetensors",
        }
    }
}

/// Why an export failed; all but `Write` are problems with the run folder (bad input).
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{path}: cannot read ({message}); export needs a run folder with summary.json and preset.toml")]
    Read { path: String, message: String },
    #[error("{0}")]
    Preset(#[from] config::PresetError),
    #[error("the run has no {0} model (it was not trained, or the run stopped before it)")]
    NoModel(&'static str),
    #[error("{0}")]
    Weights(String),
    #[error("writing {path}: {message}")]
    Write { path: String, message: String },
}

/// Writing fails the command (exit 1); everything else is the run folder's or the request's
/// fault (exit 2).
impl From<ExportError> for Failure {
    fn from(e: ExportError) -> Failure {
        match e {
            ExportError::Write { .. } => Failure::failed(e),
            _ => Failure::bad_input(e),
        }
    }
}

fn read(path: &Path) -> Result<String, ExportError> {
    crate::run::files::text(path).map_err(|e| ExportError::Read {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// A run's model with its reported weights, in evaluation mode, on the CPU.
pub fn load_model(run_dir: &Path, phase: Phase) -> Result<(Model, RunSummary), ExportError> {
    let summary_path = run_dir.join("summary.json");
    let summary: RunSummary =
        serde_json::from_str(&read(&summary_path)?).map_err(|e| ExportError::Read {
            path: summary_path.display().to_string(),
            message: e.to_string(),
        })?;
    let preset_path = run_dir.join("preset.toml");
    let preset: Preset = config::load(
        &read(&preset_path)?,
        &preset_path.display().to_string(),
        &[],
    )?;
    let result = summary
        .results()
        .find(|r| r.phase == phase)
        .ok_or(ExportError::NoModel(phase.as_str()))?;
    let weights = run_dir.join(&result.weights);
    let cfg = match phase {
        Phase::Teacher => preset.teacher.model,
        // A TorchScript student's trained module is in the run folder, beside its weights.
        Phase::Baseline | Phase::Distilled => match preset.student.model {
            ModelConfig::Torchscript(_) => ModelConfig::Torchscript(TorchscriptConfig {
                path: weights.with_extension("pt"),
            }),
            built => built,
        },
    };
    let mut model = Model::new(&cfg, &summary.input, summary.classes.len(), Device::Cpu)
        .map_err(|e| ExportError::Weights(e.to_string()))?;
    model
        .vs
        .load(&weights)
        .map_err(|e| ExportError::Weights(format!("{}: {e}", weights.display())))?;
    Ok((model, summary))
}

/// Writes the export and returns its path (default `RUN_DIR/export/<model>.<pt|safetensors>`).
pub fn export(
    run_dir: &Path,
    phase: Phase,
    format: Format,
    out: Option<PathBuf>,
) -> Result<PathBuf, ExportError> {
    let (mut model, summary) = load_model(run_dir, phase)?;
    let out = out.unwrap_or_else(|| {
        run_dir
            .join("export")
            .join(format!("{}.{}", phase.as_str(), format.extension()))
    });
    let failed = |message: String| ExportError::Write {
        path: out.display().to_string(),
        message,
    };
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| failed(e.to_string()))?;
    }
    // Written next to the target and renamed, so a failed export never leaves half a file.
    let written = match format {
        Format::Safetensors => {
            let weights: Vec<(String, Tensor)> = model.vs.variables().into_iter().collect();
            crate::run::replace_file(&out, |tmp| {
                Tensor::write_safetensors(&weights, tmp).map_err(std::io::Error::other)
            })
        }
        Format::Torchscript => {
            let bytes = match model.net.torchscript() {
                // A TorchScript model is its own module, with the run's weights in it.
                Some(module) => module.to_bytes().map_err(|e| e.to_string()),
                None => traced(&mut model, &summary.input),
            }
            .map_err(failed)?;
            crate::run::replace_file(&out, |tmp| std::fs::write(tmp, &bytes))
        }
    };
    written.map_err(|e| failed(e.to_string()))?;
    Ok(out)
}

/// A built-in model traced into TorchScript bytes, taking `[n, *input]`.
fn traced(model: &mut Model, input: &crate::protocol::InputShape) -> Result<Vec<u8>, String> {
    // Traced graphs hold the weights as constants, which must not require gradients.
    model.vs.freeze();
    let mut example_dims = vec![1i64];
    example_dims.extend(input.dims().iter().map(|&d| d as i64));
    let example = Tensor::zeros(example_dims, (tch::Kind::Float, Device::Cpu));
    let module = CModule::create_by_tracing("KdTuiModel", "forward", &[example], &mut |inputs| {
        vec![model.net.forward_t(&inputs[0].flatten(1, -1), false)]
    })
    .map_err(|e| format!("tracing: {e}"))?;
    crate::model::module_bytes(&module).map_err(|e| e.to_string())
}
