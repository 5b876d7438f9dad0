//! The figures the cockpit shows: the run's ETA, a resumed phase's position, the job's elapsed
//! time, what a pause shows, and an edit pending until the trainer applies it.

use super::{
    applied, ch, draw, key, mid_run, run_started, select, stamped, started, student_paused,
    CLOCK_ORIGIN,
};
use crate::front::tui::app::{App, Link, Mode, Msg};
use crate::front::tui::render::format_duration;
use crate::protocol::summary::RunStatus;
use crate::protocol::summary::TeacherOutputs;
use crate::protocol::{Command, Event, Phase, Role};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use std::time::Duration;

fn phase_started(app: &mut App, phase: Phase, at: (usize, usize), epoch_steps_done: usize) {
    app.update(stamped(
        Some(phase),
        at.0,
        at.1,
        0.0,
        Event::PhaseStarted {
            epochs: 6,
            steps_per_epoch: 20,
            threads: 1,
            epoch_steps_done,
        },
    ));
}

/// The step that ends `epoch` of 20 steps, at `wall_time`.
fn epoch_end(app: &mut App, phase: Phase, epoch: usize, wall_time: f64) {
    let step = 20 * epoch;
    let at = |event| stamped(Some(phase), epoch, step, wall_time, event);
    app.update(at(Event::Step {
        loss: 0.5,
        lr: 1e-3,
        samples_per_sec: 64.0,
        parts: Default::default(),
    }));
    app.update(at(Event::Epoch {
        train_loss: 0.5,
        val_loss: 0.4,
        val_acc: 0.9,
        epochs: 6,
        train_parts: Default::default(),
    }));
}

fn screen(app: &App, width: u16) -> String {
    draw(app, width, 40).backend().to_string()
}

/// Steps per epoch of the students on the test run's 1,257 training examples.
fn student_steps_per_epoch(app: &App) -> f64 {
    1257usize.div_ceil(app.preset.as_ref().unwrap().student.batch_size) as f64
}

#[test]
fn the_eta_is_the_runs_with_the_phases_to_come() {
    let mut app = started();
    phase_started(&mut app, Phase::Teacher, (0, 0), 0);
    // One second a step: 100 steps of the teacher left.
    epoch_end(&mut app, Phase::Teacher, 1, 20.0);
    assert_eq!(app.progress.eta_seconds(), Some(100.0));
    // Both students' 6 epochs, predicted at the teacher's rate until one is measured, and
    // the distilled phase's pass of the teacher over the 1,257 training examples, at a third
    // of a step per batch of the teacher's.
    let students = 2.0 * 6.0 * student_steps_per_epoch(&app) + teacher_pass(&app, 1.0);
    assert_eq!(app.run_eta_seconds(), Some(100.0 + students));
    let header = screen(&app, 160);
    let run = format_duration(100.0 + students);
    assert!(header.contains(&format!("ETA {run}")), "{header}");
    assert!(header.contains("phase ETA 1:40"), "{header}");

    // The baseline measures the student's rate (a quarter second a step); the distilled
    // student is predicted at it.
    let teacher = super::result(Phase::Teacher, 85002, 0.98, 40.0);
    app.update(stamped(
        Some(Phase::Teacher),
        6,
        120,
        120.0,
        Event::PhaseFinished {
            result: Box::new(teacher),
        },
    ));
    phase_started(&mut app, Phase::Baseline, (0, 0), 0);
    epoch_end(&mut app, Phase::Baseline, 1, 5.0);
    let distilled = 6.0 * student_steps_per_epoch(&app) * 0.25 + teacher_pass(&app, 1.0);
    assert_eq!(app.run_eta_seconds(), Some(100.0 * 0.25 + distilled));

    // The distilled phase's pass: its own rate once it reports (100 of 1,257 examples in 2 s),
    // then the phase's epochs at the baseline's rate.
    app.update(stamped(
        Some(Phase::Baseline),
        6,
        120,
        40.0,
        Event::PhaseFinished {
            result: Box::new(super::result(Phase::Baseline, 2410, 0.95, 6.0)),
        },
    ));
    for (done, wall_time) in [(0, 50.0), (100, 52.0)] {
        app.update(stamped(
            Some(Phase::Distilled),
            0,
            0,
            wall_time,
            Event::TeacherOutputs {
                done,
                total: 1257,
                source: TeacherOutputs::Computed,
                layer: None,
            },
        ));
    }
    let eta = app.run_eta_seconds().unwrap();
    assert!((eta - (1157.0 * 0.02 + distilled - teacher_pass(&app, 1.0))).abs() < 1e-9);
    let header = screen(&app, 160);
    assert!(
        header.contains(&format!("ETA {}", format_duration(eta))),
        "{header}"
    );
}

