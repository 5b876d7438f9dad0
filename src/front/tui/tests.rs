//! `update()` for every key, and snapshots of the screen fed by fixed state.

mod attached;
mod cockpit;
mod diverged;
mod edits;
mod figures;
mod ranks;
mod screens;
mod series;

use super::app::{App, Confirm, EditField, Mode, Msg};
use super::render;
use crate::config;
use crate::distill::Method;
use crate::protocol::summary::{Latency, PhaseResult, RunStatus, RunSummary};
use crate::protocol::ModelSize;
use crate::protocol::{Command, Event, LogLevel, Phase, Position, Role, Stamped};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::{backend::TestBackend, Terminal};

/// The Unix time of the test run's `wall_time` 0.
pub(super) const CLOCK_ORIGIN: f64 = 1.8e9;

pub(super) fn stamped(
    phase: Option<Phase>,
    epoch: usize,
    step: usize,
    wall_time: f64,
    event: Event,
) -> Msg {
    Msg::Trainer(Stamped {
        at: Position { phase, epoch, step },
        wall_time,
        event,
    })
}

/// The trainer's word that the student's pause is `paused`, at `mid_run`'s step, at `wall_time`.
pub(super) fn student_paused(paused: bool, wall_time: f64) -> Msg {
    stamped(
        Some(Phase::Distilled),
        4,
        70,
        wall_time,
        Event::Paused {
            role: Role::Student,
            paused,
        },
    )
}

/// The `Edit` event the trainer sends when it applies `key = value` to the app's preset.
pub(super) fn applied(app: &App, key: &str, value: &str) -> Event {
    let before = app.preset.as_ref().expect("a run has started");
    let after = before.with_edit(key, value).expect("a valid edit");
    let json = |p: &config::Preset| serde_json::to_value(p.get(key)).unwrap();
    Event::Edit {
        key: key.into(),
        old: json(before),
        new: json(&after),
        params: Default::default(),
        preset: after.to_toml(),
    }
}

pub(super) fn result(phase: Phase, params: usize, acc: f64, latency_us: f64) -> PhaseResult {
    PhaseResult {
        phase,
        trained: true,
        epochs_run: 6,
        best_epoch: 5,
        best_val_acc: acc,
        test_acc: acc,
        test_acc_last: acc - 0.002,
        end_state: None,
        threads: 1,
        gpu: None,
        per_class_acc: vec![Some(acc); 10],
        size: ModelSize {
            params,
            bytes: 4 * params,
        },
        latency: Latency {
            batch1_us: latency_us,
            per_sample_us: latency_us / 20.0,
            batch_size: 359,
        },
        train_seconds: 2.0,
        weights: format!("{}.safetensors", phase.as_str()),
        model: "mlp 32".into(),
        teacher_outputs: None,
        loss_parts: Default::default(),
        regressor_params: None,
        init: None,
    }
}

/// Feeds a whole phase: start, 6 epochs of 20 steps with a step event every 5, finish.
pub(super) fn feed_phase(
    app: &mut App,
    phase: Phase,
    start: f64,
    final_acc: f64,
    params: usize,
    latency_us: f64,
) {
    let p = Some(phase);
    app.update(stamped(
        p,
        0,
        0,
        start,
        Event::PhaseStarted {
            epochs: 6,
            steps_per_epoch: 20,
            threads: 1,
            epoch_steps_done: 0,
        },
    ));
    for epoch in 1..=6 {
        for k in 1..=4 {
            let step = (epoch - 1) * 20 + 5 * k;
            let loss = 2.3 / (1.0 + step as f64 / 10.0);
            let t = start + step as f64 * 0.01;
            app.update(stamped(
                p,
                epoch,
                step,
                t,
                Event::Step {
                    loss,
                    lr: 1e-3,
                    samples_per_sec: 6400.0,
                    parts: [("ce".to_string(), loss)].into(),
                },
            ));
        }
        let val_acc = final_acc - 0.3 / epoch as f64;
        let t = start + (epoch * 20) as f64 * 0.01;
        app.update(stamped(
            p,
            epoch,
            epoch * 20,
            t,
            Event::Epoch {
                train_loss: 0.5,
                val_loss: 0.4,
                val_acc,
                epochs: 6,
                train_parts: Default::default(),
            },
        ));
    }
    let t = start + 1.3;
    app.update(stamped(
        p,
        6,
        120,
        t,
        Event::PhaseFinished {
            result: Box::new(result(phase, params, final_acc, latency_us)),
        },
    ));
}

