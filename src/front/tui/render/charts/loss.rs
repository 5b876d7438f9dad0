//! The training-loss chart: every phase's cross-entropy with the labels end to end (the one
//! loss all three phases share, so they read on one scale), or the current phase's parts.

use super::super::super::app::{App, PhaseSeries};
use super::super::super::theme;
use super::axes::{count_labels, decades, linear, padded, y_label_room};
use super::{datasets, ema, extent, legend, line, marker, thin, waiting, Curve};
use crate::protocol::Phase;
use ratatui::layout::Rect;
use ratatui::text::Span;
use ratatui::widgets::{Axis, Block, Chart};
use ratatui::Frame;

/// Points drawn per series at most; longer histories are thinned evenly.
const MAX_POINTS: usize = 400;
/// EMA weight for the smoothed loss (TensorBoard-style, debiased).
const EMA_WEIGHT: f64 = 0.6;
/// The loss part every phase without a teacher has, and most methods report beside theirs.
const CROSS_ENTROPY: &str = "ce";

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

/// A phase's cross-entropy, named for the phase; where its loss has no `ce` part (`hard`, a
/// run recorded without parts), its total loss, named as such.
fn cross_entropy(phase: Phase, series: &PhaseSeries) -> (String, &[(f64, f64)]) {
    match series.parts.get(CROSS_ENTROPY) {
        Some(ce) if !ce.is_empty() => (phase.as_str().into(), ce),
        _ => (format!("{} loss", phase.as_str()), &series.loss),
    }
}

/// The loss chart's curves (before smoothing), its edit-marker steps and its x axis's unit.
///
/// Default: the three phases' cross-entropy end to end on one step axis (a distilled total is
/// T²-scaled and would flatten the others). Parts: the current phase's parts on its own steps;
/// for the distilled student also the baseline's cross-entropy, so its `ce` part can be
/// compared with the same quantity trained without a teacher.
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
            if let Some(ce) = app.series[Phase::Baseline.index()].parts.get(CROSS_ENTROPY) {
                curves.push(Curve {
                    name: "baseline ce".into(),
                    color: theme::phase_color(Phase::Baseline),
                    points: ce.clone(),
                });
            }
        }
        return (
            curves,
            series.edits.iter().map(|e| e.step as f64).collect(),
            format!("{} step", phase.as_str()),
        );
    }
    let offsets = phase_offsets(&app.series);
    let curves = Phase::ALL
        .iter()
        .map(|&phase| {
            let by = offsets[phase.index()];
            let (name, points) = cross_entropy(phase, &app.series[phase.index()]);
            Curve {
                name,
                color: theme::phase_color(phase),
                points: points.iter().map(|&(x, y)| (x + by, y)).collect(),
            }
        })
        .collect();
    let edits = Phase::ALL
        .iter()
        .flat_map(|&p| {
            let by = offsets[p.index()];
            (app.series[p.index()].edits.iter()).map(move |e| e.step as f64 + by)
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

fn title(app: &App, x_unit: &str) -> String {
    let what = if app.parts_view {
        "loss parts"
    } else {
        "cross-entropy"
    };
    let mut title = format!(" {what} by {x_unit}");
    if app.smoothing {
        title.push_str(" (EMA)");
    }
    if app.log_scale {
        title.push_str(" [log]");
    }
    if app.zoom {
        title.push_str(" [zoom]");
    }
    title.push(' ');
    title
}

pub fn render_loss_chart(app: &App, frame: &mut Frame, area: Rect) {
    let (raw, edits, x_unit) = loss_curves(app);
    let from = zoom_start(app, &raw);
    let curves: Vec<Curve> = raw
        .into_iter()
        .map(|c| Curve {
            points: shown(app, &c.points, from),
            ..c
        })
        .collect();
    let block = Block::bordered().title(title(app, &x_unit));
    let Some(([lo, hi], x)) = extent(&curves) else {
        return waiting(frame, area, block, "waiting for the first steps…");
    };
    let room = y_label_room(area);
    let y = if app.log_scale {
        decades([lo, hi], room)
    } else {
        // Losses are never negative: keep the padding from suggesting otherwise.
        let [lo, hi] = padded(lo, hi, 0.1 * hi.abs().max(1e-3));
        linear([lo.max(0.0), hi], room)
    };
    let x = [x[0].min(0.0).max(from), x[1].max(1.0)];
    let markers: Vec<[(f64, f64); 2]> = edits
        .into_iter()
        .filter(|&e| e >= x[0])
        .map(|e| [(e, y.bounds[0]), (e, y.bounds[1])])
        .collect();
    // Edit markers first, so that the curves are drawn over them.
    let mut lines: Vec<_> = markers
        .iter()
        .map(|m| line(marker(app), theme::EDIT_MARKER, m))
        .collect();
    lines.extend(datasets(app, &curves));
    let edit_entry = (!markers.is_empty())
        .then(|| Span::styled(" │ edit", theme::EDIT_MARKER))
        .into_iter()
        .collect();
    let chart = Chart::new(lines)
        .block(block.title_bottom(legend(&curves, edit_entry, area.width)))
        .x_axis(Axis::default().bounds(x).labels(count_labels(x)))
        .y_axis(Axis::default().bounds(y.bounds).labels(y.lines()));
    frame.render_widget(chart, area);
}
