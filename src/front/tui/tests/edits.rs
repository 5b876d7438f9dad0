//! `Edit` events as the cockpit takes them: the preset the trainer sent, as it is; a record from
//! before edits carried it, replayed on the cockpit's copy.

use super::{mid_run, stamped};
use crate::distill::Method;
use crate::protocol::{Event, Phase};

#[test]
fn an_edit_takes_the_preset_the_trainer_sent() {
    let mut app = mid_run();
    // What the trainer resolved, even where the cockpit's own copy would not have it.
    let mut sent = app.preset.clone().unwrap();
    sent.student.lr = 0.25;
    sent.distill
        .params
        .insert("alpha".into(), toml::Value::Float(0.125));
    let edit = Event::Edit {
        key: "student.lr".into(),
        old: 1e-3.into(),
        new: 0.25.into(),
        params: Default::default(),
        preset: sent.to_toml(),
    };
    app.update(stamped(Some(Phase::Distilled), 4, 75, 3.9, edit));
    assert_eq!(app.preset.as_ref(), Some(&sent));
    assert_eq!(app.hyper_value("distill.alpha"), "0.125");
}

#[test]
fn an_old_edit_record_without_its_preset_still_updates_the_copy() {
    let mut app = mid_run();
    let edit = Event::Edit {
        key: "distill.method".into(),
        old: "soft".into(),
        new: "hard".into(),
        params: Default::default(),
        preset: String::new(),
    };
    app.update(stamped(Some(Phase::Distilled), 4, 75, 3.9, edit));
    assert_eq!(app.preset.as_ref().unwrap().distill.method, Method::Hard);
}
