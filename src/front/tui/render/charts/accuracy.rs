//! The validation-accuracy chart, with the teacher's best as a reference line.

use super::super::super::app::App;
use super::super::super::theme;
use super::axes::{count_labels, linear, padded, y_label_room};
use super::{datasets, extent, legend, line, waiting, Curve};
use crate::protocol::Phase;
use ratatui::layout::Rect;
use ratatui::symbols::Marker;
use ratatui::text::Span;
use ratatui::widgets::{Axis, Block, Chart};
use ratatui::Frame;

/// The y axis spans at least this many percentage points, so one epoch's value reads clearly.
const MIN_SPAN_PP: f64 = 1.0;

pub fn render_accuracy_chart(app: &App, frame: &mut Frame, area: Rect) {
    let block = Block::bordered().title(" validation accuracy % by epoch ");
    let curves: Vec<Curve> = Phase::ALL
        .iter()
        .map(|&p| Curve {
            name: p.as_str().into(),
            color: theme::phase_color(p),
            points: app.series[p.index()].val_acc.clone(),
        })
        .collect();
    let Some(([lo, hi], [_, x_max])) = extent(&curves) else {
        return waiting(frame, area, block, "waiting for the first epoch…");
    };
    let x = [1.0, x_max.max(2.0)];
    let [lo, hi] = padded(lo, hi, MIN_SPAN_PP);
    // 0 and 100 are ticks at every round step: clamping keeps the bounds on ticks.
    let (lo, hi) = (lo.max(0.0), hi.min(100.0));
    let y = linear([lo, hi], y_label_room(area));
    let teacher_best = app.series[Phase::Teacher.index()]
        .val_acc
        .iter()
        .map(|p| p.1)
        .reduce(f64::max);
    let reference: Vec<(f64, f64)> = teacher_best
        .map(|t| vec![(x[0], t), (x[1], t)])
        .unwrap_or_default();
    // The reference first, so that the curves ending near it are drawn over it.
    let mut lines = vec![line(Marker::Dot, theme::REFERENCE, &reference)];
    lines.extend(datasets(app, &curves));
    let reference_entry = teacher_best
        .map(|_| Span::styled(" ··· best", theme::REFERENCE))
        .into_iter()
        .collect();
    let chart = Chart::new(lines)
        .block(block.title_bottom(legend(&curves, reference_entry, area.width)))
        .x_axis(Axis::default().bounds(x).labels(count_labels(x)))
        .y_axis(Axis::default().bounds(y.bounds).labels(y.lines()));
    frame.render_widget(chart, area);
}
