//! The loss and accuracy charts, and the series helpers behind them (EMA, thinning, extent).

use super::super::app::{App, PhaseSeries};
use super::super::theme;
use crate::protocol::Phase;
use crate::run::plots::padded_bounds;
use ratatui::layout::{Constraint, Rect};
use ratatui::symbols::Marker;
use ratatui::text::Line;
use ratatui::widgets::{Axis, Block, Chart, Dataset, GraphType, LegendPosition, Paragraph};
use ratatui::Frame;

/// Points drawn per series at most; longer histories are thinned evenly.
const MAX_POINTS: usize = 400;
/// EMA weight for the smoothed loss (TensorBoard-style, debiased).
const EMA_WEIGHT: f64 = 0.6;

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

fn axis_labels(b: [f64; 2], fmt: impl Fn(f64) -> String) -> Vec<Line<'static>> {
    [b[0], (b[0] + b[1]) / 2.0, b[1]]
        .into_iter()
        .map(|v| Line::from(fmt(v)))
        .collect()
}

fn marker(app: &App) -> Marker {
    if app.ascii_markers {
        Marker::Dot
    } else {
        Marker::Braille
    }
}

/// The curves' padded y bounds and largest x; `None` before there is any point.
fn extent(curves: &[(Phase, Vec<(f64, f64)>)]) -> Option<([f64; 2], f64)> {
    let points = || curves.iter().flat_map(|(_, c)| c.iter());
    Some((
        padded_bounds(points().map(|p| p.1))?,
        points().map(|p| p.0).reduce(f64::max)?,
    ))
}

/// One line per phase that has points, in the phase's colour, named for the legend.
fn phase_datasets<'a>(app: &App, curves: &'a [(Phase, Vec<(f64, f64)>)]) -> Vec<Dataset<'a>> {
    curves
        .iter()
        .filter(|(_, c)| !c.is_empty())
        .map(|(phase, c)| {
            Dataset::default()
                .name(phase.as_str())
                .marker(marker(app))
                .graph_type(GraphType::Line)
                .style(theme::phase_color(*phase))
                .data(c)
        })
        .collect()
}

/// A chart's frame with a note, before its first data.
fn waiting(frame: &mut Frame, area: Rect, block: Block, note: &str) {
    frame.render_widget(Paragraph::new(note).style(theme::dim()).block(block), area);
}

pub(super) fn render_loss_chart(app: &App, frame: &mut Frame, area: Rect) {
    let transform = |y: f64| {
        if app.log_scale {
            y.max(1e-12).log10()
        } else {
            y
        }
    };
    let curves: Vec<(Phase, Vec<(f64, f64)>)> = Phase::ALL
        .iter()
        .map(|&phase| {
            let raw = &app.series[phase.index()].loss;
            let smooth = if app.smoothing {
                ema(raw, EMA_WEIGHT)
            } else {
                raw.clone()
            };
            (
                phase,
                thin(
                    smooth.into_iter().map(|(x, y)| (x, transform(y))).collect(),
                    MAX_POINTS,
                ),
            )
        })
        .collect();
    let mut title = String::from(" training loss");
    if app.smoothing {
        title.push_str(&format!(" (EMA {EMA_WEIGHT})"));
    }
    if app.log_scale {
        title.push_str(" [log]");
    }
    title.push(' ');
    let block = Block::bordered().title(title);
    let Some((y, x_max)) = extent(&curves) else {
        return waiting(frame, area, block, "waiting for the first steps…");
    };
    // Losses are never negative: keep the padding from suggesting otherwise.
    let y = if app.log_scale {
        y
    } else {
        [y[0].max(0.0), y[1]]
    };
    let markers: Vec<[(f64, f64); 2]> = app
        .series
        .iter()
        .flat_map(|s: &PhaseSeries| s.edits.iter().map(|&x| [(x, y[0]), (x, y[1])]))
        .collect();
    let mut datasets = phase_datasets(app, &curves);
    datasets.extend(markers.iter().map(|m| {
        Dataset::default()
            .marker(marker(app))
            .graph_type(GraphType::Line)
            .style(theme::EDIT_MARKER)
            .data(m)
    }));
    let fmt_y = |v: f64| {
        if app.log_scale {
            format!("{:.3}", 10f64.powf(v))
        } else {
            format!("{v:.3}")
        }
    };
    let chart = Chart::new(datasets)
        .block(block)
        .x_axis(
            Axis::default()
                .title("step")
                .bounds([0.0, x_max.max(1.0)])
                .labels(axis_labels([0.0, x_max.max(1.0)], |v| format!("{v:.0}"))),
        )
        .y_axis(Axis::default().bounds(y).labels(axis_labels(y, fmt_y)))
        .legend_position(Some(LegendPosition::TopRight))
        .hidden_legend_constraints((Constraint::Ratio(1, 2), Constraint::Ratio(1, 2)));
    frame.render_widget(chart, area);
}

pub(super) fn render_accuracy_chart(app: &App, frame: &mut Frame, area: Rect) {
    let block = Block::bordered().title(" validation accuracy % ");
    let curves: Vec<(Phase, Vec<(f64, f64)>)> = Phase::ALL
        .iter()
        .map(|&p| (p, app.series[p.index()].val_acc.clone()))
        .collect();
    let Some((y, x_max)) = extent(&curves) else {
        return waiting(frame, area, block, "waiting for the first epoch…");
    };
    let x = [1.0, x_max.max(2.0)];
    let teacher_best = app.series[0].val_acc.iter().map(|p| p.1).reduce(f64::max);
    let reference: Vec<(f64, f64)> = teacher_best
        .map(|t| vec![(x[0], t), (x[1], t)])
        .unwrap_or_default();
    let mut datasets = phase_datasets(app, &curves);
    if !reference.is_empty() {
        datasets.push(
            Dataset::default()
                .name("teacher best")
                .marker(Marker::Dot)
                .graph_type(GraphType::Line)
                .style(theme::REFERENCE)
                .data(&reference),
        );
    }
    let y = [y[0].max(0.0), y[1].min(100.0)];
    let chart = Chart::new(datasets)
        .block(block)
        .x_axis(
            Axis::default()
                .title("epoch")
                .bounds(x)
                .labels(axis_labels(x, |v| format!("{v:.0}"))),
        )
        .y_axis(
            Axis::default()
                .bounds(y)
                .labels(axis_labels(y, |v| format!("{v:.1}"))),
        )
        .legend_position(Some(LegendPosition::BottomRight))
        .hidden_legend_constraints((Constraint::Ratio(1, 2), Constraint::Ratio(1, 2)));
    frame.render_widget(chart, area);
}
