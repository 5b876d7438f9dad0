//! The series panel: every run of a sweep or of repeated seeds, done, running or pending.

use super::super::theme;
use crate::series::queue::{JobState, Queue};
use ratatui::layout::Rect;
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, List, ListState};
use ratatui::Frame;

/// Lines the panel takes: its rows, their results and borders, at most a third of `area` (it
/// scrolls).
pub(super) fn height(queue: &Queue, area: Rect) -> u16 {
    let results = queue.rows.iter().filter(|r| !r.result.is_empty()).count();
    ((queue.rows.len() + results) as u16 + 2).min((area.height / 3).max(3))
}

fn mark(state: JobState) -> Span<'static> {
    match state {
        JobState::Done => Span::styled("✓ ", theme::running()),
        JobState::Running => Span::styled("▶ ", theme::title()),
        JobState::Pending => Span::styled("· ", theme::dim()),
        JobState::Stopped => Span::styled("■ ", theme::paused()),
        JobState::Failed => Span::styled("✗ ", theme::error()),
    }
}

pub(super) fn render_queue(queue: &Queue, frame: &mut Frame, area: Rect) {
    let items: Vec<Text> = queue
        .rows
        .iter()
        .map(|row| {
            let line = Line::from(vec![mark(row.state), Span::raw(row.label.clone())]);
            let mut text = Text::from(if row.state == JobState::Running {
                line.style(theme::selected())
            } else {
                line
            });
            if !row.result.is_empty() {
                text.push_line(Line::styled(format!("  {}", row.result), theme::dim()));
            }
            text
        })
        .collect();
    let title = format!(
        " {}: {} of {} done ",
        queue.title,
        queue.done(),
        queue.rows.len()
    );
    // Scrolled so that the running run shows.
    let mut state = ListState::default().with_selected(queue.running());
    frame.render_stateful_widget(
        List::new(items).block(Block::bordered().title(title)),
        area,
        &mut state,
    );
}
