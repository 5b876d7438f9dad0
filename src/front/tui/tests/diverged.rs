//! After a divergence, the in-process cockpit offers to go on from the last checkpoint with the
//! diverged role's lr divided by 10.

use super::{ch, draw, finished_run, mid_run, stamped};
use crate::front::tui::app::{App, Confirm, Link, Mode};
use crate::protocol::failure::{FailureKind, RunFailure};
use crate::protocol::summary::RunStatus;
use crate::protocol::{Event, Phase};

/// `mid_run` whose distilled phase diverged: a failed summary whose failure says so.
fn diverged(link: Link) -> App {
    failed(
        link,
        RunFailure {
            phase: Some(Phase::Distilled),
            kind: FailureKind::Diverged,
            message: "the distilled phase diverged".into(),
        },
    )
}

fn failed(link: Link, failure: RunFailure) -> App {
    let mut app = mid_run();
    app.link = link;
    let mut failed = finished_run().summary.unwrap();
    failed.status = RunStatus::Failed;
    failed.failure = Some(failure);
    app.update(stamped(
        None,
        4,
        75,
        4.6,
        Event::Finished {
            summary: Box::new(failed),
        },
    ));
    app
}

#[test]
fn yes_asks_for_the_lower_lr_and_leaves_the_cockpit() {
    let mut app = diverged(Link::InProcess);
    assert_eq!(app.mode, Mode::Confirm(Confirm::LowerLr));
    let screen = format!("{}", draw(&app, 120, 36).backend());
    assert!(
        screen.contains("The distilled phase diverged. Go on from the last checkpoint"),
        "{screen}"
    );
    // The student's lr is 0.003 in the fixture.
    assert!(screen.contains("student.lr = 3e-4"), "{screen}");
    assert_eq!(app.update(ch('y')), None);
    assert!(app.exit);
    let retry = app.retry.clone().unwrap();
    assert_eq!(
        (retry.key.as_str(), retry.value.as_str()),
        ("student.lr", "3e-4")
    );
}

#[test]
fn no_keeps_the_failed_run_on_screen() {
    let mut app = diverged(Link::InProcess);
    app.update(ch('n'));
    assert_eq!(app.mode, Mode::Normal);
    assert!(!app.exit && app.retry.is_none());
}

#[test]
fn an_attached_cockpit_does_not_offer_it() {
    let app = diverged(Link::Attached { pid: 7 });
    assert_eq!(app.mode, Mode::Normal);
}

#[test]
fn another_failure_does_not_offer_it_whatever_its_words() {
    // The kind decides, not the text.
    let app = failed(
        Link::InProcess,
        RunFailure {
            phase: Some(Phase::Distilled),
            kind: FailureKind::OutOfMemory,
            message: "the distilled phase diverged at epoch 4 step 75".into(),
        },
    );
    assert_eq!((app.mode, app.diverged), (Mode::Normal, None));
    let last = &app.log.back().unwrap().text;
    assert!(last.starts_with("run failed; summary in"), "{last}");
}