/// The predicted seconds of the teacher's pass over the training set at `step_seconds` a
/// training step of the teacher.
fn teacher_pass(app: &App, step_seconds: f64) -> f64 {
    let batch = app.preset.as_ref().unwrap().teacher.batch_size as f64;
    1257.0 * step_seconds / 3.0 / batch
}

#[test]
fn the_eta_counts_every_ranks_share_and_the_guided_layers_pass() {
    let mut app = App::new(false);
    let mut started = run_started();
    if let Msg::Trainer(stamped) = &mut started {
        if let Event::RunStarted {
            world_size, preset, ..
        } = &mut stamped.event
        {
            *world_size = 2usize;
            // A method on features: the teacher's layer gets a pass of its own.
            let hint = [
                "teacher.epochs=6",
                "student.epochs=6",
                r#"distill.method="hint""#,
                r#"distill.teacher_layer="layers.1""#,
                r#"distill.student_layer="layers.0""#,
            ]
            .map(|o| o.parse().unwrap());
            let hint = crate::config::load(crate::config::DIGITS_PRESET, "test", &hint).unwrap();
            *preset = hint.to_toml();
        }
    }
    app.update(started);
    phase_started(&mut app, Phase::Teacher, (0, 0), 0);
    epoch_end(&mut app, Phase::Teacher, 1, 20.0);
    // Two ranks: a global batch twice the preset's, so half the steps an epoch.
    let batch = app.preset.as_ref().unwrap().student.batch_size;
    let steps = 1257usize.div_ceil(2 * batch) as f64;
    let pass = 1257.0 / 3.0 / (2 * app.preset.as_ref().unwrap().teacher.batch_size) as f64;
    assert_eq!(
        app.run_eta_seconds(),
        Some(100.0 + 2.0 * 6.0 * steps + 2.0 * pass),
        "the logits' pass and the guided layer's"
    );
}

#[test]
fn a_resumed_phase_goes_on_from_its_checkpoint() {
    let mut app = started();
    // Resumed a quarter into epoch 4: three epochs and 5 steps done.
    phase_started(&mut app, Phase::Teacher, (3, 65), 5);
    assert_eq!(app.progress.epoch, 4);
    assert_eq!(app.progress.epoch_ratio(), 0.25);
    let line = &app.log.back().unwrap().text;
    assert_eq!(line, "teacher phase resumed at epoch 4/6 (25% into it)");
    assert_eq!(
        app.progress.eta_seconds(),
        None,
        "no rate measured here yet"
    );
    // 15 steps in 15 s in this process: 40 steps left take 40 s.
    epoch_end(&mut app, Phase::Teacher, 4, 15.0);
    assert_eq!(app.progress.eta_seconds(), Some(40.0));
}

#[test]
fn a_resume_shows_the_stopped_runs_history_and_goes_on() {
    // The stopped process's records, as `metrics.jsonl` holds them: three epochs, then its end.
    let mut app = started();
    phase_started(&mut app, Phase::Teacher, (0, 0), 0);
    for epoch in 1..=3 {
        epoch_end(&mut app, Phase::Teacher, epoch, 20.0 * epoch as f64);
    }
    let mut summary = super::finished_run().summary.unwrap();
    summary.status = RunStatus::Interrupted;
    let end = Event::Finished {
        summary: Box::new(summary),
    };
    app.update(stamped(None, 3, 65, 70.0, end));
    // The resumed process.
    app.update(run_started());
    phase_started(&mut app, Phase::Teacher, (3, 65), 5);
    assert!(!app.finished(), "the stopped process's end is history");
    assert_eq!(app.series[Phase::Teacher.index()].val_acc.len(), 3);
    assert_eq!((app.progress.epoch, app.progress.epochs), (4, 6));
    let shown = screen(&app, 160);
    assert!(shown.contains("teacher ▶ running"), "{shown}");
    assert!(!shown.contains("waiting for the first epoch"), "{shown}");
}

