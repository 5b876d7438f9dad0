//! An attached cockpit: `q` and signals detach, `X` stops the job after a yes, a read-only
//! cockpit sends nothing, and the end of the job's stream leaves the screen as it was.

use super::{ch, draw, mid_run};
use crate::front::tui::app::{Confirm, Link, Mode, Msg};
use crate::protocol::Command;

#[test]
fn q_and_signals_detach_without_a_command() {
    for msg in [ch('q'), Msg::Signal(1), Msg::Signal(2)] {
        let mut app = mid_run();
        app.link = Link::Attached { pid: 42 };
        assert_eq!(app.update(msg.clone()), None, "{msg:?}");
        assert!(app.exit, "{msg:?}");
        assert!(!app.stopping, "{msg:?}");
    }
}

#[test]
fn shift_x_asks_then_stops_the_job() {
    let mut app = mid_run();
    app.link = Link::Attached { pid: 42 };
    assert_eq!(app.update(ch('X')), None);
    assert_eq!(app.mode, Mode::Confirm(Confirm::StopJob));
    assert!(matches!(app.update(ch('y')), Some(Command::Stop { .. })));
    app.update(Msg::TrainerGone);
    assert!(app.exit, "leaves once the job has stopped");
    // In process, X means nothing.
    let mut app = mid_run();
    app.update(ch('X'));
    assert_eq!(app.mode, Mode::Normal);
}

#[test]
fn the_end_of_the_stream_keeps_the_screen_and_says_the_job_died() {
    let mut app = mid_run();
    app.link = Link::Attached { pid: 42 };
    app.update(Msg::TrainerGone);
    assert!(!app.exit);
    assert!(app.log.back().unwrap().text.contains("the job died"));
}

#[test]
fn a_read_only_cockpit_sends_nothing_and_says_why() {
    let mut app = mid_run();
    app.link = Link::ReadOnly {
        reason: "the run is dead, no job serves it".into(),
    };
    assert_eq!(app.update(ch(' ')), None);
    assert_eq!(app.update(ch('c')), None);
    assert!(app
        .log
        .back()
        .unwrap()
        .text
        .starts_with("read-only: the run is dead"));
    let text = format!("{}", draw(&app, 120, 36).backend());
    assert!(text.contains("read-only: the run is dead"), "{text}");
}
