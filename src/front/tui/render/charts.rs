//! The loss and accuracy charts, and the series helpers behind them (EMA, thinning, extent).

use super::super::app::{App, PhaseSeries};
use super::super::theme;
use crate::protocol::Phase;
use crate::run::plots::padded_bounds;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Color;
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

/// One line of a chart: its legend name, colour and points.
pub struct Curve {
    pub name: String,
    pub color: Color,
    pub points: Vec<(f64, f64)>,
}

/// The curves' padded y bounds and x range; `None` before there is any point.
fn extent(curves: &[Curve]) -> Option<([f64; 2], [f64; 2])> {
    let points = || curves.iter().flat_map(|c| c.points.iter());
    Some((
        padded_bounds(points().map(|p| p.1))?,
        [
            points().map(|p| p.0).reduce(f64::min)?,
            points().map(|p| p.0).reduce(f64::max)?,
        ],
    ))
}

/// A line per curve that has points, named for the legend.
fn datasets<'a>(app: &App, curves: &'a [Curve]) -> Vec<Dataset<'a>> {
    curves
        .iter()
        .filter(|c| !c.points.is_empty())
        .map(|c| {
            Dataset::default()
                .name(c.name.clone())
                .marker(marker(app))
                .graph_type(GraphType::Line)
                .style(c.color)
                .data(&c.points)
        })
        .collect()
}

/// A chart's frame with a note, before its first data.
fn waiting(frame: &mut Frame, area: Rect, block: Block, note: &str) {
    frame.render_widget(Paragraph::new(note).style(theme::dim()).block(block), area);
}

/// Where each phase's steps start when the phases are laid end to end: after the last step of
/// the phases before it.
pub fn phase_offsets(series: &[PhaseSeries; 3]) -> [f64; 3] {
    let mut offsets = [0.0; 3];
    for i in 1..3 {
        let last = series[i - 1].loss.last().map_or(0.0, |p| p.0);
        offsets[i] = offsets[i - 1] + last;
    }
    offsets
}

/// The phase whose parts the parts view shows: the one training, else the latest with data.
fn parts_phase(app: &App) -> Option<Phase> {
    app.progress.phase.or_else(|| {
        Phase::ALL
            .into_iter()
            .rev()
            .find(|p| !app.series[p.index()].parts.is_empty())
    })
}

/// The loss chart's curves (before smoothing), its edit-marker steps and its x-axis title.
///
/// Totals: the three phases end to end on one step axis. Parts: the current phase's parts on
/// its own steps; for the distilled student also the baseline's cross-entropy, so its `ce`
/// part can be compared with the same quantity trained without a teacher.
pub fn loss_curves(app: &App) -> (Vec<Curve>, Vec<f64>, String) {
    if app.parts_view {
        let Some(phase) = parts_phase(app) else {
            return (Vec::new(), Vec::new(), "step".into());
        };
        let series = &app.series[phase.index()];
        let mut curves: Vec<Curve> = series
            .parts
            .iter()
            .zip(theme::PART_COLORS.iter().cycle())
            .map(|((name, points), &color)| Curve {
                name: name.clone(),
                color,
                points: points.clone(),
            })
            .collect();
        if phase == Phase::Distilled {
            if let Some(ce) = app.series[Phase::Baseline.index()].parts.get("ce") {
                curves.push(Curve {
                    name: "baseline ce".into(),
                    color: theme::phase_color(Phase::Baseline),
                    points: ce.clone(),
                });
            }
        }
        return (
            curves,
            series.edits.clone(),
            format!("{} step", phase.as_str()),
        );
    }
    let offsets = phase_offsets(&app.series);
    let shift = |points: &[(f64, f64)], by: f64| points.iter().map(|&(x, y)| (x + by, y)).collect();
    let curves = Phase::ALL
        .iter()
        .map(|&phase| Curve {
            name: phase.as_str().into(),
            color: theme::phase_color(phase),
            points: shift(&app.series[phase.index()].loss, offsets[phase.index()]),
        })
        .collect();
    let edits = Phase::ALL
        .iter()
        .flat_map(|&p| {
            let by = offsets[p.index()];
            app.series[p.index()].edits.iter().map(move |x| x + by)
        })
        .collect();
    (curves, edits, "step".into())
}

