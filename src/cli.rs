//! Command line: parse, set up (preset, device, data, run folder), start the trainer, hand its
//! events to the TUI or to batch mode, and turn the outcome into an exit code.

use crate::checkpoint::{self, Checkpoint};
use crate::preset::{self, Override, Preset};
use crate::run::RunFolder;
use crate::trainer::{self, RunOutcome, TrainerSetup};
use clap::Parser;
use std::io::IsTerminal;
use std::path::PathBuf;

/// Exit code for bad input (preset, data, output folder).
pub const EXIT_BAD_INPUT: i32 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "kd-tui",
    version,
    about = "Train a teacher, distil it into a small student, and watch it happen."
)]
pub struct Args {
    /// Preset file (TOML). Without one, the embedded digits preset runs.
    pub preset: Option<PathBuf>,
    /// Run without the TUI: progress on stderr, final table on stdout.
    #[arg(long)]
    pub batch: bool,
    /// Override a preset key, e.g. --set teacher.lr=3e-4 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<Override>,
    /// Run folder (default: runs/<name>-<timestamp>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Go on with a stopped run (its folder, which holds checkpoint.json); --set still applies.
    #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["preset", "out"])]
    pub resume: Option<PathBuf>,
    /// TUI: draw charts with plain dots instead of braille (for fonts without braille).
    #[arg(long)]
    pub ascii: bool,
}

/// An error before training starts; printed as is, exit code 2.
fn bad_input(message: impl std::fmt::Display) -> String {
    format!("kd-tui: {message}")
}

fn load_preset(args: &Args, resume: Option<&Checkpoint>) -> Result<Preset, String> {
    match (resume, &args.preset, &args.resume) {
        (Some(ckpt), _, Some(dir)) => {
            let origin = format!("{} (live preset)", dir.join(checkpoint::FILE).display());
            preset::load(&ckpt.preset, &origin, &args.overrides)
        }
        (_, Some(path), _) => preset::load_file(path, &args.overrides),
        _ => preset::load(
            preset::DEFAULT_PRESET,
            preset::DEFAULT_PRESET_NAME,
            &args.overrides,
        ),
    }
    .map_err(bad_input)
}

/// Everything that can fail on bad input, before any training.
fn setup(args: &Args) -> Result<TrainerSetup, String> {
    let resume = match &args.resume {
        Some(dir) => Some(Checkpoint::read(dir).map_err(bad_input)?),
        None => None,
    };
    let preset = load_preset(args, resume.as_ref())?;
    let spec = crate::device::parse(&preset.device).map_err(bad_input)?;
    let device = crate::device::resolve(spec).map_err(|e| bad_input(format!("device: {e}")))?;
    let data = crate::data::load(&preset.data, preset.seed).map_err(bad_input)?;
    let run = match &args.resume {
        Some(dir) => RunFolder::reopen(dir),
        None => {
            let dir = args
                .out
                .clone()
                .unwrap_or_else(|| RunFolder::default_dir(&preset.name));
            RunFolder::create(&dir, &preset)
        }
    }
    .map_err(|e| bad_input(format!("run folder: {e}")))?;
    Ok(TrainerSetup {
        preset,
        data,
        device,
        run,
        resume,
    })
}

/// Runs kd-tui with the process's arguments; returns the exit code.
pub fn main() -> i32 {
    let args = Args::parse();
    if !args.batch && !std::io::stdout().is_terminal() {
        eprintln!(
            "kd-tui: standard output is not a terminal, so the TUI cannot start.\n\
             For logs, nohup or CI use the headless mode:  kd-tui --batch {}",
            args.preset
                .as_ref()
                .map_or("presets/digits.toml".into(), |p| p.display().to_string())
        );
        return EXIT_BAD_INPUT;
    }
    let consumer = match crate::batch::Consumer::new() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kd-tui: starting the event loop: {e}");
            return 1;
        }
    };
    let setup = match setup(&args) {
        Ok(s) => s,
        Err(message) => {
            eprintln!("{message}");
            return EXIT_BAD_INPUT;
        }
    };
    let handle = trainer::spawn(setup);
    let ended = if args.batch {
        crate::batch::run(handle, consumer)
    } else {
        match crate::tui::run(
            handle,
            crate::tui::Options {
                ascii_markers: args.ascii,
            },
            consumer,
        ) {
            Ok(ended) => ended,
            Err(e) => {
                eprintln!("kd-tui: {e:?}");
                return 1;
            }
        }
    };
    match ended.outcome {
        RunOutcome::Completed(summary) => {
            println!("{}", summary.table());
            0
        }
        RunOutcome::Stopped { reason, summary } => {
            println!("{}", summary.table());
            eprintln!("kd-tui: stopped ({reason}); the run folder holds a checkpoint and a summary marked interrupted");
            ended.signal.map_or(0, |s| 128 + s)
        }
        RunOutcome::Failed(message) => {
            eprintln!("kd-tui: {message}");
            1
        }
    }
}
