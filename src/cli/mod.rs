//! Command line: parse, set up (preset, device, data, run folder), start the trainer, hand its
//! events to the TUI or to batch mode, and turn the outcome into an exit code.

mod detach;
mod drive;
mod jobs;
mod launch;
mod ranks;
mod start;
mod tools;

use crate::config::bounds::MAX_SEEDS;
use crate::config::{Override, Preset};
use crate::console;
use crate::exit::Failure;
use crate::export::Format;
use crate::protocol::Phase;
use crate::run::checkpoint::Checkpoint;
use crate::run::RunFolder;
use crate::setup::read_preset;
use clap::Parser;
use drive::{finish, run_in_cockpit, serve};
use start::{load_preset, run_dir, setup};
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "kd-tui",
    version,
    about = "Train a teacher, distil it into a small student, and watch it happen.",
    args_conflicts_with_subcommands = true
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Subcommand>,
    /// Preset file (TOML), or a shipped preset's name (`kd-tui presets` lists them). Without
    /// one, the embedded default runs (mnist-subset: under a minute on the embedded MNIST
    /// subset).
    pub preset: Option<PathBuf>,
    /// Run without the TUI: progress on stderr, final table on stdout.
    #[arg(long)]
    pub batch: bool,
    /// Override a preset key, e.g. --set teacher.lr=3e-4 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<Override>,
    /// Run folder (default: <runs folder>/<name>-<timestamp>, the runs folder being
    /// $KD_TUI_RUNS, else ./runs where it exists, else ~/.local/share/kd-tui/runs).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Go on with a stopped run (its folder, which holds checkpoint.json; --set still applies),
    /// or with a stopped series of seeds or a sweep (its parent folder).
    #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["preset", "out"])]
    pub resume: Option<PathBuf>,
    /// Run the whole teacher -> baseline -> distilled run for N seeds (the preset's seed and the
    /// next N - 1), each in its own folder under --out, and aggregate them.
    #[arg(long, value_name = "N", conflicts_with = "resume", value_parser = clap::value_parser!(u32).range(1..=MAX_SEEDS as i64))]
    pub seeds: Option<u32>,
    /// TUI: draw charts with plain dots instead of braille (for fonts without braille).
    #[arg(long)]
    pub ascii: bool,
    /// Start the run as a background job that belongs to no terminal (its output in
    /// RUN_DIR/job.log), print its folder and attach the cockpit to it; `q` detaches. A series
    /// (--seeds, a sweep) runs as one job, its runs one after another, each attachable.
    #[arg(long, conflicts_with = "batch")]
    pub detach: bool,
    /// Data-parallel training on N local ranks (processes): each trains on its share of every
    /// batch (the global batch is N times batch_size) and rank 0 writes the run folder. Without
    /// --batch the ranks start as one job (as --detach does) and the cockpit attaches to it:
    /// `q` detaches, `X` stops every rank. Launchers such as torchrun or Slurm's srun set
    /// RANK, WORLD_SIZE, ... instead.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub nproc: Option<u32>,
    /// The rendezvous address (rank 0's host) of a job launched by torchrun or Slurm's srun;
    /// before MASTER_ADDR. Gloo picks its network interface from GLOO_SOCKET_IFNAME.
    #[arg(long, value_name = "HOST", conflicts_with = "nproc")]
    pub master_addr: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
