//! Jobs that outlive the terminal, through the real binaries: `--detach`, cockpits attached in
//! tmux, the control socket against slow and hostile clients, and `kd-tui ls`.

mod common;

use common::client::{start_job, Client, HELLO};
use common::tmux::Session;
use common::{read_live_metrics, read_summary, run, wait_exit, wait_for, Quiet, FEW_EPOCHS};
use kd_tui::protocol::summary::RunStatus;
use serde_json::Value;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Ends the teacher phase at its current epoch, so that the job completes.
fn finish_teacher(dir: &Path) {
    let mut c = Client::connect(dir, HELLO);
    c.send("{\"command\":\"set\",\"key\":\"teacher.epochs\",\"value\":\"1\"}\n");
}

/// The job's run folder after it completed: summary, every record readable, no socket left.
fn assert_completed(dir: &Path) {
    assert_eq!(read_summary(dir).status, RunStatus::Completed);
    let text = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    for line in text.lines() {
        serde_json::from_str::<Value>(line).expect("every record reads back");
    }
    assert!(
        !dir.join("control.sock").exists(),
        "the job removes its socket"
    );
}

fn steps_in(dir: &Path) -> usize {
    read_live_metrics(dir)
        .iter()
        .filter(|r| r["type"] == "step")
        .count()
}

