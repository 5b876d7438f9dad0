//! Pure rendering: `render(&App, frame)` and one function per panel. Nothing here changes state.

use super::app::{App, Confirm, Hyper, Mode, PhaseSeries};
use super::theme;
use crate::protocol::Phase;
use crate::run::plots::padded_bounds;
use crate::run::summary::{human_bytes, RunStatus};
use ratatui::layout::{Alignment, Constraint, Flex, Layout, Rect};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Axis, Block, Chart, Clear, Dataset, GraphType, LegendPosition, LineGauge, Paragraph, Row,
    Table, Wrap,
};
use ratatui::Frame;

/// Points drawn per series at most; longer histories are thinned evenly.
const MAX_POINTS: usize = 400;
/// EMA weight for the smoothed loss (TensorBoard-style, debiased).
const EMA_WEIGHT: f64 = 0.6;

/// Below this size the event log folds into the footer.
fn is_compact(area: Rect) -> bool {
    area.height < 32 || area.width < 110
}

pub fn render(app: &App, frame: &mut Frame) {
    let area = frame.area();
    let compact = is_compact(area);
    let footer_height = if compact { 2 } else { 1 };
    let [header, body, footer] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Min(0),
        Constraint::Length(footer_height),
    ])
    .areas(area);
    render_header(app, frame, header);
    let (top, log_area) = if compact {
        (body, None)
    } else {
        let [top, log] =
            Layout::vertical([Constraint::Percentage(70), Constraint::Min(5)]).areas(body);
        (top, Some(log))
    };
    let left_width = if compact {
        Constraint::Length(36)
    } else {
        Constraint::Percentage(38)
    };
    let [left, right] = Layout::horizontal([left_width, Constraint::Min(0)]).areas(top);
    let [hyper, models] = Layout::vertical([
        Constraint::Length(Hyper::ALL.len() as u16 + 2),
        Constraint::Min(0),
    ])
    .areas(left);
    let [loss, acc] =
        Layout::vertical([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(right);
    render_hyperparameters(app, frame, hyper);
    render_models(app, frame, models);
    render_loss_chart(app, frame, loss);
    render_accuracy_chart(app, frame, acc);
    if let Some(log) = log_area {
        render_log(app, frame, log);
    }
    render_footer(app, frame, footer, compact);
    match &app.mode {
        Mode::Help => render_help(frame, area),
        Mode::Confirm(action) => render_confirm(app, *action, frame, area),
        _ => {}
    }
}

pub fn format_duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

fn status(app: &App) -> Span<'static> {
    if let Some(summary) = &app.summary {
        return match summary.status {
            RunStatus::Completed => Span::styled("✓ completed", theme::running()),
            RunStatus::Interrupted => Span::styled("■ interrupted", theme::paused()),
            RunStatus::Failed => Span::styled("✗ failed", theme::error()),
        };
    }
    if app.stopping {
        return Span::styled("stopping…", theme::paused());
    }
    match app.progress.phase {
        Some(phase) if app.is_paused(phase.role()) => Span::styled("⏸ paused", theme::paused()),
        Some(_) => Span::styled("▶ running", theme::running()),
        None => Span::styled("starting", theme::dim()),
    }
}

fn render_header(app: &App, frame: &mut Frame, area: Rect) {
    let p = &app.progress;
    let phase = match p.phase {
        Some(phase) => Span::styled(phase.as_str(), theme::title().fg(theme::phase_color(phase))),
        None if app.summary.is_some() => Span::raw("run"),
        None if app.trainer_gone => Span::styled("trainer stopped", theme::error()),
        None => Span::raw("-"),
    };
    let eta = p.eta_seconds().map_or("-".into(), format_duration);
    let mut spans = vec![
        Span::styled(" kd-tui ", theme::title()),
        Span::raw(format!("{} · ", app.name)),
        phase,
        Span::raw(" "),
        status(app),
    ];
    // Most important first; whatever does not fit the width is left out.
    let optional = match &app.summary {
        Some(summary) => vec![
            format!(" · run took {}", format_duration(summary.wall_seconds)),
            format!(" · {}", app.device),
        ],
        None => vec![
            format!(" · epoch {}/{}", p.epoch, p.epochs),
            format!(" · step {}", p.step),
            format!(" · {:.0} samples/s", p.samples_per_sec),
            format!(" · elapsed {}", format_duration(app.elapsed.as_secs_f64())),
            format!(" · ETA {eta}"),
            format!(" · {}", app.device),
        ],
    };
    let mut used: usize = spans.iter().map(|s| s.width()).sum();
    for segment in optional {
        let width = Span::raw(&segment).width();
        if used + width > area.width as usize {
            break;
        }
        used += width;
        spans.push(Span::raw(segment));
    }
    let line = Line::from(spans);
    let [text, gauges] =
        Layout::vertical([Constraint::Length(1), Constraint::Length(1)]).areas(area);
    frame.render_widget(Paragraph::new(line), text);
    let [epoch_gauge, phase_gauge] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(gauges);
    let gauge = |label: String, ratio: f64| {
        LineGauge::default()
            .filled_style(theme::gauge())
            .unfilled_style(theme::dim())
            .label(label)
            .ratio(ratio)
    };
    frame.render_widget(
        gauge(
            format!(" epoch {:>3.0}%", 100.0 * p.epoch_ratio()),
            p.epoch_ratio(),
        ),
        epoch_gauge,
    );
    frame.render_widget(
        gauge(
            format!(" phase {:>3.0}%", 100.0 * p.phase_ratio()),
            p.phase_ratio(),
        ),
        phase_gauge,
    );
}

