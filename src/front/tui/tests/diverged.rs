//! After a divergence, the in-process cockpit offers to go on from the last checkpoint with the
//! diverged role's lr divided by 10.

use super::{ch, draw, finished_run, mid_run, stamped};
use crate::front::tui::app::{App, Confirm, Link, Mode};
use crate::protocol::summary::RunStatus;
use crate::protocol::{Event, LogLevel, Phase};

/// `mid_run` whose distilled phase diverged: the trainer's error, then a failed summary.
fn diverged(link: Link) -> App {
    let mut app = mid_run();
    app.link = link;
    let mut failed = finished_run().summary.unwrap();
    failed.status = RunStatus::Failed;
    app.update(stamped(
        Some(Phase::Distilled),
        4,
        75,
        4.5,
        Event::Log {
            level: LogLevel::Error,
            message: "the distilled phase diverged at epoch 4 step 75 (loss 1.2e22); checkpoints \
                      from before it are kept: lower the lr (and --resume, where one was written)"
                .into(),
        },
    ));
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
