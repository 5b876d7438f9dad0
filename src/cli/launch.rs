//! `kd-tui --nproc N ...`: starts N local ranks of the same command with the torchrun
//! environment (127.0.0.1, a free port) and waits for them. Each rank runs in its own process
//! group, so a Ctrl-C reaches only this launcher, which passes it to rank 0: rank 0 stops the
//! job, and its stop reaches the other ranks at the same step. Ranks other than 0 keep stderr
//! (their errors) and drop stdout (rank 0 prints the results).

use crate::console;
use crate::exit::Failure;
use crate::front::Signals;
use std::ffi::OsString;
use std::process::Stdio;
use std::time::Duration;

/// How long the other ranks may take to end once rank 0 has: rank 0's store goes with it, so
/// a rank still running fails its next collective at once; one that does not end is stuck.
const RANKS_GRACE: Duration = Duration::from_secs(5);
const FOREVER: Duration = Duration::from_secs(365 * 24 * 3600);

/// The launcher's exit code: rank 0's when it failed, else the first failed rank's, else 0.
pub fn run(nproc: usize, args: Vec<OsString>) -> Result<i32, Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::failed(format!("starting the launcher: {e}")))?;
    runtime.block_on(supervise(nproc, args))
}

async fn supervise(nproc: usize, args: Vec<OsString>) -> Result<i32, Failure> {
    let mut signals = Signals::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| Failure::failed(format!("finding a free port for the rendezvous: {e}")))?
        .port();
    let exe = std::env::current_exe().map_err(Failure::failed)?;
    let mut ranks = Vec::with_capacity(nproc);
    for rank in 0..nproc {
        let mut command = tokio::process::Command::new(&exe);
        command
            .args(&args)
            .env("RANK", rank.to_string())
            .env("LOCAL_RANK", rank.to_string())
            .env("WORLD_SIZE", nproc.to_string())
            .env("LOCAL_WORLD_SIZE", nproc.to_string())
            .env("MASTER_ADDR", "127.0.0.1")
            .env("MASTER_PORT", port.to_string())
            .process_group(0)
            .kill_on_drop(true);
        // SAFETY: between fork and exec, only an async-signal-safe prctl. A launcher that dies
        // (even by SIGKILL) takes its ranks with it: each gets SIGTERM.
        unsafe {
            command.pre_exec(|| {
                rustix::process::set_parent_process_death_signal(Some(
                    rustix::process::Signal::TERM,
                ))
                .map_err(std::io::Error::from)
            });
        }
        if rank > 0 {
            command.stdout(Stdio::null());
        }
        let child = command
            .spawn()
            .map_err(|e| Failure::failed(format!("starting rank {rank}: {e}")))?;
        ranks.push(child);
    }
    let leader = ranks[0].id();
    let mut codes = vec![None; nproc];
    // Once rank 0 (the job) has ended, the others end at their next collective; one that is
    // stuck (stopped, hung in a kernel) is killed after a grace period rather than waited on.
    let mut grace: Option<tokio::time::Instant> = None;
    let mut forwarded = None;
    while codes.iter().any(Option::is_none) {
        if codes[0].is_some() && grace.is_none() {
            grace = Some(tokio::time::Instant::now() + RANKS_GRACE);
        }
        let deadline = grace.unwrap_or_else(|| tokio::time::Instant::now() + FOREVER);
        let mut stuck = false;
        let waits = ranks
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| codes[*i].is_none())
            .map(|(i, child)| Box::pin(async move { (i, child.wait().await) }));
        tokio::select! {
            ((rank, status), _, _) = futures::future::select_all(waits) => {
                codes[rank] = Some(status.map_or(1, exit_code));
            }
            () = tokio::time::sleep_until(deadline) => stuck = true,
            signal = signals.next() => {
                forwarded = Some(signal);
                if let (Some(pid), None) = (leader, codes[0]) {
                    let _ = rustix::process::kill_process(
                        rustix::process::Pid::from_raw(pid as i32).expect("a child's pid"),
                        rustix::process::Signal::from_named_raw(signal).expect("a signal"),
                    );
                }
            }
        }
        if stuck {
            for (rank, child) in ranks.iter_mut().enumerate() {
                if codes[rank].is_none() {
                    console::note(format_args!(
                        "kd-tui: rank {rank} did not end {RANKS_GRACE:?} after rank 0; killing it"
                    ));
                    let _ = child.start_kill();
                }
            }
            grace = Some(tokio::time::Instant::now() + FOREVER);
        }
    }
    let codes: Vec<i32> = codes.into_iter().flatten().collect();
    if codes[0] > 128 && forwarded.is_none() {
        // Rank 0 was killed from outside (not a stop passed on from here): the job failed.
        return Err(Failure::failed(format!(
            "rank 0 (the job) was killed by signal {}; the run folder keeps its last \
             checkpoint, if it wrote one: --nproc {nproc} --resume RUN_DIR goes on from it",
            codes[0] - 128
        )));
    }
    Ok(match codes[0] {
        0 => codes.into_iter().find(|&c| c != 0).unwrap_or(0),
        leader => leader,
    })
}

/// A process's exit code, 128 + N for signal N.
fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

/// A series (seeds, a sweep) whose every run is a data-parallel job: each run's ranks are
/// launched as `--nproc` launches them, from the run's preset written beside its folder, and
/// the series' report is made from the summaries they leave (rank 0 prints each run's table).
pub struct RanksSeries {
    pub nproc: usize,
}

impl crate::series::Front for RanksSeries {
    fn drive(
        &mut self,
        _handle: crate::train::TrainerHandle,
        _dir: &std::path::Path,
        _resumed: bool,
        _queue: &crate::series::queue::Queue,
    ) -> Result<crate::train::Ended, String> {
        Err("the runs of a data-parallel series are launched as ranks, not driven here".into())
    }

    fn launch(
        &mut self,
        preset: &crate::config::Preset,
        dir: &std::path::Path,
        resume: bool,
    ) -> Option<Result<i32, String>> {
        let mut args: Vec<OsString> = vec!["--batch".into()];
        if resume {
            args.extend(["--resume".into(), dir.as_os_str().to_owned()]);
        } else {
            // Beside the folder, which rank 0 creates and must find empty.
            let name = dir.file_name().unwrap_or_default().to_string_lossy();
            let file = dir.with_file_name(format!(".{name}.preset.toml"));
            let written = file
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| std::fs::write(&file, preset.to_toml()));
            if let Err(e) = written {
                return Some(Err(format!("writing {}: {e}", file.display())));
            }
            args.extend([
                file.into_os_string(),
                "--out".into(),
                dir.as_os_str().to_owned(),
            ]);
        }
        Some(run(self.nproc, args).map_err(|f| f.to_string()))
    }
}

/// The command line without `--nproc N` (or `--nproc=N`): what each rank runs.
pub fn rank_args(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut skip_value = false;
    for arg in args {
        if skip_value {
            skip_value = false;
        } else if arg == "--nproc" {
            skip_value = true;
        } else if !arg.to_string_lossy().starts_with("--nproc=") {
            out.push(arg);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn rank_args_drop_only_nproc() {
        let args = |s: &str| {
            s.split(' ')
                .map(Into::into)
                .collect::<Vec<std::ffi::OsString>>()
        };
        assert_eq!(
            super::rank_args(args("--batch --nproc 2 p.toml --set a=1")),
            args("--batch p.toml --set a=1")
        );
        assert_eq!(super::rank_args(args("--nproc=4 --batch")), args("--batch"));
    }
}
