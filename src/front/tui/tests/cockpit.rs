//! The cockpit's views and fixes: loss parts, phases end to end, zoom, the ETA without paused
//! time, batch-size edits, the edit field's keys, and rows declared by the method.

use super::{applied, ch, draw, key, mid_run, select, stamped, student_paused};
use crate::front::tui::app::{Mode, Msg};
use crate::front::tui::render::charts::{loss_curves, phase_offsets, zoom_start};
use crate::protocol::{Command, Phase};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

#[test]
fn p_shows_the_current_phase_parts_with_the_baseline_cross_entropy() {
    let mut app = mid_run();
    let (totals, _, _) = loss_curves(&app);
    assert_eq!(
        totals.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["teacher", "baseline", "distilled"]
    );
    app.update(ch('p'));
    assert!(app.parts_view);
    let (parts, edits, x_title) = loss_curves(&app);
    assert_eq!(
        parts.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["ce", "kd", "baseline ce"]
    );
    assert_eq!(x_title, "distilled step");
    // On the distilled phase's own steps, where the temperature edit happened.
    assert_eq!(edits, [40.0]);
    assert_eq!(parts[0].points.first(), Some(&(5.0, 1.5 / 1.25 * 1.2)));
    assert_eq!(parts[2].points.last().map(|p| p.0), Some(120.0));
    insta::assert_snapshot!(draw(&app, 100, 30).backend());
}

#[test]
fn totals_lay_the_phases_end_to_end() {
    let app = mid_run();
    // Teacher and baseline each ended at step 120.
    assert_eq!(phase_offsets(&app.series), [0.0, 120.0, 240.0]);
    let (curves, edits, _) = loss_curves(&app);
    assert_eq!(curves[1].points.first().map(|p| p.0), Some(125.0));
    assert_eq!(curves[2].points.first().map(|p| p.0), Some(245.0));
    assert_eq!(edits, [280.0]);
}

#[test]
fn z_zooms_to_the_most_recent_steps_and_back() {
    let mut app = mid_run();
    let (curves, _, _) = loss_curves(&app);
    assert_eq!(zoom_start(&app, &curves), f64::NEG_INFINITY);
    app.update(ch('z'));
    // Steps 5 ..= 310 in all: the last fifth is 61 steps.
    assert_eq!(zoom_start(&app, &curves), 310.0 - 61.0);
    let screen = format!("{:?}", draw(&app, 100, 30).backend());
    assert!(screen.contains("[zoom]"), "{screen}");
    app.update(ch('z'));
    assert!(!app.zoom);
}

#[test]
fn the_eta_leaves_paused_time_out() {
    let mut app = mid_run();
    let before = app.progress.eta_seconds().unwrap();
    let now = app.progress.wall_time;
    app.update(student_paused(true, now));
    app.update(student_paused(false, now + 100.0));
    let after = app.progress.eta_seconds().unwrap();
    assert!(
        (after - before).abs() < 1e-9,
        "100 s paused changed the ETA: {before} -> {after}"
    );
    assert_eq!(app.progress.paused_seconds, 100.0);
}

#[test]
fn a_batch_size_edit_updates_the_steps_per_epoch() {
    let mut app = mid_run();
    assert_eq!(app.progress.steps_per_epoch, 20);
    let edit = applied(&app, "student.batch_size", "128");
    app.update(stamped(Some(Phase::Distilled), 4, 70, 4.0, edit));
    // 1257 training examples in batches of 128.
    assert_eq!(app.progress.steps_per_epoch, 10);
    assert!(app.progress.phase_ratio() <= 1.0);
}

fn ctrl(c: char) -> Msg {
    Msg::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL))
}

#[test]
fn the_edit_field_takes_the_keys_people_type_by_reflex() {
    let mut app = mid_run();
    select(&mut app, "lr");
    app.update(key(KeyCode::Enter));
    let value = |app: &crate::front::tui::app::App| match &app.mode {
        Mode::Editing { field, .. } => (field.value().to_string(), field.cursor()),
        other => panic!("not editing: {other:?}"),
    };
    assert_eq!(value(&app), ("0.003".into(), 5));
    app.update(ctrl('u'));
    assert_eq!(value(&app), ("".into(), 0));
    for c in "5e-4".chars() {
        app.update(ch(c));
    }
    app.update(key(KeyCode::Home));
    app.update(ch('1'));
    assert_eq!(value(&app), ("15e-4".into(), 1));
    app.update(key(KeyCode::End));
    app.update(key(KeyCode::Left));
    app.update(key(KeyCode::Left));
    app.update(key(KeyCode::Backspace));
    assert_eq!(value(&app), ("15-4".into(), 2));
    app.update(key(KeyCode::Right));
    app.update(key(KeyCode::Right));
    app.update(ctrl('w'));
    assert!(
        value(&app).0.len() < 4,
        "Ctrl-W deletes the word before the cursor: {:?}",
        value(&app)
    );
    app.update(ctrl('u'));
    for c in "2e-3".chars() {
        app.update(ch(c));
    }
    assert_eq!(
        app.update(key(KeyCode::Enter)),
        Some(Command::Set {
            key: "student.lr".into(),
            value: "2e-3".into()
        })
    );
}

#[test]
fn the_rows_follow_the_method_declarations() {
    let mut app = mid_run();
    let labels = |app: &crate::front::tui::app::App| {
        app.hyper_rows()
            .into_iter()
            .map(|r| r.label)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        labels(&app),
        [
            "lr",
            "batch size",
            "epochs",
            "method",
            "temperature",
            "alpha",
            "standardize"
        ]
    );
    let edit = applied(&app, "distill.method", "dkd");
    app.update(stamped(Some(Phase::Distilled), 4, 70, 4.0, edit));
    assert_eq!(
        labels(&app),
        [
            "lr",
            "batch size",
            "epochs",
            "method",
            "temperature",
            "alpha",
            "beta",
            "ce_weight",
            "warmup",
            "standardize"
        ]
    );
    select(&mut app, "beta");
    app.update(key(KeyCode::Enter));
    app.update(ctrl('u'));
    app.update(ch('2'));
    assert_eq!(
        app.update(key(KeyCode::Enter)),
        Some(Command::Set {
            key: "distill.beta".into(),
            value: "2".into()
        })
    );
}