fn ls(root: &Path) -> Vec<Value> {
    let out = run(["ls".as_ref(), root.as_os_str(), "--json".as_ref()]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    serde_json::from_str::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn state_of(runs: &[Value], dir: &Path) -> (String, Value) {
    let run = runs
        .iter()
        .find(|r| r["dir"] == dir.display().to_string())
        .unwrap_or_else(|| panic!("{} not listed: {runs:?}", dir.display()));
    (
        run["state"].as_str().unwrap().to_string(),
        run["pid"].clone(),
    )
}

#[test]
fn a_detached_job_outlives_its_terminal_and_takes_a_second_cockpit() {
    let bin = env!("CARGO_BIN_EXE_kd-tui");
    let s = Session::shell(
        "detach",
        120,
        40,
        &format!("{bin} {} --detach --out {{dir}}/run --set teacher.epochs=100000 --set student.epochs=2; echo $? > {{dir}}/exit-code; sleep 600", common::DIGITS),
    );
    let dir = s.run_dir();
    s.wait_screen("the attached cockpit", |screen| {
        screen.contains("attached to pid") && screen.contains("▶ running")
    });
    let pid = kd_tui::run::lock::holder(&dir).expect("a live job holds the run folder");
    assert!(std::fs::read_to_string(dir.join("job.log"))
        .unwrap()
        .contains("run folder"));
    let mode = std::fs::metadata(dir.join("control.sock"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "only the owner may connect");

    s.keys(&["Space"]);
    s.wait_screen("the paused state", |screen| screen.contains("paused"));
    wait_for("the pause record", || {
        read_live_metrics(&dir)
            .iter()
            .any(|r| r["type"] == "paused")
    });
    let before = steps_in(&dir);
    // No step records while paused, over a window that the edit below runs in.
    let quiet = Quiet::open(Duration::from_millis(1500));
    s.edit_row(4, "8"); // distill.temperature, 4 rows down
    wait_for("the edit record", || {
        read_live_metrics(&dir)
            .iter()
            .any(|r| r["type"] == "edit" && r["key"] == "distill.temperature" && r["new"] == 8.0)
    });
    quiet.close();
    assert_eq!(steps_in(&dir), before, "no step records while paused");
    s.keys(&["Space"]);
    wait_for("steps again", || steps_in(&dir) > before);

    // The terminal goes away: the job does not notice.
    s.kill();
    let after_kill = steps_in(&dir);
    wait_for("steps after the terminal closed", || {
        steps_in(&dir) > after_kill + 5
    });
    assert_eq!(kd_tui::run::lock::holder(&dir), Some(pid));

    let second = Session::attach("attach", &dir);
    second.wait_screen("the whole history", |screen| {
        screen.contains(&format!("attached to pid {pid}"))
            && screen.contains("edit distill.temperature: 4.0 -> 8.0")
    });
    // Detaching from a paused job says that it stays paused, and how to come back.
    second.keys(&["Space"]);
    second.wait_screen("the paused state", |screen| screen.contains("⏸ paused"));
    second.keys(&["q"]);
    assert_eq!(second.wait_exit(), 0);
    let attach_again = format!("Attach again: kd-tui attach {}", dir.display());
    second.wait_screen("the detach line", |screen| {
        let screen = screen.replace('\n', "");
        screen.contains(&format!("detached; the job (pid {pid}) stays paused"))
            && screen.contains(&attach_again)
    });
    assert_eq!(kd_tui::run::lock::holder(&dir), Some(pid));
    let third = Session::attach("attach-again", &dir);
    third.wait_screen("the paused job", |screen| screen.contains("⏸ paused"));
    third.keys(&["Space"]);
    third.wait_screen("the running job", |screen| screen.contains("▶ running"));
    third.keys(&["q"]);
    assert_eq!(third.wait_exit(), 0);
    third.wait_screen("the detach line", |screen| {
        screen.contains(&format!("detached; the job (pid {pid}) goes on"))
    });
    assert_eq!(
        kd_tui::run::lock::holder(&dir),
        Some(pid),
        "q detaches; the job goes on"
    );

    finish_teacher(&dir);
    // Nobody waits for a detached job: its log's last line says how it ended.
    wait_for("the job's last line", || {
        std::fs::read_to_string(dir.join("job.log"))
            .unwrap()
            .contains("kd-tui: job exited with code 0")
    });
    assert_eq!(kd_tui::run::lock::holder(&dir), None);
    assert_completed(&dir);
    let log = std::fs::read_to_string(dir.join("job.log")).unwrap();
    assert!(log.contains("distilled"), "{log}");
}

#[test]
fn two_clients_follow_while_a_client_that_never_reads_is_cut_off() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let mut job = start_job(&dir);
    let followers: Vec<_> = (0..2)
        .map(|_| {
            let mut c = Client::connect(&dir, HELLO);
            std::thread::spawn(move || {
                let welcome = c.line().unwrap();
                assert_eq!(welcome["welcome"]["version"], 1, "{welcome}");
                // History first (its first record is the run's start), then live events.
                assert_eq!(c.line().unwrap()["type"], "run_started");
                let mut steps = 0;
                while c.line().unwrap_or_else(|| panic!("a follower was cut off"))["type"]
                    != "finished"
                {
                    steps += 1;
                }
                steps
            })
        })
        .collect();
    let _silent = Client::connect(&dir, HELLO);
    let log = dir.with_extension("log");
    wait_for("the silent client to be disconnected", || {
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("a client stopped reading; disconnected")
    });
    finish_teacher(&dir);
    for follower in followers {
        assert!(follower.join().unwrap() > 0);
    }
    assert_eq!(wait_exit(&mut job), 0);
    assert_completed(&dir);
}

#[test]
fn hostile_clients_leave_the_job_running_and_its_folder_valid() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let mut job = start_job(&dir);
    let error_of = |c: &mut Client| c.line().unwrap()["error"].as_str().unwrap().to_string();

    // Says nothing: refused after a while (checked last, it takes 5 s).
    let mut mute = Client::connect(&dir, "");
    let mut garbage = Client::connect(&dir, "hello?\n");
    assert!(error_of(&mut garbage).contains("expected a hello"));
    assert!(garbage.line().is_none(), "hung up");
    let mut future = Client::connect(&dir, "{\"hello\":\"kd-tui\",\"version\":99}\n");
    assert!(error_of(&mut future).contains("version 1"));

    // After a hello, bad lines get errors and the connection stays.
    let mut rude = Client::connect(&dir, HELLO);
    rude.until("the live stream", |l| l["type"] == "step");
    rude.send("not json\n{\"command\":\"fly\"}\n{\"command\":\"checkpoint\"}\n");
    let errors: Vec<String> = (0..2)
        .map(|_| {
            rude.until("an error line", |l| l.get("error").is_some())["error"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(
        errors.iter().all(|e| e.starts_with("not a command")),
        "{errors:?}"
    );
    assert!(errors[1].contains("fly"), "{errors:?}");
    rude.until("the checkpoint", |l| l["type"] == "checkpoint");
    // From here it reads on, to the run's end, while the others try their worst.
    let rude = std::thread::spawn(move || {
        rude.until("the run's end", |l| l["type"] == "finished");
    });

    // A 100 MB line: an error, then a hang-up.
    let mut huge = Client::connect(&dir, HELLO);
    let mut writer = huge.stream.try_clone().unwrap();
    let flood = std::thread::spawn(move || {
        let chunk = vec![b'a'; 1 << 20];
        for _ in 0..100 {
            if writer.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    let refused = huge.until("the refusal", |l| l.get("error").is_some());
    assert!(refused["error"]
        .as_str()
        .unwrap()
        .contains("line longer than"));
    while huge.line().is_some() {}
    flood.join().unwrap();

    // Thousands of connections that come and go.
    for i in 0..2000 {
        let mut s = UnixStream::connect(dir.join("control.sock")).unwrap();
        if i % 2 == 0 {
            let _ = s.write_all(HELLO.as_bytes());
        }
    }
    assert!(error_of(&mut mute).contains("no hello"));

    finish_teacher(&dir);
    rude.join().unwrap();
    assert_eq!(wait_exit(&mut job), 0);
    assert_completed(&dir);
}

#[test]
fn ls_tells_live_completed_interrupted_and_killed_runs_apart() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let done = root.join("done");
    let out = run([
        "--batch",
        "--out",
        done.to_str().unwrap(),
        "--set",
        FEW_EPOCHS[0],
        "--set",
        FEW_EPOCHS[1],
    ]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let (code, _) = common::run_until_sigterm(
        &root.join("stopped"),
        "metrics.jsonl",
        &["--set", "teacher.epochs=100000"],
        |r| r["type"] == "epoch",
    );
    assert_eq!(code, Some(128 + 15));
    let live: PathBuf = root.join("live");
    let mut live_job = start_job(&live);
    let killed = root.join("killed");
    let mut killed_job = start_job(&killed);
    killed_job.0.kill().unwrap();
    killed_job.0.wait().unwrap();

    let runs = ls(root);
    assert_eq!(state_of(&runs, &done).0, "completed");
    assert_eq!(state_of(&runs, &root.join("stopped")).0, "interrupted");
    assert_eq!(state_of(&runs, &killed).0, "dead");
    let (state, pid) = state_of(&runs, &live);
    assert_eq!(state, "running");
    assert_eq!(pid, live_job.0.id());
    let table = run(["ls".as_ref(), root.as_os_str()]);
    assert!(
        table
            .stdout
            .contains(&format!("running (pid {})", live_job.0.id())),
        "{}",
        table.stdout
    );

    // A finished run opens read-only, from its records.
    let s = Session::attach("readonly", &done);
    s.wait_screen("the read-only cockpit", |screen| {
        screen.contains("read-only: the run is completed") && screen.contains("✓ completed")
    });
    s.keys(&["q"]);
    assert_eq!(s.wait_exit(), 0);

    finish_teacher(&live);
    assert_eq!(wait_exit(&mut live_job), 0);
    assert_eq!(state_of(&ls(root), &live).0, "completed");
}

/// `--detach --seeds 2` in one process: the series runs as one job, each of its runs behind
/// its own socket. `attach PARENT` reaches the run it is on; `X` stops that run and the series
/// with it, with the command that goes on; `--batch --resume PARENT` goes on, and each run it
/// trains is reachable on its socket again.
#[test]
fn a_detached_series_is_attached_run_by_run_stopped_and_resumed() {
    let tmp = tempfile::tempdir().unwrap();
    let parent = tmp.path().join("series");
    let started = run([
        "--detach".as_ref(),
        "--seeds".as_ref(),
        "2".as_ref(),
        "--out".as_ref(),
        parent.as_os_str(),
        "--set".as_ref(),
        "teacher.epochs=100000".as_ref(),
    ]);
    assert_eq!(started.code, Some(0), "{}", started.stderr);
    assert_eq!(started.stdout.trim(), parent.display().to_string());
    assert!(
        started.stderr.contains("series job started"),
        "{}",
        started.stderr
    );
    let first = parent.join("seed-7");
    assert!(
        first.join("control.sock").exists(),
        "started once its first run serves"
    );

    let s = Session::attach("series", &parent);
    s.wait_screen("the series' run", |screen| {
        screen.contains("attached to pid") && screen.contains("series run seed-7")
    });
    assert_eq!(s.stop_job(), 0);
    let go_on = format!("kd-tui --detach --resume {}", parent.display());
    s.wait_screen("the stop line", |screen| {
        let screen = screen.replace('\n', "");
        screen.contains("the run stopped, and its series with it") && screen.contains(&go_on)
    });
    wait_for("the series job's last line", || {
        std::fs::read_to_string(parent.join("job.log"))
            .is_ok_and(|log| log.contains("job exited with code 0"))
    });
    assert_eq!(read_summary(&first).status, RunStatus::Interrupted);
    assert!(!parent.join("seed-8").exists(), "the runs after it wait");

    let log = tmp.path().join("resume.log");
    let mut resumed = common::ChildGuard(
        common::kd_tui_on(["--batch", "--resume"])
            .arg(&parent)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    for seed in ["seed-7", "seed-8"] {
        let dir = parent.join(seed);
        wait_for("the run's socket", || dir.join("control.sock").exists());
        finish_teacher(&dir);
        wait_for("the run's end", || {
            dir.join("summary.json").exists() && !dir.join("control.sock").exists()
        });
    }
    let read = || std::fs::read_to_string(&log).unwrap();
    assert_eq!(wait_exit(&mut resumed), 0, "{}", read());
    assert_completed(&first);
    assert_completed(&parent.join("seed-8"));
    let report = std::fs::read_to_string(parent.join("seeds.json")).unwrap();
    assert!(report.contains("\"status\": \"completed\""), "{report}");
}
