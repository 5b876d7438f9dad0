//! Jobs against hostile neighbours, through the real binary: a client flooding the control
//! socket, more clients than a job takes, run folders whose socket path is too long or whose
//! socket cannot be bound, a lock held by someone else, and `ls` over files that are not what
//! they claim.

mod common;

use common::client::{start_job, Client, HELLO};
use common::{
    kd_tui, kd_tui_on, read_live_metrics, read_metrics, run_until_sigterm, wait_for, ChildGuard,
};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn steps_in(dir: &Path) -> usize {
    read_live_metrics(dir)
        .iter()
        .filter(|r| r["type"] == "step")
        .count()
}

fn sigterm(pid: u32) {
    let sent = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

/// Waits up to `limit` for `child` to exit; its exit code, or `None` (then it is killed).
fn exit_within(child: &mut ChildGuard, limit: Duration) -> Option<i32> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(status) = child.0.try_wait().unwrap() {
            return Some(status.code().unwrap_or(-1));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.0.kill();
    let _ = child.0.wait();
    None
}

/// Kills the job training in `dir`, if one does (a detached job is nobody's child).
fn kill_job_in(dir: &Path) {
    if let Some(pid) = kd_tui::run::lock::holder(dir) {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
}

/// A run stopped by SIGTERM after its first teacher epoch (teacher.epochs=100000).
fn stopped_run(dir: &Path) {
    let (code, stderr) = run_until_sigterm(
        dir,
        "metrics.jsonl",
        &["--set", "teacher.epochs=100000"],
        |r| r["type"] == "epoch",
    );
    assert_eq!(code, Some(128 + 15), "{stderr}");
}

#[test]
fn a_flooding_client_neither_stalls_training_nor_fills_the_records_nor_delays_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let mut job = start_job(&dir);
    wait_for("steps", || steps_in(&dir) > 0);

    // Four clients, each writing 1,000 refused edits per write, reconnecting when cut off.
    let refused = "{\"command\":\"set\",\"key\":\"distill.temperature\",\"value\":\"-1\"}\n";
    let flood = Arc::new(refused.repeat(1000).into_bytes());
    let stop = Arc::new(AtomicBool::new(false));
    let flooders: Vec<_> = (0..4)
        .map(|_| {
            let (socket, flood, stop) = (dir.join("control.sock"), flood.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut s) = UnixStream::connect(&socket) else {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    };
                    s.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
                    let _ = s.write_all(HELLO.as_bytes());
                    while !stop.load(Ordering::Relaxed) && s.write_all(&flood).is_ok() {}
                }
            })
        })
        .collect();
    let before = steps_in(&dir);
    std::thread::sleep(Duration::from_secs(4));
    let during = steps_in(&dir) - before;
    assert!(during > 0, "no step recorded during 4 s of flood");

    // SIGTERM while the flood goes on: the job stops, checkpointed, as promptly as ever.
    sigterm(job.0.id());
    let signalled = Instant::now();
    let code = exit_within(&mut job, Duration::from_secs(15));
    common::say(format_args!(
        "{during} step records during the flood; exit {code:?} {:.1} s after SIGTERM",
        signalled.elapsed().as_secs_f64()
    ));
    stop.store(true, Ordering::Relaxed);
    for f in flooders {
        f.join().unwrap();
    }
    assert_eq!(
        code,
        Some(128 + 15),
        "SIGTERM under a flood did not end the job within 15 s"
    );

    let records = read_metrics(&dir);
    let refusals = records
        .iter()
        .filter(|r| r["type"] == "edit_refused")
        .count();
    let wall = records.last().unwrap()["wall_time"].as_f64().unwrap();
    // At most 10 a second, over the whole run.
    assert!(
        refusals as f64 <= 10.0 * (wall + 1.0),
        "{refusals} edit_refused records in {wall:.1} s"
    );
    assert!(records.iter().any(|r| r["type"] == "log"
        && r["message"]
            .as_str()
            .unwrap()
            .contains("more refused edits not recorded")));
    let size = std::fs::metadata(dir.join("metrics.jsonl")).unwrap().len();
    assert!(size < 4 << 20, "metrics.jsonl grew to {size} bytes");
    let log = std::fs::read_to_string(dir.with_extension("log")).unwrap();
    assert!(
        log.contains("a client kept flooding; disconnected"),
        "{log}"
    );
}

/// Lets this process hold a couple of thousand sockets.
fn raise_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max.min(8192);
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
}