#[test]
fn elapsed_is_the_jobs_however_late_the_cockpit_came() {
    let mut app = started();
    app.link = Link::Attached { pid: 42 };
    app.update(Msg::Tick(CLOCK_ORIGIN + 18.0));
    assert_eq!(app.elapsed, Duration::from_secs(18));
    assert!(screen(&app, 160).contains("elapsed 0:18"));
    // A job that no longer trains stays at its last event's time.
    app.update(stamped(
        None,
        0,
        0,
        20.0,
        Event::Checkpoint { path: "c".into() },
    ));
    app.update(Msg::TrainerGone);
    app.update(Msg::Tick(CLOCK_ORIGIN + 600.0));
    assert_eq!(app.elapsed, Duration::from_secs(20));
}

#[test]
fn a_pause_offers_resume_and_shows_no_rate() {
    let mut app = mid_run();
    assert!(screen(&app, 160).contains("Space pause"));
    app.update(student_paused(true, 3.8));
    let shown = screen(&app, 160);
    assert!(shown.contains("Space resume"), "{shown}");
    assert!(!shown.contains("samples/s"), "{shown}");
    assert!(shown.contains("· paused ·"), "{shown}");
}

#[test]
fn the_header_says_the_students_will_start_paused() {
    let mut app = started();
    phase_started(&mut app, Phase::Teacher, (0, 0), 0);
    assert_eq!(
        app.update(ch('s')),
        Some(Command::SetPaused {
            role: Role::Student,
            paused: true
        })
    );
    let paused = Event::Paused {
        role: Role::Student,
        paused: true,
    };
    app.update(stamped(Some(Phase::Teacher), 1, 3, 0.5, paused));
    let shown = screen(&app, 120);
    assert!(shown.contains("students start paused"), "{shown}");
    assert!(shown.contains("Space pause"), "the teacher still trains");
}

fn type_value(app: &mut App, value: &str) -> Option<Command> {
    app.update(key(KeyCode::Enter));
    let ctrl_u = KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL);
    app.update(Msg::Key(ctrl_u));
    for c in value.chars() {
        app.update(ch(c));
    }
    app.update(key(KeyCode::Enter))
}

#[test]
fn a_batch_larger_than_the_training_split_is_refused() {
    let mut app = mid_run();
    select(&mut app, "batch size");
    assert_eq!(type_value(&mut app, "100000"), None);
    let Mode::Editing {
        refused: Some(reason),
        ..
    } = &app.mode
    else {
        panic!("{:?}", app.mode)
    };
    assert_eq!(
        reason,
        "a batch of 100000 is larger than the training split: at most 1257"
    );
}

#[test]
fn an_accepted_edit_is_pending_until_the_trainer_applies_it() {
    let mut app = mid_run();
    select(&mut app, "batch size");
    let sent = type_value(&mut app, "128");
    assert_eq!(
        sent,
        Some(Command::Set {
            key: "student.batch_size".into(),
            value: "128".into()
        })
    );
    assert!(screen(&app, 120).contains("64 → 128 pending"));
    let edit = applied(&app, "student.batch_size", "128");
    app.update(stamped(Some(Phase::Distilled), 4, 75, 3.9, edit));
    assert!(app.pending.is_empty());
    let shown = screen(&app, 120);
    assert!(!shown.contains("pending"), "{shown}");
    assert!(shown.contains("128"), "{shown}");
}

#[test]
fn a_phase_past_its_last_epoch_has_its_epoch_gauge_full() {
    let mut app = started();
    super::feed_phase(&mut app, Phase::Teacher, 0.0, 0.98, 85002, 40.0);
    assert_eq!(app.progress.epoch_ratio(), 1.0);
    let shown = screen(&app, 120);
    assert!(shown.contains("epoch 100%"), "{shown}");
    assert!(shown.contains("phase 100%"), "{shown}");
}
