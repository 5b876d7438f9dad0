//! `--detach`: the run as a job of its own session (`setsid`: no controlling terminal, so a
//! closed terminal or a dropped SSH connection sends it nothing), its output in `RUN_DIR/job.log`.

use crate::run::JOB_LOG;
use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Set in a detached job's environment.
pub const JOB_ENV: &str = "KD_TUI_DETACHED_JOB";

/// How long the launcher waits for the job to load its data and serve its socket.
const READY_TIMEOUT: Duration = Duration::from_secs(600);

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

/// Starts the job and waits until it serves its control socket; returns its PID. If it ends
/// first (bad input, a failure), returns its exit code and the end of its log.
pub fn start(run_dir: &Path, args: Vec<OsString>) -> Result<u32, (i32, String)> {
    let fail = |e: std::io::Error| (1, format!("{}: {e}", run_dir.display()));
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
    loop {
        if crate::run::lock::holder(run_dir) == Some(pid) && super::socket_path(run_dir).exists() {
            return Ok(pid);
        }
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err((status.code().unwrap_or(1), tail.join("\n")));
        }
        if started.elapsed() > READY_TIMEOUT {
            return Err((
                1,
                format!(
                    "the job (pid {pid}) did not serve {} within {} s; see {}",
                    super::SOCKET,
                    READY_TIMEOUT.as_secs(),
                    log_path.display()
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
