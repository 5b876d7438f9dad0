//! The ranks panel of a data-parallel job: each rank's step, samples/s, share of time waiting
//! in the all-reduce, state and GPU. Where the screen is small it folds away, and the header
//! names a rank that is silent or holding the others back.

use super::super::app::App;
use super::super::theme;
use crate::protocol::ranks::{RankState, RankStatus};
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::Span;
use ratatui::widgets::{Block, Row, Table};
use ratatui::Frame;

/// Whether the panel is drawn: a job of several ranks, the user has not hidden it (`r`), and the
/// screen is not compact.
pub(super) fn shown(app: &App, compact: bool) -> bool {
    !app.ranks.is_empty() && app.ranks_panel && !compact
}

/// Lines the panel takes in `area`: a row per rank, the column titles and borders, at most a
/// third of the area.
pub(super) fn height(app: &App, area: Rect) -> u16 {
    (app.ranks.len() as u16 + 3).min((area.height / 3).max(4))
}

/// What the header says of the ranks when one needs attention: `rank 1 silent 8s`,
/// `rank 2 behind`.
pub(super) fn warning(app: &App) -> Option<Span<'static>> {
    let silent = app.ranks.iter().find(|r| r.is_silent());
    let behind = || app.ranks.iter().find(|r| r.is_behind(&app.ranks));
    let text = match (silent, behind()) {
        (Some(r), _) => format!(" · rank {} {}", r.rank, r.state_text()),
        (None, Some(r)) => format!(" · rank {} behind", r.rank),
        (None, None) => return None,
    };
    Some(Span::styled(text, theme::error()))
}

fn state_style(rank: &RankStatus, all: &[RankStatus]) -> Style {
    if rank.is_silent() || rank.is_behind(all) {
        return theme::error();
    }
    match rank.state {
        RankState::Training => theme::running(),
        RankState::Waiting | RankState::Paused => theme::paused(),
        RankState::Starting => theme::dim(),
    }
}

pub(super) fn render_ranks(app: &App, frame: &mut Frame, area: Rect) {
    let with_gpu = app.ranks.iter().any(|r| r.gpu.is_some());
    let mut titles = vec!["#", "state", "step", "ex/s", "wait"];
    if with_gpu {
        titles.push("gpu");
    }
    let rows = app.ranks.iter().map(|r| {
        let mut cells = vec![
            Span::raw(r.rank.to_string()),
            Span::styled(r.state_text(), state_style(r, &app.ranks)),
            Span::raw(r.step.to_string()),
            Span::raw(format!("{:.0}", r.samples_per_sec)),
            Span::raw(format!("{:.0}%", r.allreduce_share * 100.0)),
        ];
        if with_gpu {
            // Utilisation and memory held, in GiB: the panel is narrow, the header has the rest.
            cells.push(Span::raw(r.gpu.as_ref().map_or(String::new(), |g| {
                let gib = g.memory_used_bytes as f64 / f64::from(1u32 << 30);
                format!("{}% {gib:.0}G", g.util_percent)
            })));
        }
        Row::new(cells)
    });
    let mut widths = vec![
        Constraint::Length(2),
        Constraint::Length(11),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(4),
    ];
    if with_gpu {
        widths.push(Constraint::Min(8));
    }
    let hosts = {
        let mut hosts: Vec<&str> = app.ranks.iter().map(|r| r.host.as_str()).collect();
        hosts.sort_unstable();
        hosts.dedup();
        hosts.retain(|h| !h.is_empty());
        hosts.len()
    };
    let title = match hosts {
        0 | 1 => format!(" ranks: {} ", app.ranks.len()),
        n => format!(" ranks: {} on {n} hosts ", app.ranks.len()),
    };
    let table = Table::new(rows, widths)
        .header(Row::new(titles).style(theme::dim()))
        .column_spacing(1)
        .block(Block::bordered().title(title));
    frame.render_widget(table, area);
}