/// A run on the digits preset (6 epochs each) that has just started: no phase yet.
pub(super) fn started() -> App {
    let mut app = App::new(false);
    app.update(run_started());
    app
}

/// The trainer's first event of a run on the digits preset, 6 epochs each.
pub(super) fn run_started() -> Msg {
    let epochs = [
        "teacher.epochs=6".parse().unwrap(),
        "student.epochs=6".parse().unwrap(),
    ];
    let preset = config::load(config::DIGITS_PRESET, "test", &epochs).unwrap();
    stamped(
        None,
        0,
        0,
        0.0,
        Event::RunStarted {
            run_dir: "runs/digits-20261127-120000".into(),
            device: "cpu".into(),
            data: "digits (embedded, 1797 examples)".into(),
            train_examples: 1257,
            teacher: ModelSize {
                params: 85002,
                bytes: 340008,
            },
            student: ModelSize {
                params: 2410,
                bytes: 9640,
            },
            preset: preset.to_toml(),
            clock_origin_unix: CLOCK_ORIGIN,
            world_size: 1,
        },
    )
}

/// A run that has trained the teacher and the baseline and is half-way through distilling,
/// with one accepted edit.
pub(super) fn mid_run() -> App {
    let mut app = started();
    feed_phase(&mut app, Phase::Teacher, 0.1, 0.983, 85002, 40.0);
    feed_phase(&mut app, Phase::Baseline, 1.5, 0.955, 2410, 6.0);
    let p = Some(Phase::Distilled);
    app.update(stamped(
        p,
        0,
        0,
        3.0,
        Event::PhaseStarted {
            epochs: 6,
            steps_per_epoch: 20,
            threads: 1,
            epoch_steps_done: 0,
        },
    ));
    for step in (5..=70).step_by(5) {
        let epoch = (step - 1) / 20 + 1;
        let loss = 1.5 / (1.0 + step as f64 / 20.0);
        app.update(stamped(
            p,
            epoch,
            step,
            3.0 + step as f64 * 0.01,
            Event::Step {
                loss,
                lr: 1e-3,
                samples_per_sec: 6400.0,
                parts: [
                    ("ce".to_string(), loss * 1.2),
                    ("kd".to_string(), loss * 0.9),
                ]
                .into(),
            },
        ));
        if step % 20 == 0 {
            app.update(stamped(
                p,
                epoch,
                step,
                3.0 + step as f64 * 0.01,
                Event::Epoch {
                    train_loss: 0.6,
                    val_loss: 0.3,
                    val_acc: 0.9 + 0.01 * epoch as f64,
                    epochs: 6,
                    train_parts: Default::default(),
                },
            ));
        }
        if step == 40 {
            let edit = applied(&app, "distill.temperature", "8");
            app.update(stamped(p, epoch, step, 3.4, edit));
        }
    }
    app.update(Msg::Tick(CLOCK_ORIGIN + 4.0));
    app
}

