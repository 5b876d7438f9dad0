//! Drives the real `kd-tui` TUI in a real terminal (tmux): pause, edit, resume, quit, signals.
//! tmux is required (`scripts/kd test` installs it).

mod common;

use common::tmux::Session;
use common::Quiet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Starts kd-tui on the digits preset (`common::DIGITS`) with a teacher that trains "forever", its run folder
/// `{dir}/run`, its exit code in `{dir}/exit-code`. `env` is prepended to the command line
/// (`NAME=value ...`), `args` appended.
fn start(tag: &str, width: u16, height: u16, env: &str, args: &str) -> Session {
    Session::shell(
        tag,
        width,
        height,
        &format!(
            "{env} {} {} --out {{dir}}/run --set teacher.epochs=100000 {args}; echo $? > {{dir}}/exit-code; sleep 600",
            env!("CARGO_BIN_EXE_kd-tui"),
            common::DIGITS,
        ),
    )
}

/// The step counter in the header.
fn step_on(screen: &str) -> Option<u64> {
    let header = screen.lines().next()?;
    let rest = &header[header.find(" step ")? + 6..];
    rest.split_whitespace().next()?.parse().ok()
}

/// The loss chart has drawn steps: a test for any size (narrow headers leave the step out).
fn has_steps(screen: &str) -> bool {
    screen.contains("cross-entropy by step") && !screen.contains("waiting for the first steps")
}

fn metrics(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each metrics line is JSON"))
        .collect()
}

fn assert_terminal_restored(s: &Session) {
    assert_eq!(s.pane("#{alternate_on}"), "0", "alternate screen left");
    assert_eq!(s.pane("#{cursor_flag}"), "1", "cursor visible again");
}

fn assert_interrupted_run_folder(dir: &Path) {
    for file in ["preset.toml", "metrics.jsonl", "summary.json"] {
        assert!(
            dir.join(file).is_file(),
            "{file} missing in {}",
            dir.display()
        );
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["status"], "interrupted");
    let checkpoints: Vec<_> = std::fs::read_dir(dir.join("checkpoints"))
        .unwrap()
        .collect();
    assert!(
        !checkpoints.is_empty(),
        "a checkpoint is written on the way out"
    );
    assert!(metrics(dir).iter().any(|r| r["type"] == "checkpoint"));
    assert!(metrics(dir).last().is_some_and(|r| r["type"] == "finished"));
}

#[test]
fn pause_edit_resume_quit_in_a_real_terminal() {
    let s = start("main", 160, 48, "", "");
    // The first epoch is done when the validation chart appears.
    s.wait_screen("the first epoch", |screen| {
        screen.contains("teacher") && !screen.contains("waiting for the first epoch")
    });
    assert_eq!(
        s.pane("#{alternate_on}"),
        "1",
        "the TUI uses the alternate screen"
    );

    s.keys(&["Space"]);
    let paused = s.wait_screen("the paused state", |screen| screen.contains("paused"));
    let step = step_on(&paused).expect("a step counter in the header");
    let recorded = metrics(&s.run_dir()).len();
    // Steps stop while paused: checked over a window that the edit below runs in.
    let quiet = Quiet::open(Duration::from_millis(1500));

    s.edit_row(4, "8"); // distill.temperature, 4 rows down
    s.wait_screen("the edit in the event log", |screen| {
        screen.contains("edit distill.temperature: 4.0 -> 8.0")
    });

    quiet.close();
    let later = s.screen();
    assert_eq!(
        step_on(&later),
        Some(step),
        "steps stop while paused:\n{later}"
    );
    // Only the pause and the edit may still be flushed; no more steps.
    let steps_after = metrics(&s.run_dir())
        .iter()
        .skip(recorded)
        .filter(|r| r["type"] == "step")
        .count();
    assert_eq!(steps_after, 0, "no step records while paused");

    s.keys(&["Space"]);
    s.wait_screen("training to resume", |screen| {
        screen.contains("running") && step_on(screen).is_some_and(|n| n > step)
    });

    s.keys(&["q"]);
    s.wait_screen("the quit confirmation", |screen| {
        screen.contains("Quit?") && screen.contains("marked interrupted")
    });
    s.keys(&["y"]);
    assert_eq!(s.wait_exit(), 0);
    assert_terminal_restored(&s);
    let screen = s.screen();
    let dir = s.run_dir();
    // No phase finished: no empty table, but the outcome and the way back to the run.
    let go_on = format!("go on with: kd-tui --resume {}", dir.display());
    assert!(
        screen.contains("no phase finished")
            && screen.contains("interrupted (quit from the TUI)")
            && screen.contains(&go_on),
        "the outcome and the resume command on the normal screen:\n{screen}"
    );

    assert_interrupted_run_folder(&dir);
    let edits: Vec<_> = metrics(&dir)
        .into_iter()
        .filter(|r| r["type"] == "edit")
        .collect();
    assert_eq!(edits.len(), 1, "{edits:?}");
    assert_eq!(edits[0]["key"], "distill.temperature");
    assert_eq!(edits[0]["old"], 4.0);
    assert_eq!(edits[0]["new"], 8.0);
    assert_eq!(edits[0]["phase"], "teacher");
    let pauses: Vec<_> = metrics(&dir)
        .into_iter()
        .filter(|r| r["type"] == "paused")
        .map(|r| r["paused"].clone())
        .collect();
    assert_eq!(
        pauses,
        vec![serde_json::json!(true), serde_json::json!(false)]
    );
}

