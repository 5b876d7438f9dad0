//! The loss and accuracy charts, and the series helpers behind them (EMA, thinning, extent).
//!
//! Neither chart draws inside its plot anything but data: the legend is a line in the bottom
//! border, the x axis's unit is in the title, and reference lines are drawn first, under the
//! curves.

mod accuracy;
mod axes;
mod loss;

pub use accuracy::render_accuracy_chart;
pub use loss::{loss_curves, phase_offsets, render_loss_chart, zoom_start};

use super::super::app::App;
use super::super::theme;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Dataset, GraphType, Paragraph};
use ratatui::Frame;

/// TensorBoard's debiased exponential moving average.
pub fn ema(points: &[(f64, f64)], weight: f64) -> Vec<(f64, f64)> {
    let mut last = 0.0;
    points
        .iter()
        .enumerate()
        .map(|(i, &(x, y))| {
            last = last * weight + (1.0 - weight) * y;
            (x, last / (1.0 - weight.powi(i as i32 + 1)))
        })
        .collect()
}

/// Keeps at most `max` points, evenly spaced, always including the last.
pub fn thin(points: Vec<(f64, f64)>, max: usize) -> Vec<(f64, f64)> {
    if points.len() <= max {
        return points;
    }
    let stride = points.len().div_ceil(max);
    let last = *points.last().expect("non-empty");
    let mut out: Vec<_> = points.into_iter().step_by(stride).collect();
    if out.last() != Some(&last) {
        out.push(last);
    }
    out
}

fn marker(app: &App) -> Marker {
    if app.ascii_markers {
        Marker::Dot
    } else {
        Marker::Braille
    }
}

/// One line of a chart: its legend name, colour and points.
pub struct Curve {
    pub name: String,
    pub color: Color,
    pub points: Vec<(f64, f64)>,
}

/// The curves' y range and x range; `None` before there is any point.
fn extent(curves: &[Curve]) -> Option<([f64; 2], [f64; 2])> {
    let points = || curves.iter().flat_map(|c| c.points.iter());
    let range = |values: &mut dyn Iterator<Item = f64>| {
        let first = values.next()?;
        Some(values.fold([first, first], |[lo, hi], v| [lo.min(v), hi.max(v)]))
    };
    Some((
        range(&mut points().map(|p| p.1).filter(|y| y.is_finite()))?,
        range(&mut points().map(|p| p.0))?,
    ))
}

/// A line per curve that has points.
fn datasets<'a>(app: &App, curves: &'a [Curve]) -> Vec<Dataset<'a>> {
    curves
        .iter()
        .filter(|c| !c.points.is_empty())
        .map(|c| line(marker(app), c.color, &c.points))
        .collect()
}

fn line(marker: Marker, color: Color, points: &[(f64, f64)]) -> Dataset<'_> {
    Dataset::default()
        .marker(marker)
        .graph_type(GraphType::Line)
        .style(color)
        .data(points)
}

/// The legend as one line for the chart's bottom border of `width`: the curves that have
/// points, then `extra` entries (reference lines, markers), as many as fit.
fn legend(curves: &[Curve], extra: Vec<Span<'static>>, width: u16) -> Line<'static> {
    let entries = curves
        .iter()
        .filter(|c| !c.points.is_empty())
        .map(|c| Span::styled(format!(" {}", c.name), Style::new().fg(c.color)))
        .chain(extra);
    // The corners and a space after the last entry.
    let mut room = usize::from(width.saturating_sub(3));
    let mut spans = Vec::new();
    for entry in entries {
        if entry.width() > room {
            break;
        }
        room -= entry.width();
        spans.push(entry);
    }
    spans.push(Span::raw(" "));
    Line::from(spans)
}

/// A chart's frame with a note, before its first data.
fn waiting(frame: &mut Frame, area: Rect, block: Block, note: &str) {
    frame.render_widget(Paragraph::new(note).style(theme::dim()).block(block), area);
}