fn render_hyperparameters(app: &App, frame: &mut Frame, area: Rect) {
    let role = app.active_role();
    let rows: Vec<Line> = Hyper::ALL
        .iter()
        .enumerate()
        .map(|(i, &hyper)| {
            let selected = i == app.selected;
            let value = match (&app.mode, selected) {
                (Mode::Editing { buffer, .. }, true) => {
                    Span::styled(format!("{buffer}▏"), theme::editing())
                }
                _ => {
                    let mut v = app.hyper_value(hyper);
                    if let (Hyper::Epochs, Some(_), Ok(epochs)) =
                        (hyper, app.progress.phase, v.parse::<usize>())
                    {
                        v.push_str(&format!(
                            " ({} left)",
                            epochs.saturating_sub(app.progress.epoch)
                        ));
                    }
                    Span::raw(v)
                }
            };
            let line = Line::from(vec![Span::raw(format!(" {:<12}", hyper.label())), value]);
            if selected {
                line.style(theme::selected())
            } else {
                line
            }
        })
        .collect();
    let title = format!(" hyperparameters ({}) ", role.table());
    frame.render_widget(
        Paragraph::new(rows).block(Block::bordered().title(title)),
        area,
    );
}

fn ratio_text(a: f64, b: f64) -> String {
    if b > 0.0 && a.is_finite() && b.is_finite() {
        format!("{:.1}x", a / b)
    } else {
        "-".into()
    }
}

/// The panel's title names both networks' kind and shape, e.g. `cnn 32-64/1024 → mlp 800-800`.
fn models_title(app: &App) -> String {
    match &app.preset {
        Some(p) => format!(" models: {} → {} ", p.teacher.model, p.student.model),
        None => " models ".into(),
    }
}

fn render_models(app: &App, frame: &mut Frame, area: Rect) {
    let result = |phase: Phase| app.series[phase.index()].result.as_ref();
    let (teacher, baseline, distilled) = (
        result(Phase::Teacher),
        result(Phase::Baseline),
        result(Phase::Distilled),
    );
    let student = distilled.or(baseline);
    let acc = |r: Option<&crate::run::summary::PhaseResult>| {
        r.map_or("-".into(), |r| format!("{:.2}%", 100.0 * r.test_acc))
    };
    let mut rows = Vec::new();
    if let Some((t, s)) = app.sizes {
        rows.push(Row::new(vec![
            "params".into(),
            t.params.to_string(),
            s.params.to_string(),
            ratio_text(t.params as f64, s.params as f64),
        ]));
        rows.push(Row::new(vec![
            "size".into(),
            human_bytes(t.bytes),
            human_bytes(s.bytes),
            ratio_text(t.bytes as f64, s.bytes as f64),
        ]));
    }
    let latency = |r: Option<&crate::run::summary::PhaseResult>| {
        r.map_or("-".into(), |r| format!("{:.1}µs", r.latency.batch1_us))
    };
    let speedup = match (teacher, student) {
        (Some(t), Some(s)) => ratio_text(t.latency.batch1_us, s.latency.batch1_us),
        _ => "-".into(),
    };
    rows.push(Row::new(vec![
        "latency".into(),
        latency(teacher),
        latency(student),
        speedup,
    ]));
    rows.push(Row::new(vec![
        "test acc".into(),
        acc(teacher),
        String::new(),
        String::new(),
    ]));
    rows.push(Row::new(vec![
        "baseline".into(),
        String::new(),
        acc(baseline),
        String::new(),
    ]));
    let gain = match (baseline, distilled) {
        (Some(b), Some(d)) => {
            let pp = 100.0 * (d.test_acc - b.test_acc);
            let style = if pp >= 0.0 {
                theme::good()
            } else {
                theme::bad()
            };
            Row::new(vec![
                Line::from("distilled"),
                Line::from(""),
                Line::from(acc(distilled)),
                Line::styled(format!("{pp:+.2}pp"), style),
            ])
        }
        _ => Row::new(vec![
            "distilled".into(),
            String::new(),
            acc(distilled),
            String::new(),
        ]),
    };
    rows.push(gain);
    let table = Table::new(
        rows,
        [
            Constraint::Length(9),
            Constraint::Length(8),
            Constraint::Length(8),
            Constraint::Min(5),
        ],
    )
    .header(Row::new(vec!["", "teacher", "student", "ratio"]).style(theme::title()))
    .block(Block::bordered().title(models_title(app)));
    frame.render_widget(table, area);
}

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

