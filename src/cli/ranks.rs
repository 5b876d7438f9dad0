//! One rank of a data-parallel job (torchrun's environment, or `--nproc N`). Rank 0 is the job
//! as `--batch` runs it: the run folder, the control socket, the results on stdout. The other
//! ranks train alongside it and keep their own record in `RUN_DIR/rank-N/` (their metrics and
//! checkpoints; a resume starts them from rank 0's), printing only errors.

use super::drive::{finish, serve};
use super::start::{load_preset, run_dir};
use super::Args;
use crate::collective::{Env, World};
use crate::console;
use crate::device::DeviceSpec;
use crate::exit::Failure;
use crate::front::Consumer;
use crate::protocol::{Event, LogLevel};
use crate::run::checkpoint::Checkpoint;
use crate::run::RunFolder;
use crate::setup::{open_run, prepare};
use crate::train::{self, RunOutcome, TrainerSetup};
use std::path::{Path, PathBuf};

/// The store key under which rank 0 tells the others its run folder.
const RUN_DIR_KEY: &str = "run_dir";

pub(super) fn run(args: &Args, env: Env, consumer: Consumer) -> Result<i32, Failure> {
    let rank = env.rank;
    let refuse = |why: &str| Err(Failure::bad_input(format!("rank {rank}: {why}")));
    if !args.batch {
        return refuse("a rank of a data-parallel job runs headless: add --batch");
    }
    if args.seeds.is_some() {
        return refuse("seeds run one after another, not as a data-parallel job");
    }
    let resume = args
        .resume
        .as_deref()
        .map(Checkpoint::read)
        .transpose()
        .map_err(Failure::bad_input)?;
    let preset = load_preset(args, resume.as_ref(), env.world_size)?;
    if preset.sweep.is_some() || preset.seeds.is_some() {
        return refuse("sweeps and seeds run one after another, not as a data-parallel job");
    }
    // Rank 0 joins before it makes the run folder: a job whose ranks never meet leaves none.
    let dir = (rank == 0).then(|| run_dir(args, &preset));
    let (preset, data, device) = prepare(preset)?;
    // On GPUs each rank of a machine takes its own: cuda:LOCAL_RANK, as torchrun expects.
    let device = match device {
        tch::Device::Cuda(_) => {
            crate::device::resolve(DeviceSpec::Cuda(env.local_rank)).map_err(|e| {
                Failure::bad_input(format!("rank {rank}: LOCAL_RANK={}: {e}", env.local_rank))
            })?
        }
        other => other,
    };
    let world = World::join(&env, &preset.distributed, device)
        .map_err(|e| Failure::failed(format!("rank {rank}: {e}")))?;
    same_preset(&world, &preset).map_err(|f| f.within(format!("rank {rank}")))?;
    // Rank 0 makes the run folder and tells the others where it is; they keep theirs in it.
    let run = match dir {
        Some(dir) => {
            let run = open_run(&dir, &preset, resume.is_some())?;
            let dir = std::path::absolute(&dir).unwrap_or(dir);
            world
                .group
                .store()
                .set(RUN_DIR_KEY, dir.as_os_str().as_encoded_bytes())
                .map_err(|e| {
                    Failure::failed(format!("rank 0: telling the ranks the run folder: {e}"))
                })?;
            run
        }
        None => world
            .group
            .store()
            .get(RUN_DIR_KEY)
            .map_err(|e| e.to_string())
            .and_then(|dir| {
                let dir = PathBuf::from(String::from_utf8_lossy(&dir).into_owned());
                own_folder(&dir, rank, resume.is_some(), &preset)
            })
            .map_err(|e| Failure::failed(format!("rank {rank}: run folder: {e}")))?,
    };
    let setup = TrainerSetup {
        preset,
        data,
        device,
        run,
        resume,
        world: Some(world),
    };
    if rank == 0 {
        let mut consumer = consumer;
        let dir = setup.run.dir().to_path_buf();
        let handle = serve(setup, &consumer);
        let flags = format!("--nproc {} --batch", env.world_size);
        return finish(
            crate::front::batch::run(handle, &mut consumer),
            &dir,
            &flags,
        );
    }
    Ok(follow(train::spawn(setup), rank, consumer))
}