pub(super) fn finished_run() -> App {
    let mut app = mid_run();
    let summary = RunSummary {
        status: RunStatus::Completed,
        name: "digits".into(),
        seed: 7,
        device: "cpu".into(),
        data: "digits".into(),
        input: crate::protocol::InputShape::image(1, 8, 8),
        classes: (0..10).map(|c| c.to_string()).collect(),
        wall_seconds: 5.0,
        teacher: None,
        baseline: None,
        distilled: None,
        distributed: None,
        failure: None,
        comparison: crate::protocol::summary::Comparison::of(
            &result(Phase::Teacher, 85002, 0.983, 40.0),
            Some(&result(Phase::Baseline, 2410, 0.955, 6.0)),
            Some(&result(Phase::Distilled, 2410, 0.961, 6.0)),
            Some(crate::protocol::stats::PairedTest::from_counts(359, 5, 7)),
        ),
    };
    app.update(stamped(
        Some(Phase::Distilled),
        6,
        120,
        4.5,
        Event::PhaseFinished {
            result: Box::new(result(Phase::Distilled, 2410, 0.961, 6.0)),
        },
    ));
    app.update(stamped(
        None,
        6,
        120,
        4.6,
        Event::Finished {
            summary: Box::new(summary),
        },
    ));
    app
}

pub(super) fn key(code: KeyCode) -> Msg {
    Msg::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

pub(super) fn ch(c: char) -> Msg {
    key(KeyCode::Char(c))
}

pub(super) fn draw(app: &App, width: u16, height: u16) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|f| render::render(app, f)).unwrap();
    terminal
}

// ---- update(): one test per key ----

#[test]
fn space_pauses_and_resumes_the_current_role() {
    let mut app = mid_run();
    assert_eq!(
        app.update(ch(' ')),
        Some(Command::SetPaused {
            role: Role::Student,
            paused: true
        })
    );
    // The trainer's confirmation is what flips the state.
    app.update(student_paused(true, 3.8));
    assert!(app.is_paused(Role::Student));
    assert_eq!(
        app.update(ch(' ')),
        Some(Command::SetPaused {
            role: Role::Student,
            paused: false
        })
    );
}

#[test]
fn t_and_s_pause_teacher_and_student_separately() {
    let mut app = mid_run();
    assert_eq!(
        app.update(ch('t')),
        Some(Command::SetPaused {
            role: Role::Teacher,
            paused: true
        })
    );
    assert_eq!(
        app.update(ch('s')),
        Some(Command::SetPaused {
            role: Role::Student,
            paused: true
        })
    );
}

#[test]
fn up_down_select_rows_and_wrap() {
    let mut app = mid_run();
    assert_eq!(app.selected, 0);
    assert_eq!(app.update(key(KeyCode::Down)), None);
    assert_eq!(app.selected, 1);
    app.update(ch('j'));
    assert_eq!(app.selected, 2);
    app.update(ch('k'));
    app.update(key(KeyCode::Up));
    app.update(key(KeyCode::Up));
    assert_eq!(app.selected, app.hyper_rows().len() - 1, "wraps around");
}

/// Moves the selection to the row labelled `label`.
pub(super) fn select(app: &mut App, label: &str) {
    assert!(
        app.hyper_rows().iter().any(|r| r.label == label),
        "no row {label}"
    );
    while app.selected_row().label != label {
        app.update(key(KeyCode::Down));
    }
}

#[test]
fn enter_edits_the_selected_value_and_enter_applies() {
    let mut app = mid_run();
    select(&mut app, "lr");
    app.update(key(KeyCode::Enter));
    assert_eq!(
        app.mode,
        Mode::Editing {
            field: EditField::new("0.003".into()),
            refused: None
        }
    );
    for _ in 0..5 {
        app.update(key(KeyCode::Backspace));
    }
    for c in "3e-4".chars() {
        app.update(ch(c));
    }
    // The student trains now, so lr means student.lr.
    assert_eq!(
        app.update(key(KeyCode::Enter)),
        Some(Command::Set {
            key: "student.lr".into(),
            value: "3e-4".into()
        })
    );
    assert_eq!(app.mode, Mode::Normal);
}

