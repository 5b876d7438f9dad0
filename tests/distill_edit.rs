//! A live `distill.*` edit reaches the distillation method from the next step on: edited while
//! the student is held at the distilled phase's first step (after the phase built its method),
//! it trains the same weights as the value set from the start. (One test in its own process:
//! libtorch's seed and threads are the process's, so concurrent trainers would disturb it.)

use kd_tui::config::{self, Override};
use kd_tui::protocol::{Command, Event, Phase, Role, Stamped};
use kd_tui::run::RunFolder;
use kd_tui::train::{self, RunOutcome, TrainerHandle, TrainerSetup};
use std::path::Path;
use std::time::{Duration, Instant};

fn start(dir: &Path, overrides: &[&str]) -> TrainerHandle {
    let overrides: Vec<Override> = overrides.iter().map(|o| o.parse().unwrap()).collect();
    let preset = config::load(config::DEFAULT_PRESET, "default", &overrides).unwrap();
    let data = kd_tui::data::load(&preset.data, preset.seed).unwrap();
    let run = RunFolder::create(dir, &preset).unwrap();
    train::spawn(TrainerSetup {
        preset,
        data,
        device: tch::Device::Cpu,
        run,
        resume: None,
        world: None,
    })
}

/// The next reliable event that `matches`, skipping others; panics after 60 s.
fn next_event(h: &mut TrainerHandle, what: &str, matches: impl Fn(&Stamped) -> bool) -> Stamped {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        match h.events.try_recv() {
            Ok(e) if matches(&e) => return e,
            Ok(_) => {}
            Err(tokio::sync::mpsc::error::TryRecvError::Empty) => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => panic!("event stream ended while waiting for {what}: {e}"),
        }
    }
}

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