fn render_loss_chart(app: &App, frame: &mut Frame, area: Rect) {
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

fn render_accuracy_chart(app: &App, frame: &mut Frame, area: Rect) {
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

fn log_line(line: &super::app::LogLine) -> Line<'static> {
    Line::from(vec![
        Span::styled(
            format!("{:>7} ", format_duration(line.wall_time)),
            theme::dim(),
        ),
        Span::styled(line.text.clone(), theme::log_level(line.level)),
    ])
}

fn render_log(app: &App, frame: &mut Frame, area: Rect) {
    let visible = area.height.saturating_sub(2) as usize;
    let lines: Vec<Line> = app
        .log
        .iter()
        .skip(app.log.len().saturating_sub(visible))
        .map(log_line)
        .collect();
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" events ")),
        area,
    );
}

fn render_footer(app: &App, frame: &mut Frame, area: Rect, compact: bool) {
    let mut lines = Vec::new();
    if compact {
        lines.push(app.log.back().map_or_else(Line::default, log_line));
    }
    let hint = |key: &'static str, what: &'static str| {
        vec![
            Span::styled(key, theme::key_hint()),
            Span::raw(format!(" {what}  ")),
        ]
    };
    let keys: Vec<Span> = match &app.mode {
        Mode::Editing {
            refused: Some(reason),
            ..
        } => vec![Span::styled(format!(" refused: {reason}"), theme::error())],
        Mode::Editing { .. } => [
            hint(" Enter", "apply"),
            hint("Esc", "cancel"),
            hint("Backspace", "delete"),
        ]
        .concat(),
        _ if app.finished() => [
            hint(" q", "quit"),
            hint("l", "log scale"),
            hint("e", "EMA"),
            hint("?", "help"),
        ]
        .concat(),
        _ => [
            hint(" Space", "pause"),
            hint("↑↓", "select"),
            hint("Enter", "edit"),
            hint("n", "skip"),
            hint("c", "ckpt"),
            hint("l", "log"),
            hint("q", "quit"),
            hint("?", "help"),
        ]
        .concat(),
    };
    lines.push(Line::from(keys));
    frame.render_widget(Paragraph::new(lines), area);
}

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let [row] = Layout::vertical([Constraint::Length(height.min(area.height))])
        .flex(Flex::Center)
        .areas(area);
    let [cell] = Layout::horizontal([Constraint::Length(width.min(area.width))])
        .flex(Flex::Center)
        .areas(row);
    cell
}

pub const HELP: &[(&str, &str)] = &[
    ("Space", "pause / resume the current phase"),
    ("t / s", "pause / resume teacher / student training"),
    ("↑ ↓ (k j)", "select a hyperparameter"),
    ("Enter", "edit it; Enter applies, Esc cancels"),
    ("n", "skip to the next phase (asks first)"),
    ("c", "write a checkpoint now"),
    ("l", "loss chart: log scale on / off"),
    ("e", "loss chart: EMA smoothing on / off"),
    ("m", "chart markers: braille / plain dots"),
    (
        "q",
        "quit: checkpoint and finish the run folder (asks first)",
    ),
    ("Ctrl-C", "stop now, with a checkpoint"),
    ("?", "this help; any key closes it"),
];

fn render_help(frame: &mut Frame, area: Rect) {
    let lines: Vec<Line> = HELP
        .iter()
        .map(|(key, what)| {
            Line::from(vec![
                Span::styled(format!(" {key:<10} "), theme::key_hint()),
                Span::raw(*what),
            ])
        })
        .collect();
    let popup = centered(area, 72, HELP.len() as u16 + 2);
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" keys ")),
        popup,
    );
}

fn render_confirm(app: &App, action: Confirm, frame: &mut Frame, area: Rect) {
    let question = match action {
        Confirm::SkipPhase => format!(
            "Skip the rest of the {} phase?",
            app.progress.phase.map_or("current", Phase::as_str)
        ),
        Confirm::Quit => "Quit? A checkpoint is written and the run folder completed.".into(),
    };
    let text = vec![
        Line::from(question),
        Line::from(""),
        Line::styled("y / Enter: yes    any other key: no", theme::key_hint()),
    ];
    let popup = centered(area, 64, 5);
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(text)
            .alignment(Alignment::Center)
            .wrap(Wrap { trim: true })
            .block(Block::bordered().title(" confirm ")),
        popup,
    );
}
