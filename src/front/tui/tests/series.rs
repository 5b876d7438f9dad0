//! The cockpit over a series of runs (seeds, a sweep): the queue panel, the header's position,
//! and the next run starting as soon as one completes.

use super::{ch, draw, finished_run, mid_run};
use crate::front::tui::app::Msg;
use crate::series::queue::{JobState, Queue};

/// Point 1 of seed 7 runs: point 0 is done, two runs wait.
fn sweep_queue() -> Queue {
    let mut q = Queue::new(
        "sweep",
        [7, 8].into_iter().flat_map(|seed| {
            (0..2).map(move |p| {
                format!(
                    "seed {seed} · point {p}: distill.temperature = {}",
                    4 * p + 2
                )
            })
        }),
    );
    q.set(
        0,
        JobState::Done,
        "distilled 96.94% (val 97.22%) · baseline 96.10%".into(),
    );
    q.set(1, JobState::Running, String::new());
    q
}

#[test]
fn a_completed_run_with_runs_to_come_ends_its_cockpit_at_once() {
    let mut app = finished_run();
    app.queue = Some(sweep_queue());
    app.update(Msg::TrainerGone);
    assert!(app.exit, "the next run starts without a key");

    // The last run of the series stays on screen until q, like a single run.
    let mut app = finished_run();
    let mut last = sweep_queue();
    for i in 0..4 {
        last.set(i, JobState::Done, String::new());
    }
    last.set(3, JobState::Running, String::new());
    app.queue = Some(last);
    app.update(Msg::TrainerGone);
    assert!(!app.exit);
    app.update(ch('q'));
    assert!(app.exit);
}

#[test]
fn snapshot_sweep_queue_beside_the_running_point() {
    let mut app = mid_run();
    app.queue = Some(sweep_queue());
    let screen = draw(&app, 120, 36);
    let text = format!("{}", screen.backend());
    assert!(text.contains("sweep 2/4"), "{text}");
    assert!(text.contains("sweep: 1 of 4 done"), "{text}");
    insta::assert_snapshot!(screen.backend());
}