pub enum Subcommand {
    /// List a preset's teacher and student layer by layer (the names `hint` takes), with the
    /// shape of each layer's output.
    Models {
        /// Preset file (default: the embedded default, presets/mnist-subset.toml).
        preset: Option<PathBuf>,
        /// Override a preset key (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<Override>,
    },
    /// Load a preset's data and describe it: the source (an image folder's size, skipped files
    /// and cache), the input shape, the classes, the splits, and the seconds loading took.
    Data {
        /// Preset file (default: the embedded default, presets/mnist-subset.toml).
        preset: Option<PathBuf>,
        /// Override a preset key (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<Override>,
    },
    /// Open the cockpit on a running job (by default the most recent live one);
    /// `q` detaches and leaves it running. A finished or dead run opens read-only.
    Attach {
        /// The run folder, or a series' folder: the run it is on, then the next ones (default:
        /// the newest live run in the runs folder: $KD_TUI_RUNS, else ./runs where it exists,
        /// else ~/.local/share/kd-tui/runs).
        run_dir: Option<PathBuf>,
        /// Draw charts with plain dots instead of braille.
        #[arg(long)]
        ascii: bool,
    },
    /// List runs with their state: running (with its PID), completed, interrupted, failed, or
    /// dead (killed or crashed). The table fits the terminal; --json keeps every field.
    Ls {
        /// The folder to list (default: the runs folder: $KD_TUI_RUNS, else ./runs where it
        /// exists, else ~/.local/share/kd-tui/runs).
        dir: Option<PathBuf>,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List the shipped presets, one line each, or print one (`kd-tui presets digits >
    /// my.toml` starts a preset of your own). `kd-tui NAME` runs a shipped preset by its name.
    Presets {
        /// A shipped preset's name (mnist-subset is the default).
        name: Option<String>,
    },
    /// What this binary runs on: libtorch and its CUDA build, whether CUDA is usable (devices
    /// and memory, or why not), the CPU threads. Run it first on a new box.
    Doctor,
    /// Export a finished run's model: TorchScript (for torch.jit.load) or safetensors.
    Export {
        /// The run folder (holds summary.json and preset.toml).
        run_dir: PathBuf,
        /// Which model.
        #[arg(long, value_enum, default_value = "distilled")]
        model: ExportModel,
        /// torchscript: a .pt module for torch.jit.load (Python or C++); safetensors: the
        /// weights alone.
        #[arg(long, value_enum, default_value = "torchscript")]
        format: Format,
        /// Output file (default: RUN_DIR/export/<model>.pt or .safetensors).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ExportModel {
    Distilled,
    Baseline,
    Teacher,
}

impl From<ExportModel> for Phase {
    fn from(m: ExportModel) -> Phase {
        match m {
            ExportModel::Distilled => Phase::Distilled,
            ExportModel::Baseline => Phase::Baseline,
            ExportModel::Teacher => Phase::Teacher,
        }
    }
}

fn tui_options(args: &Args) -> crate::front::tui::Options {
    crate::front::tui::Options {
        ascii_markers: args.ascii,
    }
}

/// Seeds or a sweep under `parent`, in the cockpit or headless (`--batch`).
fn run_series(
    args: &Args,
    preset: Preset,
    parent: PathBuf,
    resuming: bool,
    consumer: crate::front::Consumer,
) -> Result<i32, Failure> {
    let mut front: Box<dyn crate::series::Front> = if args.batch {
        Box::new(crate::front::batch::Headless(consumer))
    } else {
        let cockpit = crate::front::tui::Cockpit::new(tui_options(args), consumer)
            .map_err(|e| Failure::failed(format!("{e:?}")))?;
        Box::new(cockpit)
    };
    crate::series::run(preset, &parent, front.as_mut(), resuming)
}

/// The series a `--resume` names (a series' parent folder), with its folder; `--set` is
/// refused there, since a series goes on as it was planned.
fn resumed_series(args: &Args) -> Result<Option<(Preset, PathBuf)>, Failure> {
    let Some(parent) = &args.resume else {
        return Ok(None);
    };
    let Some(preset) = crate::series::parent_preset(parent) else {
        return Ok(None);
    };
    if !args.overrides.is_empty() {
        return Err(Failure::bad_input(
            "a series resumes as it was planned; --set is not taken with it",
        ));
    }
    Ok(Some((preset?, parent.clone())))
}

/// `preset` repeated over `--seeds N` seeds, when given.
fn with_seeds(args: &Args, mut preset: Preset) -> Result<Preset, Failure> {
    if let Some(n) = args.seeds {
        preset
            .repeat_seeds(n as usize)
            .map_err(|message| Failure::bad_input(format!("--seeds {n}: {message}")))?;
    }
    Ok(preset)
}

/// With `--nproc N --batch`: the series (seeds, a sweep) to run as data-parallel jobs, its
/// parent folder and whether it goes on from there; `None` for one run.
fn ranks_series(args: &Args, nproc: usize) -> Result<Option<(Preset, PathBuf, bool)>, Failure> {
    if args.resume.is_some() {
        return Ok(resumed_series(args)?.map(|(preset, parent)| (preset, parent, true)));
    }
    let preset = with_seeds(args, load_preset(args, None, nproc)?)?;
    if preset.sweep.is_none() && preset.seeds.is_none() {
        return Ok(None);
    }
    let parent = run_dir(args, &preset);
    Ok(Some((preset, parent, false)))
}

/// The cockpit needs a terminal; checked once the preset is read, so that bad input is told
/// first.
fn refuse_without_terminal(args: &Args) -> Result<(), Failure> {
    if args.batch || args.detach || std::io::stdout().is_terminal() {
        return Ok(());
    }
    Err(Failure::bad_input(format!(
        "standard output is not a terminal, so the TUI cannot start.\n\
         For logs, nohup or CI use the headless mode:  kd-tui --batch {}",
        args.preset
            .as_ref()
            .map_or("presets/digits.toml".into(), |p| p.display().to_string())
    )))
}

/// Runs kd-tui with the process's arguments; returns the exit code.
pub fn main() -> i32 {
    quiet_allocation_failures();
    let code = run(Args::parse()).unwrap_or_else(|failure| failure.report());
    // A detached job's log ends with how it ended: nobody waits for its exit status.
    if std::env::var_os(detach::JOB_ENV).is_some() {
        console::note(format_args!("kd-tui: job exited with code {code}"));
    }
    code
}

/// A panic that reports an allocation libtorch could not make (the run turns it into its
/// out-of-memory error) is printed in one line, without a backtrace even under
/// `RUST_BACKTRACE`: symbolizing one needs memory that is not there, and an allocation failing
/// inside it deadlocks the process on the backtrace lock.
fn quiet_allocation_failures() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        match info
            .payload_as_str()
            .and_then(crate::model::allocation_failure)
        {
            Some(failure) => console::note(format_args!(
                "kd-tui: a panic for lack of memory: {failure}"
            )),
            None => default(info),
        }
    }));
}