#[test]
fn refused_edit_shows_the_reason_and_changes_nothing() {
    let s = start("refuse", 80, 24, "", "");
    s.wait_screen("the first steps", has_steps);
    // Select alpha (5 rows down) and type 2.
    s.keys(&[
        "Down", "Down", "Down", "Down", "Down", "Enter", "BSpace", "BSpace", "BSpace",
    ]);
    s.type_text("2");
    s.keys(&["Enter"]);
    s.wait_screen("the refusal", |screen| {
        screen.contains("refused: `2` is not a valid distill.alpha: must be within [0, 1] (got 2)")
    });
    s.keys(&["Escape", "C-c"]);
    assert_eq!(s.wait_exit(), 0);
    assert_terminal_restored(&s);
    assert!(
        metrics(&s.run_dir()).iter().all(|r| r["type"] != "edit"),
        "nothing changed"
    );
}

#[test]
fn sigterm_and_sighup_restore_the_terminal_and_save_state() {
    for (tag, signal, code) in [("term", "TERM", 143), ("hup", "HUP", 129)] {
        let s = start(tag, 100, 30, "", "");
        s.wait_screen("the first steps", has_steps);
        let pid = s.pane("#{pane_pid}");
        // The pane's shell runs kd-tui as its child.
        let child = Command::new("pgrep")
            .args(["-P", &pid, "kd-tui"])
            .output()
            .unwrap();
        let child = String::from_utf8_lossy(&child.stdout).trim().to_string();
        assert!(
            !child.is_empty(),
            "kd-tui process not found under pane pid {pid}"
        );
        assert!(Command::new("kill")
            .args([&format!("-{signal}"), &child])
            .status()
            .unwrap()
            .success());
        assert_eq!(s.wait_exit(), code, "exit code after SIG{signal}");
        assert_terminal_restored(&s);
        assert_interrupted_run_folder(&s.run_dir());
    }
}

#[test]
fn panics_in_either_thread_restore_the_terminal() {
    for (fault, code) in [("trainer-panic", 1), ("ui-panic", 1)] {
        let s = start(
            fault,
            100,
            30,
            &format!("RUST_BACKTRACE=0 KD_TUI_FAULT={fault}"),
            "",
        );
        assert_eq!(s.wait_exit(), code, "{fault}: screen:\n{}", s.screen());
        assert_terminal_restored(&s);
        let screen = s.tmux(&["capture-pane", "-p", "-S", "-100", "-t", &s.name]);
        assert!(
            screen.contains(&format!("injected fault: {fault}")),
            "the panic report is readable:\n{screen}"
        );
        if fault == "ui-panic" {
            // The trainer outlives the UI: it is told to checkpoint and finish the run folder.
            assert_interrupted_run_folder(&s.run_dir());
        }
    }
}

#[test]
fn resize_redraws_at_the_new_size() {
    let s = start("resize", 160, 48, "", "--ascii");
    s.wait_screen("the events panel at 160x48", |screen| {
        screen.contains("events")
    });
    s.tmux(&["resize-window", "-t", &s.name, "-x", "80", "-y", "24"]);
    // Compact layout: the events panel folds into the footer.
    let small = s.wait_screen("the compact layout", |screen| {
        !screen.contains("┌ events") && screen.contains("models")
    });
    assert!(small.lines().all(|l| l.chars().count() <= 80), "{small}");
    s.keys(&["C-c"]);
    assert_eq!(s.wait_exit(), 0);
}

/// The digits MLPs' layers that the methods on features learn from and at.
const MLP_LAYERS: &str =
    r#"--set 'distill.teacher_layer="layers.1"' --set 'distill.student_layer="layers.0"'"#;

