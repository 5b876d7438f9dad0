//! The trainer thread driven through its public interface, as the TUI drives it: every `Command`
//! and the events that answer it.

mod common;

use common::trainer::{next_event, start};
use common::Quiet;
use kd_tui::protocol::summary::RunStatus;
use kd_tui::protocol::{Command, Event, Phase, Role};
use kd_tui::train::{RunOutcome, TrainerHandle};
use std::time::{Duration, Instant};

fn drain_steps(handle: &mut TrainerHandle) -> usize {
    std::iter::from_fn(|| handle.steps.try_recv().ok()).count()
}

#[test]
fn pause_edit_checkpoint_skip_and_stop() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let mut h = start(&dir, &["teacher.epochs=100000", "log_every=1"]);
    next_event(&mut h, "the first epoch", |e| {
        matches!(e.event, Event::Epoch { .. })
    });

    // Pause: the trainer confirms, then no step is taken.
    h.commands
        .send(Command::SetPaused {
            role: Role::Teacher,
            paused: true,
        })
        .unwrap();
    let paused = next_event(&mut h, "the pause", |e| {
        matches!(e.event, Event::Paused { paused: true, .. })
    });
    // Room in the step channel, so that a step taken while paused would show. Steps that
    // trail the pause are told apart by their step number.
    drain_steps(&mut h);
    let quiet = Quiet::open(Duration::from_millis(500));

    // Commands still work while paused: a refused edit, an accepted one, a checkpoint.
    h.commands
        .send(Command::Set {
            key: "distill.alpha".into(),
            value: "2".into(),
        })
        .unwrap();
    let refused = next_event(&mut h, "the refusal", |e| {
        matches!(e.event, Event::EditRefused { .. })
    });
    let Event::EditRefused { reason, .. } = refused.event else {
        unreachable!()
    };
    assert!(reason.contains("[0, 1]"), "{reason}");
    h.commands
        .send(Command::Set {
            key: "teacher.lr".into(),
            value: "5e-4".into(),
        })
        .unwrap();
    let edit = next_event(&mut h, "the edit", |e| {
        matches!(e.event, Event::Edit { .. })
    });
    assert_eq!(
        edit.at.step, paused.at.step,
        "the edit lands before the next step"
    );
    let Event::Edit {
        key,
        old,
        new,
        params,
        preset,
    } = edit.event
    else {
        unreachable!()
    };
    assert_eq!(
        (key.as_str(), old, new),
        ("teacher.lr", 1e-3.into(), 5e-4.into())
    );
    assert!(params.is_empty(), "{params:?}");
    let preset: kd_tui::config::Preset = toml::from_str(&preset).unwrap();
    assert_eq!(preset.teacher.lr, 5e-4);
    h.commands.send(Command::Checkpoint).unwrap();
    let ckpt = next_event(&mut h, "the checkpoint", |e| {
        matches!(e.event, Event::Checkpoint { .. })
    });
    let Event::Checkpoint { path } = ckpt.event else {
        unreachable!()
    };
    assert!(std::path::Path::new(&path).is_file(), "{path}");
    assert!(dir.join("checkpoint.json").is_file());
    quiet.close();
    let stepped = std::iter::from_fn(|| h.steps.try_recv().ok())
        .filter(|s| s.at.step > paused.at.step)
        .count();
    assert_eq!(stepped, 0, "no steps while paused");

    // Resume: steps come again, at the new learning rate.
    h.commands
        .send(Command::SetPaused {
            role: Role::Teacher,
            paused: false,
        })
        .unwrap();
    next_event(&mut h, "the resume", |e| {
        matches!(e.event, Event::Paused { paused: false, .. })
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let step = loop {
        if let Ok(s) = h.steps.try_recv() {
            break s;
        }
        assert!(Instant::now() < deadline, "no step after resuming");
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(
        matches!(step.event, Event::Step { lr, .. } if lr == 5e-4),
        "{step:?}"
    );

    // Skip: the teacher phase ends early and the baseline starts.
    h.commands.send(Command::SkipPhase).unwrap();
    let finished = next_event(&mut h, "the teacher's end", |e| {
        matches!(e.event, Event::PhaseFinished { .. })
    });
    let Event::PhaseFinished { result } = finished.event else {
        unreachable!()
    };
    assert_eq!(result.phase, Phase::Teacher);
    assert!(result.epochs_run < 100000);
    next_event(&mut h, "the baseline", |e| {
        e.at.phase == Some(Phase::Baseline) && matches!(e.event, Event::PhaseStarted { .. })
    });

    // Stop: a checkpoint, a summary marked interrupted, and the thread ends.
    h.commands
        .send(Command::Stop {
            reason: "test".into(),
        })
        .unwrap();
    let end = next_event(&mut h, "the end", |e| {
        matches!(e.event, Event::Finished { .. })
    });
    let Event::Finished { summary } = end.event else {
        unreachable!()
    };
    assert_eq!(summary.status, RunStatus::Interrupted);
    assert!(summary.teacher.is_some() && summary.baseline.is_none());
    match h.thread.join().unwrap() {
        RunOutcome::Stopped { reason, .. } => assert_eq!(reason, "test"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn pausing_the_student_in_advance_holds_it_after_the_teacher() {
    let tmp = tempfile::tempdir().unwrap();
    let mut h = start(
        &tmp.path().join("run"),
        &["teacher.epochs=2", "student.epochs=2"],
    );
    h.commands
        .send(Command::SetPaused {
            role: Role::Student,
            paused: true,
        })
        .unwrap();
    // Taken at the teacher's next step, held until the student's first.
    next_event(&mut h, "the student pause", |e| {
        matches!(
            e.event,
            Event::Paused {
                role: Role::Student,
                paused: true
            }
        )
    });
    next_event(&mut h, "the baseline's start", |e| {
        e.at.phase == Some(Phase::Baseline) && matches!(e.event, Event::PhaseStarted { .. })
    });
    // Room in the step channel (the teacher's steps), then a window for a student step to show.
    drain_steps(&mut h);
    Quiet::open(Duration::from_millis(300)).close();
    let student_steps = std::iter::from_fn(|| h.steps.try_recv().ok())
        .filter(|s| s.at.phase == Some(Phase::Baseline))
        .count();
    assert_eq!(student_steps, 0, "the student waits");
    h.commands
        .send(Command::SetPaused {
            role: Role::Student,
            paused: false,
        })
        .unwrap();
    let end = next_event(&mut h, "the end", |e| {
        matches!(e.event, Event::Finished { .. })
    });
    let Event::Finished { summary } = end.event else {
        unreachable!()
    };
    assert_eq!(summary.status, RunStatus::Completed);
}

#[test]
fn a_batch_larger_than_the_training_split_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut h = start(&tmp.path().join("run"), &["teacher.epochs=100000"]);
    let started = next_event(&mut h, "the run's start", |e| {
        matches!(e.event, Event::RunStarted { .. })
    });
    let Event::RunStarted { train_examples, .. } = started.event else {
        unreachable!()
    };
    h.commands
        .send(Command::Set {
            key: "teacher.batch_size".into(),
            value: (train_examples + 1).to_string(),
        })
        .unwrap();
    let refused = next_event(&mut h, "the refusal", |e| {
        matches!(e.event, Event::EditRefused { .. } | Event::Edit { .. })
    });
    let Event::EditRefused { reason, .. } = refused.event else {
        panic!("accepted: {refused:?}")
    };
    assert_eq!(
        reason,
        format!(
            "a batch of {} is larger than the training split: at most {train_examples}",
            train_examples + 1
        )
    );
    h.commands
        .send(Command::Stop {
            reason: "test".into(),
        })
        .unwrap();
    h.thread.join().unwrap();
}
