//! `kd-tui --nproc 2` without `--batch`: both ranks start as one job and the cockpit attaches
//! to it, in a real terminal (tmux). `q` detaches, `ls` lists the job with its ranks, a second
//! cockpit attaches, `X` stops every rank with a checkpoint, and `--resume` with `--nproc 2`
//! completes the run. The ranks panel shows both ranks; a rank stopped (SIGSTOP) shows as silent,
//! and as heard again once it goes on. Needs a build with Gloo.

mod common;

use common::client::{Client, HELLO};
use common::ranks::require_gloo;
use common::tmux::Session;
use common::{kd_tui_on, read_summary, run, wait_exit, wait_for, ChildGuard, DIGITS};
use kd_tui::protocol::summary::RunStatus;
use serde_json::Value;
use std::path::Path;
use std::process::Stdio;

fn listed(dir: &Path) -> Value {
    let root = dir.parent().unwrap();
    let out = run(["ls".as_ref(), root.as_os_str(), "--json".as_ref()]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let runs: Vec<Value> = serde_json::from_str(&out.stdout).unwrap();
    let want = dir.display().to_string();
    runs.into_iter()
        .find(|r| r["dir"] == want.as_str())
        .unwrap_or_else(|| panic!("{want} not listed:\n{}", out.stdout))
}

#[test]
fn two_ranks_under_one_cockpit_detach_list_attach_stop_and_resume() {
    require_gloo();
    let bin = env!("CARGO_BIN_EXE_kd-tui");
    let s = Session::shell(
        "nproc",
        120,
        40,
        &format!("{bin} {DIGITS} --nproc 2 --out {{dir}}/run --set teacher.epochs=100000 --set student.epochs=2; echo $? > {{dir}}/exit-code; sleep 600"),
    );
    let dir = s.run_dir();
    s.wait_screen("the cockpit on the ranks' job", |screen| {
        screen.contains("attached to pid") && screen.contains("▶ running")
    });
    s.wait_screen("the ranks panel, both ranks training", |screen| {
        screen.contains("ranks: 2") && screen.matches("training").count() >= 2
    });
    // A rank that stops beating (stopped by a signal, as a hung rank would be) is named while
    // the other waits for it, and heard again when it goes on.
    let rank_1 = kd_tui::run::lock::holder(&dir.join("rank-1")).expect("rank 1 runs");
    let signal = |name: &str| {
        let sent = std::process::Command::new("kill")
            .args([name, &rank_1.to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    };
    signal("-STOP");
    let screen = s.wait_screen("rank 1 silent, rank 0 waiting", |screen| {
        screen.contains("rank 1 silent") && screen.contains("waiting")
    });
    assert!(screen.contains("has sent no heartbeat"), "{screen}");
    signal("-CONT");
    s.wait_screen("rank 1 heard again", |screen| {
        screen.contains("rank 1 (")
            && screen.contains("is heard again")
            && !screen.contains("rank 1 silent")
    });
    s.keys(&["r"]);
    s.wait_screen("the ranks panel hidden by r", |screen| {
        !screen.contains("ranks: 2")
    });
    s.keys(&["q"]);
    assert_eq!(s.wait_exit(), 0, "q detaches");
    let job = listed(&dir);
    assert_eq!(
        (job["state"].as_str(), job["world_size"].as_u64()),
        (Some("running"), Some(2))
    );
    let root = dir.parent().unwrap();
    let table = run(["ls".as_ref(), root.as_os_str()]);
    assert!(table.stdout.contains("2 ranks"), "{}", table.stdout);

    let second = Session::attach("nproc-attach", &dir);
    second.wait_screen("a second cockpit on the job", |screen| {
        screen.contains("attached to pid") && screen.contains("2 ranks")
    });
    assert_eq!(second.stop_job(), 0);
    let screen = second.screen();
    let go_on = format!("kd-tui --nproc 2 --resume {}", dir.display());
    assert!(screen.contains(&go_on), "{screen}");
    wait_for("both ranks to end", || {
        kd_tui::run::lock::holder(&dir).is_none()
    });
    wait_for("the job's last line", || {
        std::fs::read_to_string(dir.join("job.log"))
            .is_ok_and(|l| l.contains("job exited with code"))
    });
    assert_eq!(read_summary(&dir).status, RunStatus::Interrupted);
    assert_eq!(
        read_summary(&dir.join("rank-1")).status,
        RunStatus::Interrupted
    );
    assert!(
        dir.join("checkpoint.json").exists(),
        "a checkpoint to go on from"
    );

    // The same two ranks go on from the checkpoint; the teacher is then cut short.
    let mut resumed = ChildGuard(
        kd_tui_on(["--nproc", "2", "--batch", "--resume"])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.with_extension("resume.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_for("the resumed job's socket", || {
        dir.join("control.sock").exists()
    });
    let mut c = Client::connect(&dir, HELLO);
    c.send("{\"command\":\"set\",\"key\":\"teacher.epochs\",\"value\":\"1\"}\n");
    let log = || std::fs::read_to_string(dir.with_extension("resume.log")).unwrap();
    assert_eq!(wait_exit(&mut resumed), 0, "{}", log());
    assert_eq!(read_summary(&dir).status, RunStatus::Completed);
    assert_eq!(read_summary(&dir).distributed.unwrap().world_size, 2);
}

/// `--nproc 2 --seeds 2` without `--batch`: the series runs as one background job, each of its
/// runs a data-parallel job; the cockpit attaches to the first run and, when it ends, to the
/// next; `ls` lists both runs with their ranks and the series' report is written.
#[test]
fn a_data_parallel_series_runs_as_one_job_and_the_cockpit_follows_its_runs() {
    require_gloo();
    let bin = env!("CARGO_BIN_EXE_kd-tui");
    let s = Session::shell(
        "nproc-series",
        120,
        40,
        &format!("{bin} {DIGITS} --nproc 2 --seeds 2 --out {{dir}}/run --set teacher.epochs=20 --set student.epochs=20; echo $? > {{dir}}/exit-code; sleep 600"),
    );
    let parent = s.run_dir();
    s.wait_screen("the cockpit on the series' first run", |screen| {
        screen.contains("attached to pid") && screen.contains("series run seed-7")
    });
    s.wait_screen("the cockpit on the series' second run", |screen| {
        screen.contains("attached to pid")
            && screen.contains("2 ranks")
            && screen.contains("series run seed-8")
    });
    wait_for("the series' report", || {
        std::fs::read_to_string(parent.join("seeds.json"))
            .is_ok_and(|text| text.contains("\"status\": \"completed\""))
    });
    // Its last run over, the cockpit leaves and says where the report is.
    assert_eq!(s.wait_exit(), 0);
    assert!(s.screen().contains("seeds.json"), "{}", s.screen());
    for seed in ["seed-7", "seed-8"] {
        let run = parent.join(seed);
        assert_eq!(read_summary(&run).status, RunStatus::Completed);
        assert_eq!(read_summary(&run).distributed.unwrap().world_size, 2);
        let job = listed(&run);
        assert_eq!(job["world_size"].as_u64(), Some(2), "{seed}");
    }
    assert!(parent.join("seeds.csv").exists());
}