/// Smoothing, log scale, zoom and thinning, applied to a curve's raw points.
fn shown(app: &App, points: &[(f64, f64)], from: f64) -> Vec<(f64, f64)> {
    let smooth = if app.smoothing {
        ema(points, EMA_WEIGHT)
    } else {
        points.to_vec()
    };
    let transform = |y: f64| {
        if app.log_scale {
            y.max(1e-12).log10()
        } else {
            y
        }
    };
    thin(
        smooth
            .into_iter()
            .filter(|p| p.0 >= from)
            .map(|(x, y)| (x, transform(y)))
            .collect(),
        MAX_POINTS,
    )
}

/// With zoom on: the first step shown, the most recent fifth of the steps (at least 20).
pub fn zoom_start(app: &App, curves: &[Curve]) -> f64 {
    let xs = || curves.iter().flat_map(|c| c.points.iter().map(|p| p.0));
    match (app.zoom, xs().reduce(f64::min), xs().reduce(f64::max)) {
        (true, Some(lo), Some(hi)) => (hi - ((hi - lo) / 5.0).max(20.0)).max(lo),
        _ => f64::NEG_INFINITY,
    }
}

pub(super) fn render_loss_chart(app: &App, frame: &mut Frame, area: Rect) {
    let (raw, edits, x_title) = loss_curves(app);
    let from = zoom_start(app, &raw);
    let curves: Vec<Curve> = raw
        .into_iter()
        .map(|c| Curve {
            points: shown(app, &c.points, from),
            ..c
        })
        .collect();
    let mut title = match (app.parts_view, parts_phase(app)) {
        (true, Some(phase)) => format!(" loss parts: {}", phase.as_str()),
        _ => " training loss".to_string(),
    };
    if app.smoothing {
        title.push_str(&format!(" (EMA {EMA_WEIGHT})"));
    }
    if app.log_scale {
        title.push_str(" [log]");
    }
    if app.zoom {
        title.push_str(" [zoom]");
    }
    title.push(' ');
    let block = Block::bordered().title(title);
    let Some((y, x)) = extent(&curves) else {
        return waiting(frame, area, block, "waiting for the first steps…");
    };
    // Losses are never negative: keep the padding from suggesting otherwise.
    let y = if app.log_scale {
        y
    } else {
        [y[0].max(0.0), y[1]]
    };
    let x = [x[0].min(0.0).max(from), x[1].max(1.0)];
    let markers: Vec<[(f64, f64); 2]> = edits
        .into_iter()
        .filter(|&e| e >= x[0])
        .map(|e| [(e, y[0]), (e, y[1])])
        .collect();
    let mut datasets = datasets(app, &curves);
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
                .title(x_title)
                .bounds(x)
                .labels(axis_labels(x, |v| format!("{v:.0}"))),
        )
        .y_axis(Axis::default().bounds(y).labels(axis_labels(y, fmt_y)))
        .legend_position(Some(LegendPosition::TopRight))
        .hidden_legend_constraints((Constraint::Ratio(1, 2), Constraint::Ratio(1, 2)));
    frame.render_widget(chart, area);
}

pub(super) fn render_accuracy_chart(app: &App, frame: &mut Frame, area: Rect) {
    let block = Block::bordered().title(" validation accuracy % ");
    let curves: Vec<Curve> = Phase::ALL
        .iter()
        .map(|&p| Curve {
            name: p.as_str().into(),
            color: theme::phase_color(p),
            points: app.series[p.index()].val_acc.clone(),
        })
        .collect();
    let Some((y, [_, x_max])) = extent(&curves) else {
        return waiting(frame, area, block, "waiting for the first epoch…");
    };
    let x = [1.0, x_max.max(2.0)];
    let teacher_best = app.series[0].val_acc.iter().map(|p| p.1).reduce(f64::max);
    let reference: Vec<(f64, f64)> = teacher_best
        .map(|t| vec![(x[0], t), (x[1], t)])
        .unwrap_or_default();
    let mut datasets = datasets(app, &curves);
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
