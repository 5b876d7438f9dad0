//! The ranks panel of a data-parallel job: every rank's row where the screen has room, folded
//! away at 80x24 with the header naming a rank that needs attention, hidden and shown by `r`.

use super::screens::{assert_shows, screen};
use super::{ch, draw, mid_run, stamped};
use crate::front::tui::app::{App, Link};
use crate::protocol::ranks::{RankState, RankStatus};
use crate::protocol::{Event, GpuReading, Phase};

fn rank(rank: usize, state: RankState, share: f64, silent_s: f64) -> RankStatus {
    RankStatus {
        rank,
        host: "gpu-box".into(),
        phase: Some(Phase::Distilled),
        epoch: 3,
        step: 1520 - rank,
        samples_per_sec: 5432.0 - 100.0 * rank as f64,
        allreduce_share: share,
        state,
        waiting_s: 0.0,
        gpu: Some(GpuReading {
            cuda: rank,
            util_percent: 71,
            memory_used_bytes: 12 << 30,
            memory_total_bytes: 140 << 30,
        }),
        silent_s,
    }
}

fn with_ranks(ranks: Vec<RankStatus>, wall_time: f64) -> App {
    let mut app = mid_run();
    app.link = Link::Attached { pid: 42 };
    app.world_size = ranks.len();
    let event = Event::Ranks { ranks };
    app.update(stamped(Some(Phase::Distilled), 3, 1520, wall_time, event));
    app
}

#[test]
fn every_rank_has_a_row_and_r_hides_them() {
    let healthy = vec![
        rank(0, RankState::Training, 0.31, 0.0),
        rank(1, RankState::Training, 0.28, 0.4),
    ];
    let mut app = with_ranks(healthy, 4.0);
    let (_, text) = screen(&app, 120, 40);
    assert_shows(
        &text,
        &[
            "ranks: 2", "training", "1520", "1519", "5432", "31%", "71% 12G",
        ],
    );
    insta::assert_snapshot!(draw(&app, 120, 40).backend());
    app.update(ch('r'));
    let (_, text) = screen(&app, 120, 40);
    assert!(!text.contains("ranks: 2"), "{text}");
    app.update(ch('r'));
    assert_shows(&screen(&app, 120, 40).1, &["ranks: 2"]);
    // At 80x24 the panel folds away; nothing needs attention, so the header says nothing more.
    let (_, small) = screen(&app, 80, 24);
    assert!(
        !small.contains("ranks: 2") && !small.contains("rank 1"),
        "{small}"
    );
}

#[test]
fn a_silent_rank_is_named_in_the_header_and_the_log_at_every_size() {
    let mut app = with_ranks(
        vec![
            rank(0, RankState::Training, 0.3, 0.0),
            rank(1, RankState::Training, 0.3, 0.5),
        ],
        4.0,
    );
    let mut waiting = rank(0, RankState::Waiting, 0.97, 0.0);
    waiting.waiting_s = 6.2;
    let gone = Event::Ranks {
        ranks: vec![waiting, rank(1, RankState::Training, 0.3, 6.5)],
    };
    app.update(stamped(Some(Phase::Distilled), 3, 1520, 10.0, gone));
    let (_, text) = screen(&app, 120, 40);
    assert_shows(
        &text,
        &[
            "rank 1 silent 6s",
            "waiting 6s",
            "has sent no heartbeat for 6 s",
        ],
    );
    for (width, height) in [(80, 24), (70, 20)] {
        let (_, small) = screen(&app, width, height);
        assert_shows(&small, &["rank 1 silent 6s"]);
    }
    // The end of the run clears the figures of the moment.
    assert!(
        app.log
            .iter()
            .filter(|l| l.text.contains("no heartbeat"))
            .count()
            == 1
    );
}

#[test]
fn the_rank_the_others_wait_for_is_marked_behind() {
    let app = with_ranks(
        vec![
            rank(0, RankState::Waiting, 0.82, 0.0),
            rank(1, RankState::Training, 0.04, 0.2),
        ],
        4.0,
    );
    assert_shows(&screen(&app, 80, 24).1, &["rank 1 behind"]);
}
