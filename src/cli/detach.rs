//! `--detach`: the run as a job of its own session (`setsid`: no controlling terminal, so a
//! closed terminal or a dropped SSH connection sends it nothing), its output in `RUN_DIR/job.log`.

use crate::run::JOB_LOG;
use std::ffi::OsString;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Set in a detached job's environment.
pub const JOB_ENV: &str = "KD_TUI_DETACHED_JOB";

/// How long the launcher waits for the job to load its data and serve its socket.
const READY_TIMEOUT: Duration = Duration::from_secs(600);
/// How long after taking the folder's lock the job may take to serve its socket.
const BIND_GRACE: Duration = Duration::from_secs(10);

/// This process's arguments for the job: `--batch` instead of `--detach`, and the run folder.
pub fn job_args(run_dir: &Path, resuming: bool) -> Vec<OsString> {
    let mut args: Vec<OsString> = std::env::args_os()
        .skip(1)
        .filter(|a| a != "--detach")
        .collect();
    args.insert(0, "--batch".into());
    let has_out = args
        .iter()
        .any(|a| a == "--out" || a.to_string_lossy().starts_with("--out="));
    if !has_out && !resuming {
        args.extend(["--out".into(), run_dir.as_os_str().to_owned()]);
    }
    args
}

/// Why `--detach` did not hand over a job serving its socket.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Known before anything starts: no job could serve this folder.
    #[error(transparent)]
    PathTooLong(#[from] crate::remote::PathTooLong),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// The job ended first (bad input, a failure); the end of its log.
    #[error("the job ended before it started training (exit {code}); the end of its log:\n{log}")]
    Ended { code: i32, log: String },
    /// The job trains but serves no socket (its log says why).
    #[error("the job (pid {pid}) trains in {dir} but serves no control socket, so it cannot be attached (see {log}); `kd-tui ls` lists it")]
    NoSocket { pid: u32, dir: String, log: String },
    #[error("the job (pid {pid}) did not start training within {} s; see {log}", READY_TIMEOUT.as_secs())]
    Slow { pid: u32, log: String },
}

impl StartError {
    /// The launcher's exit code: the job's own if it ended, 2 for a folder no socket fits.
    pub fn exit_code(&self) -> i32 {
        match self {
            StartError::PathTooLong(_) => crate::exit::EXIT_BAD_INPUT,
            StartError::Ended { code, .. } => *code,
            _ => 1,
        }
    }
}

/// What the launcher waits for: the run folder's own job, or a series' first run under it.
#[derive(Clone, Copy, PartialEq)]
pub enum Job {
    Run,
    Series,
}

/// Starts the job and waits until it serves its control socket (a series: until one of its
/// runs does); returns its PID and the folder of the run it serves. If it ends first (bad
/// input, a failure), says so with its exit code and the end of its log.
pub fn start(run_dir: &Path, args: Vec<OsString>, job: Job) -> Result<(u32, PathBuf), StartError> {
    crate::remote::checked_socket_path(run_dir)?;
    let fail = |source: std::io::Error| StartError::Io {
        path: run_dir.display().to_string(),
        source,
    };
    std::fs::create_dir_all(run_dir).map_err(fail)?;
    let log_path = run_dir.join(JOB_LOG);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(fail)?;
    let mut command = Command::new(std::env::current_exe().map_err(fail)?);
    command
        .args(args)
        .env(JOB_ENV, "1")
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(fail)?)
        .stderr(log);
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| rustix::process::setsid().map(|_| ()).map_err(Into::into));
    }
    let mut child = command.spawn().map_err(fail)?;
    let pid = child.id();
    let started = Instant::now();
    // When the job took the folder's lock: it binds its socket right after.
    let mut locked: Option<Instant> = None;
    let log_name = log_path.display().to_string();
    loop {
        let serving = match job {
            Job::Run => Some(run_dir.to_path_buf()),
            Job::Series => series_run(run_dir, pid),
        };
        let held = serving.as_ref().filter(|dir| {
            crate::run::lock::holder(dir).is_some_and(|holder| job_process(holder, pid))
        });
        if let Some(dir) = held {
            if serves_socket(dir) {
                return Ok((pid, dir.clone()));
            }
            if locked.get_or_insert_with(Instant::now).elapsed() > BIND_GRACE {
                return Err(StartError::NoSocket {
                    pid,
                    dir: dir.display().to_string(),
                    log: log_name,
                });
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            let (bytes, _) = crate::run::files::tail(&log_path, 64 << 10).unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes);
            let tail: Vec<&str> = text.lines().rev().take(20).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(StartError::Ended {
                code: status.code().unwrap_or(1),
                log: tail.join("\n"),
            });
        }
        if started.elapsed() > READY_TIMEOUT {
            return Err(StartError::Slow { pid, log: log_name });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether the run folder `dir` serves its control socket (its socket file is there).
pub(super) fn serves_socket(dir: &Path) -> bool {
    crate::remote::checked_socket_path(dir)
        .is_ok_and(|socket| std::fs::metadata(socket).is_ok_and(|m| m.file_type().is_socket()))
}

/// The run of the series under `parent` that the job `pid` trains now, if any.
fn series_run(parent: &Path, pid: u32) -> Option<PathBuf> {
    crate::remote::jobs::scan(parent)
        .into_iter()
        .filter(|run| run.state.is_live())
        .map(|run| run.dir)
        .find(|dir| crate::run::lock::holder(dir).is_some_and(|h| job_process(h, pid)))
}

/// Whether `holder` is the job `pid` or descends from it: the rank 0 that a `--nproc` launcher
/// starts holds the folder's lock, and a data-parallel series starts such a launcher per run.
fn job_process(holder: u32, pid: u32) -> bool {
    let parent = |p: u32| {
        std::fs::read_to_string(format!("/proc/{p}/stat"))
            .ok()
            .and_then(|stat| {
                // `pid (comm) state ppid ...`: the name may hold spaces and parentheses.
                let after = &stat[stat.rfind(')')? + 1..];
                after.split_whitespace().nth(1)?.parse::<u32>().ok()
            })
    };
    std::iter::successors(Some(holder), |&p| parent(p).filter(|&pp| pp > 1))
        .take(4)
        .any(|p| p == pid)
}