/// What the arguments ask for, to its exit code (or the failure that ends it).
fn run(args: Args) -> Result<i32, Failure> {
    match args.command {
        Some(Subcommand::Export {
            run_dir,
            model,
            format,
            out,
        }) => return tools::export(&run_dir, model, format, out),
        Some(Subcommand::Models { preset, overrides }) => return tools::models(preset, &overrides),
        Some(Subcommand::Data { preset, overrides }) => return tools::data(preset, &overrides),
        Some(Subcommand::Presets { name }) => return tools::presets(name.as_deref()),
        Some(Subcommand::Attach { run_dir, ascii }) => {
            return jobs::attach(
                run_dir,
                crate::front::tui::Options {
                    ascii_markers: ascii,
                },
            )
        }
        Some(Subcommand::Ls { dir, json }) => return jobs::ls(dir, json),
        Some(Subcommand::Doctor) => {
            tools::output(crate::doctor::report())?;
            return Ok(0);
        }
        None => {}
    }
    if let Some(n) = args.nproc.filter(|_| args.batch) {
        if let Some((preset, parent, resuming)) = ranks_series(&args, n as usize)? {
            let mut front = launch::RanksSeries { nproc: n as usize };
            return crate::series::run(preset, &parent, &mut front, resuming);
        }
        let rank_args = launch::rank_args(std::env::args_os().skip(1));
        return launch::run(n as usize, rank_args);
    }
    let rank = crate::collective::Env::from_env(args.master_addr.as_deref())
        .map_err(|e| Failure::bad_input(format!("the data-parallel environment: {e}")))?;
    let consumer = crate::front::Consumer::new()
        .map_err(|e| Failure::failed(format!("starting the event loop: {e}")))?;
    if let Some(env) = rank {
        return ranks::run(&args, env, consumer);
    }
    // A series' parent folder resumes as a series; a run's folder from its checkpoint.
    if let Some((preset, parent)) = resumed_series(&args)? {
        refuse_without_terminal(&args)?;
        if args.detach || args.nproc.is_some() {
            return jobs::detach(&parent, true, detach::Job::Series, tui_options(&args));
        }
        return run_series(&args, preset, parent, true, consumer);
    }
    // A run stopped before its first checkpoint has nothing to lose: it starts over there.
    let restart = args
        .resume
        .as_deref()
        .filter(|dir| RunFolder::never_checkpointed(dir));
    let resume = args
        .resume
        .as_deref()
        .filter(|_| restart.is_none())
        .map(Checkpoint::read)
        .transpose()
        .map_err(Failure::bad_input)?;
    let preset = match restart {
        Some(dir) => read_preset(Some(&dir.join("preset.toml")), &args.overrides)
            .map_err(Failure::bad_input)?,
        None => load_preset(&args, resume.as_ref(), 1)?,
    };
    let preset = with_seeds(&args, preset)?;
    refuse_without_terminal(&args)?;
    // Ranks outlive the cockpit as a detached job does: it attaches to them. A series runs as
    // one job, its runs one after another, each attachable.
    if args.detach || args.nproc.is_some() {
        let job = match preset.sweep.is_some() || preset.seeds.is_some() {
            true => detach::Job::Series,
            false => detach::Job::Run,
        };
        return jobs::detach(
            &run_dir(&args, &preset),
            args.resume.is_some(),
            job,
            tui_options(&args),
        );
    }
    if preset.sweep.is_some() || preset.seeds.is_some() {
        let parent = run_dir(&args, &preset);
        return run_series(&args, preset, parent, false, consumer);
    }
    if let Some(dir) = restart {
        RunFolder::clear_for_restart(dir)
            .map_err(|e| Failure::bad_input(format!("{}: {e}", dir.display())))?;
        console::note(format_args!(
            "kd-tui: {} stopped before its first checkpoint (nothing to lose): starting it over in the same folder",
            dir.display()
        ));
    }
    let setup = setup(&args, preset, resume)?;
    let dir = setup.run.dir().to_path_buf();
    let ended = if args.batch {
        let mut consumer = consumer;
        let handle = serve(setup, &consumer);
        crate::front::batch::run(handle, &mut consumer)
    } else {
        // The cockpit gives the screen back when dropped, before the table is printed.
        crate::front::tui::Cockpit::new(tui_options(&args), consumer)
            .and_then(|mut cockpit| run_in_cockpit(&mut cockpit, setup))
            .map_err(|e| Failure::failed(format!("{e:?}")))?
    };
    finish(ended, &dir, if args.batch { "--batch" } else { "" })
}

#[cfg(test)]
mod tests {
    use super::Args;
    use clap::CommandFactory;

    #[test]
    fn every_command_argument_and_option_says_what_it_is() {
        let top = Args::command();
        let mut commands = vec![&top];
        commands.extend(top.get_subcommands());
        let mut checked = 0;
        for command in commands {
            let name = command.get_name();
            assert!(command.get_about().is_some(), "`{name}` has no help text");
            for arg in command.get_arguments().filter(|a| !a.is_hide_set()) {
                let id = arg.get_id();
                if id == "help" || id == "version" {
                    continue;
                }
                let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
                assert!(help.len() > 5, "`{name}`'s `{id}` has no help text");
                checked += 1;
            }
        }
        assert!(checked > 20, "{checked} arguments checked");
    }
}