#[test]
fn every_method_runs_in_the_tui_and_p_shows_its_loss_parts() {
    for (method, extra, part) in [
        ("hard", "", "hard"),
        ("dkd", "", "tckd"),
        ("dist", "", "intra"),
        ("hint", MLP_LAYERS, "hint"),
        (
            "at",
            r#"--set 'teacher.model={ kind = "cnn", channels = [8, 16], kernel = 3 }' --set 'student.model={ kind = "cnn", channels = [4, 8], kernel = 3 }' --set 'distill.teacher_layer="features.1"' --set 'distill.student_layer="features.1"'"#,
            "at",
        ),
        ("sp", MLP_LAYERS, "sp"),
        ("rkd", MLP_LAYERS, "angle"),
        ("pkt", MLP_LAYERS, "pkt"),
        ("crd", MLP_LAYERS, "crd"),
    ] {
        let args = format!(
            "--set teacher.epochs=2 --set student.epochs=2 --set distill.method={method} {extra}"
        );
        let s = start(&format!("method-{method}"), 160, 48, "", &args);
        s.wait_screen("the run to complete", |screen| screen.contains("completed"));
        s.keys(&["p"]);
        // Title and legend both drawn (a capture can fall between the rows of one redraw).
        let screen = s.wait_screen("the parts view", |screen| {
            screen.contains("loss parts by distilled step") && screen.contains(" baseline ce ")
        });
        // The legend is the loss chart's bottom border: its parts, then the baseline's ce.
        let legend = screen
            .lines()
            .find(|l| l.contains(" baseline ce "))
            .unwrap_or_else(|| panic!("{method}: no parts legend in\n{screen}"));
        assert!(
            legend.contains(&format!(" {part} ")),
            "{method}: no legend entry `{part}` in\n{screen}"
        );
        s.keys(&["q"]);
        assert_eq!(s.wait_exit(), 0, "{method}");
        let summary: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(s.run_dir().join("summary.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(summary["status"], "completed", "{method}");
    }
}

#[test]
fn seeds_run_one_after_the_other_in_the_cockpit() {
    let s = start(
        "seeds",
        120,
        40,
        "",
        "--seeds 2 --set teacher.epochs=2 --set student.epochs=2",
    );
    let screen = s.wait_screen("both seeds done", |screen| {
        screen.contains("seeds: 2 of 2 done") && screen.contains("completed")
    });
    assert!(screen.contains("seeds 2/2"), "{screen}");
    for seed in [7, 8] {
        assert!(screen.contains(&format!("✓ seed {seed}")), "{screen}");
    }
    assert!(
        screen.contains("teacher ") && screen.contains("distilled "),
        "{screen}"
    );
    s.keys(&["q"]);
    assert_eq!(s.wait_exit(), 0);
    assert_terminal_restored(&s);
    // The tables held back while the cockpit was up come once the screen is back.
    let after = s.wait_screen("the tables", |screen| screen.contains("mean ± sd (2)"));
    assert!(after.contains("gain over seeds"), "{after}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.run_dir().join("seeds.json")).unwrap())
            .unwrap();
    assert_eq!(report["status"], "completed");
    assert_eq!(report["rows"].as_array().unwrap().len(), 2);
}

#[test]
fn a_divergence_is_offered_a_lower_lr_from_the_last_checkpoint() {
    // The teacher trains (its end is checkpointed); the baseline at lr 1e6 diverges at once.
    let s = start(
        "diverge",
        120,
        40,
        "",
        "--set teacher.epochs=2 --set student.lr=1e6",
    );
    s.wait_screen("the offer", |screen| {
        screen.contains("The baseline phase diverged") && screen.contains("student.lr = 1e5")
    });
    s.keys(&["y"]);
    // Again from the checkpoint, at 1e5 (still too high): a second offer, declined.
    s.wait_screen("the second offer", |screen| {
        screen.contains("student.lr = 1e4")
    });
    s.keys(&["n"]);
    s.keys(&["q"]);
    assert_eq!(s.wait_exit(), 1, "the run failed");
    assert_terminal_restored(&s);
    let records = metrics(&s.run_dir());
    let resumed = records
        .iter()
        .position(common::is_resume_record)
        .expect("the run went on from its checkpoint");
    let after = &records[resumed..];
    assert!(
        after
            .iter()
            .all(|r| r["type"] != "phase_started" || r["phase"] != "teacher"),
        "the finished teacher is not trained again"
    );
    let preset = records[..resumed]
        .iter()
        .rev()
        .find(|r| r["type"] == "run_started")
        .unwrap()["preset"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(preset.contains("lr = 100000.0"), "{preset}");
}
