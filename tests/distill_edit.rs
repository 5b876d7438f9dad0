//! A live `distill.*` edit reaches the distillation method from the next step on: edited while
//! the student is held at the distilled phase's first step (after the phase built its method),
//! it trains the same weights as the value set from the start. (One test in its own process:
//! libtorch's seed and threads are the process's, so concurrent trainers would disturb it.)

mod common;

use common::trainer::{next_event, start};
use kd_tui::protocol::{Command, Event, Phase, Role};
use kd_tui::train::RunOutcome;
use std::path::Path;

/// The distilled student's final weights after a run of `overrides`, with `edit` applied at
/// the distilled phase's first step.
fn distilled_weights(dir: &Path, overrides: &[&str], edit: Option<(&str, &str)>) -> Vec<u8> {
    let mut h = start(dir, overrides);
    if let Some((key, value)) = edit {
        let hold = |paused| Command::SetPaused {
            role: Role::Student,
            paused,
        };
        // Taken at the teacher's next step, held until the student's first.
        h.commands.send(hold(true)).unwrap();
        next_event(&mut h, "the distilled phase's start", |e| {
            e.at.phase == Some(Phase::Distilled) && matches!(e.event, Event::PhaseStarted { .. })
        });
        let set = Command::Set {
            key: key.into(),
            value: value.into(),
        };
        h.commands.send(set).unwrap();
        h.commands.send(hold(false)).unwrap();
        let edit = next_event(&mut h, "the edit", |e| {
            matches!(e.event, Event::Edit { .. })
        });
        assert_eq!(edit.at.phase, Some(Phase::Distilled));
        assert_eq!(edit.at.step, 0, "applied before the phase's first step");
    }
    match h.thread.join().unwrap() {
        RunOutcome::Completed(_) => {}
        other => panic!("{other:?}"),
    }
    std::fs::read(dir.join("distilled.safetensors")).unwrap()
}

#[test]
fn a_distill_edit_at_the_first_step_trains_as_if_preset() {
    let tmp = tempfile::tempdir().unwrap();
    let base = [
        "teacher.epochs=1",
        "student.epochs=2",
        "student.baseline=false",
    ];
    let dir = |name: &str| tmp.path().join(name);
    let plain = distilled_weights(&dir("plain"), &base, None);
    for (key, value) in [("distill.alpha", "0.5"), ("distill.method", "dkd")] {
        let set = format!("{key}={value}");
        let preset: Vec<&str> = base.iter().copied().chain([set.as_str()]).collect();
        let from_start = distilled_weights(&dir(&format!("{value}-set")), &preset, None);
        let edited = distilled_weights(&dir(&format!("{value}-edit")), &base, Some((key, value)));
        assert!(
            from_start == edited,
            "{key}: the step after the edit uses it"
        );
        assert!(edited != plain, "{key}: the edit changes the training");
    }
}
