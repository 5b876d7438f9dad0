//! The subcommands that train nothing: `models`, `data`, `presets` and `export`.

use super::ExportModel;
use crate::config::shipped::{self, Shipped};
use crate::config::Override;
use crate::console;
use crate::exit::Failure;
use crate::export::Format;
use crate::setup::read_preset;
use std::path::{Path, PathBuf};

/// `kd-tui export RUN_DIR`.
pub(super) fn export(
    run_dir: &Path,
    model: ExportModel,
    format: Format,
    out: Option<PathBuf>,
) -> Result<i32, Failure> {
    let path = crate::export::export(run_dir, model.into(), format, out)
        .map_err(|e| Failure::from(e).within("export"))?;
    output(format_args!("{}\n", path.display()))?;
    Ok(0)
}

/// `kd-tui models [PRESET]`: the layers need the data's input shape only. Where the data is
/// not there, a fixed-format source (MNIST, CIFAR-10) is listed for its format's shape, and
/// any other source is refused with the `--set data.path=...` that finds it.
pub(super) fn models(preset: Option<PathBuf>, overrides: &[Override]) -> Result<i32, Failure> {
    let preset = read_preset(preset.as_deref(), overrides).map_err(Failure::bad_input)?;
    let missing = preset.data.path.as_deref().filter(|p| !p.exists());
    let (input, classes) = match (crate::data::load(&preset.data, preset.seed), missing) {
        (Ok(data), _) => (data.input, data.num_classes),
        (Err(e), Some(path)) => {
            let hint = format!(
                "--set data.path=DIR points at the data ({} is relative to the current directory, {})",
                path.display(),
                std::env::current_dir().map_or("?".into(), |d| d.display().to_string())
            );
            let Some((input, classes)) = crate::inspect::format_shape(preset.data.source) else {
                return Err(Failure::bad_input(format!(
                    "{e}\nkd-tui models needs the data for its input shape: {hint}"
                )));
            };
            console::note(format_args!(
                "kd-tui: {e}; the layers below are for the format's shape; {hint}"
            ));
            (input, classes)
        }
        (Err(e), None) => return Err(Failure::bad_input(e)),
    };
    let text = crate::inspect::describe(&preset, &input, classes).map_err(Failure::bad_input)?;
    output(&text)?;
    Ok(0)
}

/// `kd-tui data [PRESET]`.
pub(super) fn data(preset: Option<PathBuf>, overrides: &[Override]) -> Result<i32, Failure> {
    let preset = read_preset(preset.as_deref(), overrides).map_err(Failure::bad_input)?;
    crate::train::threads::keep_serial();
    let started = std::time::Instant::now();
    let data = crate::data::load(&preset.data, preset.seed).map_err(Failure::bad_input)?;
    let seconds = started.elapsed().as_secs_f64();
    output(format_args!(
        "data {}\ninput {}, {} classes: {}\n{} train, {} validation, {} test examples\n\
         loaded in {seconds:.3} s\n",
        data.description,
        data.input,
        data.num_classes,
        data.classes.join(", "),
        data.train.len(),
        data.val.len(),
        data.test.len()
    ))?;
    Ok(0)
}

/// `kd-tui presets [NAME]`: the shipped presets, a line each, or the text of one.
pub(super) fn presets(name: Option<&str>) -> Result<i32, Failure> {
    match name {
        Some(name) => {
            let shipped = Shipped::find(name).ok_or_else(|| {
                Failure::bad_input(format!(
                    "presets: no shipped preset `{name}`; the shipped ones are {}",
                    shipped::names()
                ))
            })?;
            output(shipped.text)?;
        }
        None => {
            let width = crate::protocol::fit::stdout_columns();
            let widest = shipped::SHIPPED.map(|p| p.name.len()).into_iter().max();
            let pad = widest.unwrap_or(0);
            let mut text = String::new();
            for p in shipped::SHIPPED {
                let default = if p.name == shipped::DEFAULT_NAME {
                    "(the default) "
                } else {
                    ""
                };
                let line = format!("{:<pad$}  {default}{}", p.name, p.description());
                text += &crate::protocol::fit::wrap(&line, width);
                text.push('\n');
            }
            text +=
                "\nkd-tui NAME runs one; kd-tui presets NAME > my.toml starts your own from it\n";
            output(&text)?;
        }
    }
    Ok(0)
}

/// A command's output on standard output; a write that fails (a full disk under `>`) fails the
/// command, a reader that left early does not.
pub(super) fn output(text: impl std::fmt::Display) -> Result<(), Failure> {
    console::emit(text)
        .map_err(|e| Failure::failed(format!("cannot write to standard output: {e}")))
}
