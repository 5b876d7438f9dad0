//! The command-line entry points of jobs: `kd-tui attach`, `kd-tui ls`, `kd-tui --detach`.

use super::tools::output;
use crate::console;
use crate::exit::Failure;
use crate::front::tui::app::Link;
use crate::front::tui::{Cockpit, JobChannels, Left, Options};
use crate::protocol::Stamped;
use crate::remote::client;
use crate::remote::jobs::{self, RunState};
use crate::run::root::RunsRoot;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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
        output(format_args!("{text}\n"))?;
    } else if runs.is_empty() {
        output(format_args!("no runs under {looked}\n"))?;
    } else {
        let table = jobs::table(&runs, &root, crate::protocol::fit::stdout_columns());
        output(format_args!("runs under {looked}:\n{table}\n"))?;
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
    // A series' folder: the run of it that goes on now.
    let dir = match (jobs::inspect(&dir), crate::series::parent_preset(&dir)) {
        (None, Some(_)) => jobs::latest_live(&dir).ok_or_else(|| {
            Failure::bad_input(format!(
                "no run of the series {} is live; `kd-tui ls {}` lists its runs",
                dir.display(),
                dir.display()
            ))
        })?,
        _ => dir,
    };
    let info = jobs::inspect(&dir).ok_or_else(|| {
        Failure::bad_input(format!(
            "{}: not a run folder (no metrics.jsonl) nor a series' folder",
            dir.display()
        ))
    })?;
    open_cockpit(&dir, info.state, options)
}

/// The folder of the series (seeds, a sweep) that the run in `dir` belongs to, if any:
/// `PARENT/seed-S` or `PARENT/seed-S/point-I`.
fn series_of(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .skip(1)
        .take(2)
        .find(|parent| crate::series::parent_preset(parent).is_some_and(|p| p.is_ok()))
        .map(Path::to_path_buf)
}

/// Attaches to the job serving `dir`, or shows its history read-only if none does; for a run
/// of a series, the series' next runs as each one ends.
fn open_cockpit(dir: &Path, state: RunState, options: Options) -> Result<i32, Failure> {
    let series = series_of(dir);
    let consumer = crate::front::Consumer::new()
        .map_err(|e| Failure::failed(format!("starting the event loop: {e}")))?;
    let mut cockpit =
        Cockpit::new(options, consumer).map_err(|e| Failure::failed(format!("{e:?}")))?;
    let (mut dir, mut state) = (dir.to_path_buf(), state);
    let left = loop {
        let (link, history, attached) = app_link(&dir, state).map_err(Failure::failed)?;
        let follows = series.is_some() && attached.is_some();
        let channels = attached.map(|a| JobChannels {
            commands: a.commands,
            events: a.events,
            steps: a.steps,
        });
        let left = cockpit
            .attach(link, history, channels, follows)
            .map_err(|e| Failure::failed(format!("{e:?}")))?;
        let next = match (left, &series) {
            (Left::RunEnded, Some(parent)) => next_series_run(parent, &dir),
            _ => None,
        };
        match next {
            Some(next) => (dir, state) = (next, RunState::Running),
            None => break left,
        }
    };
    // The screen back before the notes.
    drop(cockpit);
    // A series goes on (or resumes) from its folder, a run from its own.
    let resumes = series.as_deref().unwrap_or(&dir);
    let folder = super::drive::shell_word(&resumes.display().to_string());
    match (left, &series) {
        (Left::Stopped, _) => {
            // A job of several ranks goes on as one, in the cockpit again.
            let flags = match crate::remote::jobs::world_size(&dir) {
                1 => "--detach".to_string(),
                n => format!("--nproc {n}"),
            };
            let note = super::drive::resume_note(resumes, &flags);
            let what = match series {
                Some(_) => "the run stopped, and its series with it",
                None => "the job stopped",
            };
            console::note(format_args!("kd-tui: {what}; {note}"));
        }
        (Left::RunEnded, Some(series)) => console::note(format_args!(
            "kd-tui: the series in {} has no run going on: it ended (its report: seeds.json or \
             sweep.json there), or its next run did not start within {} s (`kd-tui ls {folder}`)",
            series.display(),
            NEXT_RUN_WAIT.as_secs()
        )),
        (_, Some(series)) if jobs::latest_live(series).is_some() => console::note(format_args!(
            "kd-tui: detached; the series in {} goes on in the background. Attach to the run it \
             is on: kd-tui attach {folder}",
            series.display()
        )),
        (_, Some(_)) => {}
        (_, None) => {
            if let Some(pid) = crate::run::lock::holder(&dir) {
                let paused =
                    crate::remote::jobs::inspect(&dir).is_some_and(|r| r.state == RunState::Paused);
                let goes_on = if paused { "stays paused" } else { "goes on" };
                console::note(format_args!(
                    "kd-tui: detached; the job (pid {pid}) {goes_on}. Attach again: kd-tui attach {folder}"
                ));
            }
        }
    }
    Ok(0)
}

/// How long a cockpit that follows a series waits for its next run to serve its socket.
const NEXT_RUN_WAIT: Duration = Duration::from_secs(60);

/// The series' run after `ended` once it serves its socket; `None` when the series' report
/// says it is complete, or after `NEXT_RUN_WAIT` without one.
fn next_series_run(parent: &Path, ended: &Path) -> Option<PathBuf> {
    let complete = || {
        ["seeds.json", "sweep.json"].iter().any(|name| {
            std::fs::read(parent.join(name))
                .ok()
                .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
                .is_some_and(|report| report["status"] == "completed")
        })
    };
    let started = Instant::now();
    while started.elapsed() < NEXT_RUN_WAIT && !complete() {
        let next = jobs::scan(parent)
            .into_iter()
            .filter(|run| run.state.is_live() && run.dir != ended)
            .find(|run| super::detach::serves_socket(&run.dir));
        if let Some(run) = next {
            return Some(run.dir);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    None
}

/// `--detach` (and `--nproc N` without `--batch`): starts the job (a run, or a series of runs
/// one after another in `run_dir`), then attaches to it, or to the series' run, (or, without a
/// terminal, says where it is).
pub fn detach(
    run_dir: &Path,
    resuming: bool,
    job: super::detach::Job,
    options: Options,
) -> Result<i32, Failure> {
    let args = super::detach::job_args(run_dir, resuming);
    let (pid, serving) = match super::detach::start(run_dir, args, job) {
        Ok(started) => started,
        Err(e) => {
            // The job's own exit code when it ended first (a signal's 128 + N included).
            console::note(format_args!("kd-tui: {e}"));
            return Ok(e.exit_code());
        }
    };
    console::say(run_dir.display());
    let what = match job {
        super::detach::Job::Run => "job",
        super::detach::Job::Series => "series job",
    };
    console::note(format_args!(
        "kd-tui: {what} started (pid {pid}); its log: {}",
        run_dir.join(crate::run::JOB_LOG).display()
    ));
    if job == super::detach::Job::Series {
        console::note(format_args!(
            "kd-tui: its runs, one after another, are in {}; the first: {}",
            run_dir.display(),
            serving.display()
        ));
    }
    if std::io::stdout().is_terminal() {
        open_cockpit(&serving, RunState::Running, options)
    } else {
        Ok(0)
    }
}