#[test]
fn a_job_takes_a_thousand_clients_and_names_its_limit_to_the_next() {
    raise_file_limit();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let _job = start_job(&dir);
    // Paused, the job sends nothing new: no client is cut off for not reading.
    let mut first = Client::connect(&dir, HELLO);
    assert!(first.line().unwrap().get("welcome").is_some());
    first.send("{\"command\":\"set_paused\",\"role\":\"teacher\",\"paused\":true}\n");
    first.until("the pause", |l| l["type"] == "paused");
    let mut clients = vec![first];
    let refusal = loop {
        assert!(clients.len() <= 5000, "no limit at all");
        let mut c = Client::connect(&dir, HELLO);
        let line = c.line().expect("an answer");
        match line.get("error") {
            Some(error) => break error.as_str().unwrap().to_string(),
            None => {
                assert!(line.get("welcome").is_some(), "{line}");
                clients.push(c);
            }
        }
    };
    let limit: usize = refusal
        .split("at most ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the refusal names no limit: {refusal}"));
    assert_eq!(clients.len(), limit, "{refusal}");
    assert!(limit >= 1000, "{refusal}");
    // One leaves: the next one is welcome.
    clients.pop();
    let mut again = Client::connect(&dir, HELLO);
    assert!(again.line().unwrap().get("welcome").is_some());
}

/// `kd-tui --detach <args>` without a terminal; its exit code within a minute, and stderr.
fn detach(args: &[&str], dir: &Path) -> (Option<i32>, String) {
    let err = dir.with_extension("launcher.txt");
    let launcher = kd_tui_on(["--detach"].iter().chain(args))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let code = exit_within(&mut ChildGuard(launcher), Duration::from_secs(60));
    kill_job_in(dir);
    (code, std::fs::read_to_string(&err).unwrap())
}

#[test]
fn detach_refuses_a_folder_whose_socket_path_is_too_long_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("d".repeat(120));
    let out = dir.to_str().unwrap();
    let (code, stderr) = detach(&["--out", out, "--set", "teacher.epochs=100000"], &dir);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(out) && stderr.contains("at most 107"),
        "{stderr}"
    );
    assert!(!dir.exists(), "nothing started");
}

#[test]
fn detach_does_not_wait_on_a_job_that_cannot_serve_its_socket() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    stopped_run(&dir);
    // Something that is not a socket and cannot be removed where the socket goes.
    std::fs::create_dir_all(dir.join("control.sock/x")).unwrap();
    let (code, stderr) = detach(&["--resume", dir.to_str().unwrap()], &dir);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("serves no control socket"), "{stderr}");
}

#[test]
fn the_job_lock_is_the_owners_and_whoever_blocks_it_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    stopped_run(&dir);
    let lock = dir.join("job.lock");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&lock), 0o600);

    // As an older kd-tui left it, and someone holding a shared lock on it.
    std::fs::set_permissions(&lock, std::fs::Permissions::from_mode(0o644)).unwrap();
    let blocker = ChildGuard(
        Command::new("flock")
            .arg("-s")
            .arg(&lock)
            .args(["sleep", "600"])
            .spawn()
            .unwrap(),
    );
    wait_for("the shared lock", || {
        std::fs::read_to_string("/proc/locks")
            .unwrap()
            .lines()
            .any(|l| l.contains(&format!(" {} ", blocker.0.id())))
    });
    let out = common::run(["--batch", "--resume", dir.to_str().unwrap()]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("locked by process {}", blocker.0.id())),
        "{}",
        out.stderr
    );
    assert_eq!(mode(&lock), 0o600, "narrowed");
}

#[test]
fn ls_lists_a_run_with_a_bad_byte_and_reads_no_endless_file() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let run = root.join("run");
    stopped_run(&run);
    // A bad byte inside the records.
    let metrics = run.join("metrics.jsonl");
    let mut bytes = b"{\"type\":\"log\xff\"}\n".to_vec();
    bytes.extend(std::fs::read(&metrics).unwrap());
    std::fs::write(&metrics, bytes).unwrap();
    // Records that are /dev/zero, and a FIFO nobody writes.
    let zero = root.join("zero");
    std::fs::create_dir(&zero).unwrap();
    std::os::unix::fs::symlink("/dev/zero", zero.join("metrics.jsonl")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", zero.join("summary.json")).unwrap();
    let fifo = root.join("fifo");
    std::fs::create_dir(&fifo).unwrap();
    assert!(Command::new("mkfifo")
        .arg(fifo.join("metrics.jsonl"))
        .status()
        .unwrap()
        .success());

    let mut ls = kd_tui();
    ls.args(["ls".as_ref(), root.as_os_str(), "--json".as_ref()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe; what ls may take, so an endless read fails fast.
    unsafe {
        ls.pre_exec(|| {
            let gib = 4 << 30;
            let limit = libc::rlimit {
                rlim_cur: gib,
                rlim_max: gib,
            };
            libc::setrlimit(libc::RLIMIT_AS, &limit);
            Ok(())
        });
    }
    let mut child = ChildGuard(ls.spawn().unwrap());
    let code = exit_within(&mut child, Duration::from_secs(60));
    let mut stdout = String::new();
    std::io::Read::read_to_string(child.0.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    assert_eq!(code, Some(0), "{stdout}");
    let runs: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["dir"], run.display().to_string());
    assert_eq!(runs[0]["state"], "interrupted");
}
