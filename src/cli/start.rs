//! The command line's choices for set-up: which preset (a file, the embedded default or a
//! stopped run's) and which run folder.

use super::Args;
use crate::config::Preset;
use crate::exit::Failure;
use crate::run::checkpoint::Checkpoint;
use crate::run::RunFolder;
use crate::setup::{check_resume, read_preset, setup_in};
use crate::train::TrainerSetup;

/// The preset of a run, or of a resumed one (checked: see `check_resume`) that goes on with
/// `world_size` processes.
pub(super) fn load_preset(
    args: &Args,
    resume: Option<&Checkpoint>,
    world_size: usize,
) -> Result<Preset, Failure> {
    match (resume, &args.preset, &args.resume) {
        (Some(ckpt), _, Some(dir)) => {
            check_resume(dir, ckpt, &args.overrides, world_size).map_err(Failure::bad_input)?;
            ckpt.live_preset(dir, &args.overrides)
        }
        (_, path, _) => read_preset(path.as_deref(), &args.overrides),
    }
    .map_err(Failure::bad_input)
}

/// Everything that can fail on bad input, before any training.
pub(super) fn setup(
    args: &Args,
    preset: Preset,
    resume: Option<Checkpoint>,
) -> Result<TrainerSetup, Failure> {
    let dir = run_dir(args, &preset);
    setup_in(preset, &dir, resume)
}

/// The run folder the command line asks for: `--resume`'s, `--out`, or a new default one.
pub(super) fn run_dir(args: &Args, preset: &Preset) -> std::path::PathBuf {
    match &args.resume {
        Some(dir) => dir.clone(),
        None => args
            .out
            .clone()
            .unwrap_or_else(|| RunFolder::default_dir(&preset.name)),
    }
}
