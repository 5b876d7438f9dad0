//! The command-line entry points of jobs: `kd-tui attach`, `kd-tui ls`, `kd-tui --detach`.

use crate::exit::Failure;
use crate::front::tui::app::Link;
use crate::front::tui::{Cockpit, JobChannels, Options};
use crate::protocol::Stamped;
use crate::remote::client;
use crate::remote::jobs::{self, RunState};
use crate::run::root::RunsRoot;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// How a cockpit opens on `dir`: attached to its live job (which sends the history itself), or
/// read-only on its `metrics.jsonl` when no job serves it.
fn app_link(
    dir: &Path,
    state: RunState,
) -> std::io::Result<(Link, Vec<Stamped>, Option<client::Attached>)> {
    let reason = match client::connect(dir) {
        Ok(attached) => {
            let pid = attached.welcome.pid;
            return Ok((Link::Attached { pid }, Vec::new(), Some(attached)));
        }
        Err(e) if state.is_live() => format!("cannot attach: {e}"),
        Err(_) => format!("the run is {}, no job serves it", state.as_str()),
    };
    Ok((Link::ReadOnly { reason }, client::history(dir)?, None))
}

/// `kd-tui ls [DIR] [--json]`: DIR, or the default runs folder (`RunsRoot`), where a folder
/// that does not exist yet holds no runs.
pub fn ls(dir: Option<PathBuf>, json: bool) -> Result<i32, Failure> {
    let named = dir.is_some();
    let (root, looked) = match dir {
        Some(dir) => {
            let looked = dir.display().to_string();
            (dir, looked)
        }
        None => {
            let runs = RunsRoot::find();
            (runs.dir.clone(), runs.describe())
        }
    };
    // The default folder is made by the first run: until then it holds no runs.
    if (named || root.exists()) && !root.is_dir() {
        return Err(Failure::bad_input(format!("ls: {looked} is not a folder")));
    }
    let runs = jobs::scan(&root);
    if json {
        let text =
            serde_json::to_string_pretty(&runs).map_err(|e| Failure::failed(format!("ls: {e}")))?;
        println!("{text}");
    } else if runs.is_empty() {
        println!("no runs under {looked}");
    } else {
        println!("runs under {looked}:");
        println!(
            "{}",
            jobs::table(&runs, &root, crate::protocol::fit::stdout_columns())
        );
    }
    Ok(0)
}

/// `kd-tui attach [RUN_DIR]`: the cockpit on a live job, or read-only on a run's history.
pub fn attach(dir: Option<PathBuf>, options: Options) -> Result<i32, Failure> {
    if !std::io::stdout().is_terminal() {
        return Err(Failure::bad_input(
            "attach needs a terminal; `kd-tui ls` lists runs without one",
        ));
    }
    let dir = match dir {
        Some(d) => d,
        None => {
            let runs = RunsRoot::find();
            jobs::latest_live(&runs.dir).ok_or_else(|| {
                Failure::bad_input(format!(
                    "no live run under {}; `kd-tui ls` lists every run",
                    runs.describe()
                ))
            })?
        }
    };
    let info = jobs::inspect(&dir).ok_or_else(|| {
        Failure::bad_input(format!(
            "{}: not a run folder (no metrics.jsonl)",
            dir.display()
        ))
    })?;
    open_cockpit(&dir, info.state, options)
}

/// Attaches to the job serving `dir`, or shows its history read-only if none does.
fn open_cockpit(dir: &Path, state: RunState, options: Options) -> Result<i32, Failure> {
    let (link, history, attached) = app_link(dir, state).map_err(Failure::failed)?;
    let consumer = crate::front::Consumer::new()
        .map_err(|e| Failure::failed(format!("starting the event loop: {e}")))?;
    let channels = attached.map(|a| JobChannels {
        commands: a.commands,
        events: a.events,
        steps: a.steps,
    });
    let stopped = Cockpit::new(options, consumer)
        .and_then(|mut c| c.attach(link, history, channels))
        .map_err(|e| Failure::failed(format!("{e:?}")))?;
    let folder = super::drive::shell_word(&dir.display().to_string());
    if stopped {
        // A job of several ranks goes on as one, in the cockpit again.
        let flags = match crate::remote::jobs::world_size(dir) {
            1 => "--detach".to_string(),
            n => format!("--nproc {n}"),
        };
        let note = super::drive::resume_note(dir, &flags);
        eprintln!("kd-tui: the job stopped; {note}");
    } else if let Some(pid) = crate::run::lock::holder(dir) {
        let paused = crate::remote::jobs::inspect(dir).is_some_and(|r| r.state == RunState::Paused);
        let goes_on = if paused { "stays paused" } else { "goes on" };
        eprintln!(
            "kd-tui: detached; the job (pid {pid}) {goes_on}. Attach again: kd-tui attach {folder}"
        );
    }
    Ok(0)
}

/// `--detach`: starts the job, then attaches to it (or, without a terminal, says where it is).
pub fn detach(run_dir: &Path, resuming: bool, options: Options) -> Result<i32, Failure> {
    let args = super::detach::job_args(run_dir, resuming);
    let pid = match super::detach::start(run_dir, args) {
        Ok(pid) => pid,
        Err(e) => {
            // The job's own exit code when it ended first (a signal's 128 + N included).
            eprintln!("kd-tui: {e}");
            return Ok(e.exit_code());
        }
    };
    println!("{}", run_dir.display());
    eprintln!(
        "kd-tui: job started (pid {pid}); its log: {}",
        run_dir.join(crate::run::JOB_LOG).display()
    );
    if std::io::stdout().is_terminal() {
        open_cockpit(run_dir, RunState::Running, options)
    } else {
        Ok(0)
    }
}