/// Every rank must train the same resolved preset (ranks started by hand, or a launcher given
/// other flags per rank, could differ): each publishes its preset, rank 0 compares every other
/// rank's with its own, and the others compare theirs with rank 0's, before any collective.
/// Fails as bad input when the presets differ, as a failure when the store does.
fn same_preset(world: &World, preset: &crate::config::Preset) -> Result<(), Failure> {
    let mine = preset.to_toml();
    let key = |rank: usize| format!("preset/{rank}");
    let failed = |e: crate::collective::GroupError| {
        let why = format!(
            "comparing the ranks' presets within distributed.timeout_s: {e} (a rank is missing, \
             stuck, or was started with another WORLD_SIZE than this rank's {})",
            world.size
        );
        Failure::failed(why)
    };
    world
        .group
        .store()
        .set(&key(world.rank), mine.as_bytes())
        .map_err(failed)?;
    let others: Vec<usize> = match world.rank {
        0 => (1..world.size).collect(),
        _ => vec![0],
    };
    for rank in others {
        let theirs = world.group.store().get(&key(rank)).map_err(failed)?;
        let theirs = String::from_utf8_lossy(&theirs);
        if theirs != mine {
            return Err(Failure::bad_input(format!(
                "rank {rank} was started with another preset (differing: {}); every rank of a \
                 job must run the same preset and --set flags",
                differing_keys(&mine, &theirs).join(", ")
            )));
        }
    }
    Ok(())
}

/// The dotted keys whose values differ between two presets' TOML.
fn differing_keys(a: &str, b: &str) -> Vec<String> {
    fn flatten(prefix: &str, value: &toml::Value, out: &mut Vec<(String, String)>) {
        match value {
            toml::Value::Table(table) => {
                for (k, v) in table {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    flatten(&key, v, out);
                }
            }
            other => out.push((prefix.to_string(), other.to_string())),
        }
    }
    let keys = |text: &str| {
        let mut out = Vec::new();
        if let Ok(table) = text.parse::<toml::Table>() {
            flatten("", &toml::Value::Table(table), &mut out);
        }
        out
    };
    let (a, b) = (keys(a), keys(b));
    let mut differ: Vec<String> = a
        .iter()
        .filter(|kv| !b.contains(kv))
        .chain(b.iter().filter(|kv| !a.contains(kv)))
        .map(|(k, _)| k.clone())
        .collect();
    differ.sort();
    differ.dedup();
    differ
}

/// `RUN_DIR/rank-N`: new, or for a resume a fresh copy of rank 0's folder (every rank holds the
/// same weights, so rank 0's checkpoint is every rank's).
fn own_folder(
    run_dir: &Path,
    rank: usize,
    resuming: bool,
    preset: &crate::config::Preset,
) -> Result<RunFolder, String> {
    let dir = run_dir.join(format!("rank-{rank}"));
    if !resuming {
        return RunFolder::create(&dir, preset).map_err(|e| e.to_string());
    }
    let _ = std::fs::remove_dir_all(&dir);
    copy_run(run_dir, &dir).map_err(|e| format!("copying {}: {e}", run_dir.display()))?;
    RunFolder::reopen(&dir).map_err(|e| e.to_string())
}

/// Copies a run folder's files (not the ranks' folders, the socket or the lock).
fn copy_run(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        let name_text = name.to_string_lossy();
        let kind = entry.file_type()?;
        if name_text.starts_with("rank-") || name_text == "control.sock" || name_text == "job.lock"
        {
            continue;
        }
        if kind.is_dir() {
            copy_run(&entry.path(), &to.join(&name))?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), to.join(&name))?;
        }
    }
    Ok(())
}

/// A rank other than 0: its trainer's errors on stderr, its outcome as the exit code. A signal
/// ends it at once (rank 0, the job, then fails at its next collective and keeps a checkpoint).
fn follow(handle: train::TrainerHandle, rank: usize, mut consumer: Consumer) -> i32 {
    let train::TrainerHandle {
        commands,
        mut events,
        steps,
        thread,
    } = handle;
    drop(steps);
    let signals = &mut consumer.signals;
    let signal = consumer.runtime.block_on(async {
        loop {
            tokio::select! {
                event = events.recv() => match event.map(|s| s.event) {
                    Some(Event::Log { level: LogLevel::Error | LogLevel::Warn, message }) => {
                        console::note(format_args!("kd-tui: rank {rank}: {message}"));
                    }
                    Some(_) => {}
                    None => return None,
                },
                signal = signals.next() => return Some(signal),
            }
        }
    });
    if let Some(signal) = signal {
        console::note(format_args!(
            "kd-tui: rank {rank}: {} received; this rank ends here",
            crate::front::signal_name(signal)
        ));
        return 128 + signal;
    }
    drop(commands);
    match train::join(thread) {
        RunOutcome::Completed(_) | RunOutcome::Stopped { .. } => 0,
        RunOutcome::Failed(e) => {
            console::note(format_args!("kd-tui: rank {rank}: {e}"));
            e.exit_code()
        }
    }
}