#[test]
fn invalid_values_are_refused_with_the_reason_and_nothing_is_sent() {
    let mut app = mid_run();
    select(&mut app, "alpha");
    for (typed, reason) in [("1.5", "[0, 1]"), ("abc", "not a valid distill.alpha")] {
        app.update(key(KeyCode::Enter));
        app.update(key(KeyCode::Backspace));
        app.update(key(KeyCode::Backspace));
        app.update(key(KeyCode::Backspace));
        for c in typed.chars() {
            app.update(ch(c));
        }
        assert_eq!(app.update(key(KeyCode::Enter)), None);
        match &app.mode {
            Mode::Editing {
                refused: Some(r), ..
            } => assert!(r.contains(reason), "{r}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
        app.update(key(KeyCode::Esc));
    }
    select(&mut app, "temperature");
    app.update(key(KeyCode::Enter));
    app.update(key(KeyCode::Backspace));
    app.update(ch('-'));
    app.update(ch('1'));
    assert_eq!(app.update(key(KeyCode::Enter)), None);
    assert!(matches!(&app.mode, Mode::Editing { refused: Some(r), .. } if r.contains("> 0")));
    assert_eq!(
        app.preset.as_ref().unwrap().distill.number("temperature"),
        8.0,
        "unchanged (8 from the earlier edit)"
    );
}

#[test]
fn esc_cancels_an_edit() {
    let mut app = mid_run();
    app.update(key(KeyCode::Enter));
    app.update(ch('9'));
    assert_eq!(app.update(key(KeyCode::Esc)), None);
    assert_eq!(app.mode, Mode::Normal);
}

#[test]
fn accepted_edits_update_the_live_values() {
    let app = mid_run();
    assert_eq!(app.hyper_value("distill.temperature"), "8");
    let steps: Vec<usize> = app.series[2].edits.iter().map(|e| e.step).collect();
    assert_eq!(steps, vec![40]);
    let mut app = app;
    let edit = applied(&app, "distill.method", "hard");
    app.update(stamped(Some(Phase::Distilled), 4, 75, 3.9, edit));
    assert_eq!(app.preset.as_ref().unwrap().distill.method, Method::Hard);
}

#[test]
fn n_asks_before_skipping() {
    let mut app = mid_run();
    assert_eq!(app.update(ch('n')), None);
    assert_eq!(app.mode, Mode::Confirm(Confirm::SkipPhase));
    assert_eq!(app.update(ch('x')), None, "any other key cancels");
    assert_eq!(app.mode, Mode::Normal);
    app.update(ch('n'));
    assert_eq!(app.update(ch('y')), Some(Command::SkipPhase));
}

#[test]
fn c_checkpoints() {
    let mut app = mid_run();
    assert_eq!(app.update(ch('c')), Some(Command::Checkpoint));
}

#[test]
fn l_e_m_toggle_log_scale_smoothing_and_markers() {
    let mut app = mid_run();
    app.update(ch('l'));
    app.update(ch('e'));
    app.update(ch('m'));
    assert!(app.log_scale && !app.smoothing && app.ascii_markers);
    app.update(ch('l'));
    assert!(!app.log_scale);
}

#[test]
fn q_asks_then_stops_and_exits_once_the_trainer_finished() {
    let mut app = mid_run();
    assert_eq!(app.update(ch('q')), None);
    assert_eq!(app.mode, Mode::Confirm(Confirm::Quit));
    assert_eq!(app.update(key(KeyCode::Esc)), None);
    app.update(ch('q'));
    assert!(matches!(app.update(ch('y')), Some(Command::Stop { .. })));
    assert!(
        app.stopping && !app.exit,
        "waits for the trainer's checkpoint"
    );
    app.update(Msg::TrainerGone);
    assert!(app.exit);
}

#[test]
fn a_trainer_that_dies_ends_the_tui() {
    let mut app = mid_run();
    app.update(Msg::TrainerGone);
    assert!(app.exit);
    let mut app = finished_run();
    app.update(Msg::TrainerGone);
    assert!(!app.exit, "a finished run stays on screen until q");
}

#[test]
fn q_after_the_run_exits_at_once() {
    let mut app = finished_run();
    assert_eq!(app.update(ch('q')), None);
    assert!(app.exit);
}

#[test]
fn finished_runs_ignore_training_keys() {
    let mut app = finished_run();
    assert_eq!(app.update(ch(' ')), None);
    assert_eq!(app.update(ch('c')), None);
    assert_eq!(app.update(ch('n')), None);
    assert_eq!(app.update(key(KeyCode::Enter)), None);
    assert_eq!(app.mode, Mode::Normal);
}

#[test]
fn ctrl_c_and_signals_stop_without_asking() {
    let mut app = mid_run();
    let ctrl_c = Msg::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
    assert!(matches!(app.update(ctrl_c), Some(Command::Stop { .. })));
    let mut app = mid_run();
    assert_eq!(
        app.update(Msg::Signal(15)),
        Some(Command::Stop {
            reason: "SIGTERM".into()
        })
    );
    assert_eq!(app.update(Msg::Signal(15)), None, "asked once");
}

#[test]
fn question_mark_opens_help_and_any_key_closes_it() {
    let mut app = mid_run();
    app.update(ch('?'));
    assert_eq!(app.mode, Mode::Help);
    assert_eq!(app.update(ch(' ')), None, "keys close help rather than act");
    assert_eq!(app.mode, Mode::Normal);
}

#[test]
fn a_tick_within_the_second_keeps_a_pending_change() {
    let mut app = mid_run();
    app.dirty = false;
    let step = Event::Step {
        loss: 0.3,
        lr: 1e-3,
        samples_per_sec: 1.0,
        parts: Default::default(),
    };
    app.update(stamped(Some(Phase::Distilled), 4, 75, 3.9, step));
    app.update(Msg::Tick(CLOCK_ORIGIN + 4.1));
    assert!(
        app.dirty,
        "the new step is drawn at this frame, not a second later"
    );
    app.dirty = false;
    app.update(Msg::Tick(CLOCK_ORIGIN + 4.2));
    assert!(!app.dirty, "the clock alone redraws once a second");
    app.update(Msg::Tick(CLOCK_ORIGIN + 5.0));
    assert!(app.dirty);
}

#[test]
fn unknown_keys_do_not_redraw() {
    let mut app = mid_run();
    app.dirty = false;
    app.update(ch('x'));
    assert!(!app.dirty);
}

#[test]
fn late_steps_of_a_finished_phase_do_not_move_the_counters() {
    let mut app = mid_run();
    let before = app.progress.clone();
    app.update(stamped(
        Some(Phase::Baseline),
        6,
        119,
        3.95,
        Event::Step {
            loss: 0.1,
            lr: 1e-3,
            samples_per_sec: 1.0,
            parts: Default::default(),
        },
    ));
    let p = &app.progress;
    assert_eq!(
        (p.phase, p.epoch, p.step, p.samples_per_sec),
        (
            before.phase,
            before.epoch,
            before.step,
            before.samples_per_sec
        )
    );
    assert_eq!(app.series[1].loss.last(), Some(&(119.0, 0.1)));
}

#[test]
fn trailing_steps_do_not_move_the_counters_back() {
    let mut app = mid_run();
    let p = Some(Phase::Distilled);
    let epoch = Event::Epoch {
        train_loss: 0.5,
        val_loss: 0.4,
        val_acc: 0.93,
        epochs: 6,
        train_parts: Default::default(),
    };
    app.update(stamped(p, 4, 80, 3.9, epoch));
    app.update(stamped(
        p,
        4,
        75,
        3.85,
        Event::Step {
            loss: 0.2,
            lr: 1e-3,
            samples_per_sec: 1.0,
            parts: Default::default(),
        },
    ));
    assert_eq!((app.progress.epoch, app.progress.step), (4, 80));
    assert_eq!(
        app.series[2].loss.last(),
        Some(&(75.0, 0.2)),
        "the point is still charted"
    );
}

#[test]
fn event_log_is_bounded() {
    let mut app = mid_run();
    for i in 0..2000 {
        app.update(stamped(
            None,
            0,
            0,
            5.0,
            Event::Log {
                level: LogLevel::Info,
                message: format!("line {i}"),
            },
        ));
    }
    assert_eq!(app.log.len(), 500);
    assert_eq!(app.log.back().unwrap().text, "line 1999");
}

// ---- the data behind the charts ----

#[test]
fn ema_is_debiased_and_thinning_keeps_the_ends() {
    let smoothed = render::ema(&[(0.0, 2.0), (1.0, 2.0), (2.0, 2.0)], 0.6);
    assert!(
        smoothed.iter().all(|p| (p.1 - 2.0).abs() < 1e-12),
        "a constant stays constant: {smoothed:?}"
    );
    let s = render::ema(&[(0.0, 0.0), (1.0, 1.0)], 0.5);
    // (0.5*0 + 0.5*1) / (1 - 0.25) = 2/3
    assert!((s[1].1 - 2.0 / 3.0).abs() < 1e-12);
    let thinned = render::thin((0..1000).map(|i| (i as f64, 0.0)).collect(), 100);
    assert!(thinned.len() <= 101);
    assert_eq!(thinned.first().unwrap().0, 0.0);
    assert_eq!(thinned.last().unwrap().0, 999.0);
}

#[test]
fn eta_needs_a_warm_up_and_durations_format_coarsely() {
    let mut app = mid_run();
    assert!(app.progress.eta_seconds().is_some());
    app.update(stamped(
        Some(Phase::Distilled),
        0,
        0,
        5.0,
        Event::PhaseStarted {
            epochs: 6,
            steps_per_epoch: 20,
            threads: 1,
            epoch_steps_done: 0,
        },
    ));
    assert_eq!(
        app.progress.eta_seconds(),
        None,
        "no ETA before a full epoch"
    );
    assert_eq!(render::format_duration(75.4), "1:15");
    assert_eq!(render::format_duration(7260.0), "2h01m");
}

// ---- snapshots ----

#[test]
fn snapshot_main_screen_80x24() {
    insta::assert_snapshot!(draw(&mid_run(), 80, 24).backend());
}

#[test]
fn snapshot_main_screen_160x48() {
    insta::assert_snapshot!(draw(&mid_run(), 160, 48).backend());
}

#[test]
fn snapshot_help_overlay() {
    let mut app = mid_run();
    app.update(ch('?'));
    insta::assert_snapshot!(draw(&app, 100, 30).backend());
}

#[test]
fn snapshot_edit_in_progress() {
    let mut app = mid_run();
    select(&mut app, "temperature");
    app.update(key(KeyCode::Enter));
    app.update(key(KeyCode::Backspace));
    app.update(ch('6'));
    insta::assert_snapshot!(draw(&app, 80, 24).backend());
}

#[test]
fn snapshot_refused_edit() {
    let mut app = mid_run();
    select(&mut app, "alpha");
    app.update(key(KeyCode::Enter));
    app.update(key(KeyCode::Backspace));
    app.update(key(KeyCode::Backspace));
    app.update(key(KeyCode::Backspace));
    app.update(ch('2'));
    app.update(key(KeyCode::Enter));
    insta::assert_snapshot!(draw(&app, 80, 24).backend());
}

#[test]
fn snapshot_finished_with_ascii_markers_and_log_scale() {
    let mut app = finished_run();
    app.update(ch('m'));
    app.update(ch('l'));
    insta::assert_snapshot!(draw(&app, 120, 36).backend());
}
