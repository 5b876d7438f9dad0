//! The command-line entry points of jobs: `kd-tui attach`, `kd-tui ls`, `kd-tui --detach`.

use crate::exit::EXIT_BAD_INPUT;
use crate::front::tui::app::Link;
use crate::front::tui::{Cockpit, Options};
use crate::protocol::Stamped;
use crate::remote::client;
use crate::remote::jobs::{self, RunState};
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
        Err(e) if state == RunState::Running => format!("cannot attach: {e}"),
        Err(_) => format!("the run is {}, no job serves it", state.as_str()),
    };
    Ok((Link::ReadOnly { reason }, client::history(dir)?, None))
}

/// Where `kd-tui ls` and `kd-tui attach` look by default.
pub const RUNS: &str = "runs";

/// `kd-tui ls [DIR] [--json]`.
pub fn ls(dir: Option<PathBuf>, json: bool) -> i32 {
    let root = dir.unwrap_or_else(|| PathBuf::from(RUNS));
    if !root.is_dir() {
        eprintln!("kd-tui: ls: {} is not a folder", root.display());
        return EXIT_BAD_INPUT;
    }
    let runs = jobs::scan(&root);
    if json {
        match serde_json::to_string_pretty(&runs) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("kd-tui: ls: {e}");
                return 1;
            }
        }
    } else if runs.is_empty() {
        println!("no runs under {}", root.display());
    } else {
        println!("{}", jobs::table(&runs));
    }
    0
}

/// `kd-tui attach [RUN_DIR]`: the cockpit on a live job, or read-only on a run's history.
pub fn attach(dir: Option<PathBuf>, options: Options) -> i32 {
    if !std::io::stdout().is_terminal() {
        eprintln!("kd-tui: attach needs a terminal; `kd-tui ls` lists runs without one");
        return EXIT_BAD_INPUT;
    }
    let dir = match dir {
        Some(d) => d,
        None => match jobs::latest_live(Path::new(RUNS)) {
            Some(d) => d,
            None => {
                eprintln!("kd-tui: no live run under {RUNS}/; `kd-tui ls` lists every run");
                return EXIT_BAD_INPUT;
            }
        },
    };
    let Some(info) = jobs::inspect(&dir) else {
        eprintln!(
            "kd-tui: {}: not a run folder (no metrics.jsonl)",
            dir.display()
        );
        return EXIT_BAD_INPUT;
    };
    open_cockpit(&dir, info.state, options)
}

/// Attaches to the job serving `dir`, or shows its history read-only if none does.
fn open_cockpit(dir: &Path, state: RunState, options: Options) -> i32 {
    let (link, history, attached) = match app_link(dir, state) {
        Ok(opened) => opened,
        Err(e) => {
            eprintln!("kd-tui: {e}");
            return 1;
        }
    };
    let consumer = match crate::front::Consumer::new() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kd-tui: starting the event loop: {e}");
            return 1;
        }
    };
    let shown = Cockpit::new(options, consumer).and_then(|mut c| c.attach(link, history, attached));
    if let Err(e) = shown {
        eprintln!("kd-tui: {e:?}");
        return 1;
    }
    if let Some(pid) = crate::run::lock::holder(dir) {
        eprintln!(
            "kd-tui: detached; the job (pid {pid}) goes on. Attach again: kd-tui attach {}",
            dir.display()
        );
    }
    0
}

/// `--detach`: starts the job, then attaches to it (or, without a terminal, says where it is).
pub fn detach(run_dir: &Path, resuming: bool, options: Options) -> i32 {
    let args = super::detach::job_args(run_dir, resuming);
    match super::detach::start(run_dir, args) {
        Ok(pid) => {
            println!("{}", run_dir.display());
            eprintln!(
                "kd-tui: job started (pid {pid}); its log: {}",
                run_dir.join(crate::run::JOB_LOG).display()
            );
            if std::io::stdout().is_terminal() {
                open_cockpit(run_dir, RunState::Running, options)
            } else {
                0
            }
        }
        Err(e) => {
            eprintln!("kd-tui: {e}");
            e.exit_code()
        }
    }
}
