//! The side panels: live hyperparameters, the models table, the event log.

use super::super::app::{App, EditField, Mode};
use super::super::theme;
use super::format_duration;
use crate::protocol::stats::format_p;
use crate::protocol::summary::{human_bytes, PhaseResult};
use crate::protocol::Phase;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Row, Table};
use ratatui::Frame;

pub(super) fn render_hyperparameters(app: &App, frame: &mut Frame, area: Rect) {
    // At the end: every phase's settings as it ran, not the live values of the last one.
    if app.finished() {
        let block = Block::bordered().title(" hyperparameters as run ");
        frame.render_widget(Paragraph::new(super::as_run::lines(app)).block(block), area);
        return;
    }
    let role = app.active_role();
    let selected = app.selected.min(app.hyper_rows().len() - 1);
    let rows: Vec<Line> = app
        .hyper_rows()
        .into_iter()
        .enumerate()
        .map(|(i, row)| {
            let value = match (&app.mode, i == selected) {
                (Mode::Editing { field, .. }, true) => edit_field(field),
                _ => {
                    let mut v = app.hyper_value(&row.key);
                    if let (true, Some(_), Ok(epochs)) = (
                        row.key.ends_with(".epochs"),
                        app.progress.phase,
                        v.parse::<usize>(),
                    ) {
                        v.push_str(&format!(
                            " ({} left)",
                            epochs.saturating_sub(app.progress.epoch)
                        ));
                    }
                    let mut value = vec![Span::raw(v)];
                    // Sent, and not yet applied by the trainer (it applies at its next step).
                    if let Some(new) = app.pending.get(&row.key) {
                        value.push(Span::styled(format!(" → {new} pending"), theme::paused()));
                    }
                    value
                }
            };
            let mut spans = vec![Span::raw(format!(" {:<12}", row.label))];
            spans.extend(value);
            let line = Line::from(spans);
            if i == selected {
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

/// The edit field's text with the cursor drawn where it is.
fn edit_field(field: &EditField) -> Vec<Span<'static>> {
    let chars: Vec<char> = field.value().chars().collect();
    let at = field.cursor().min(chars.len());
    let before: String = chars[..at].iter().collect();
    let after: String = chars[at..].iter().collect();
    vec![
        Span::styled(before, theme::editing()),
        Span::styled("▏", theme::editing()),
        Span::styled(after, theme::editing()),
    ]
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

/// How the models panel's rows rank when the panel is too short for all of them: the
/// accuracies and the paired test first, the sizes last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Rank {
    Distilled,
    Baseline,
    Teacher,
    Paired,
    Interval,
    Latency,
    Params,
    Gap,
    Size,
}

/// The models panel's rows, in reading order, each with its rank.
fn model_rows(app: &App) -> Vec<(Rank, Row<'static>)> {
    let result = |phase: Phase| app.series[phase.index()].result.as_ref();
    let (teacher, baseline, distilled) = (
        result(Phase::Teacher),
        result(Phase::Baseline),
        result(Phase::Distilled),
    );
    let student = distilled.or(baseline);
    let acc =
        |r: Option<&PhaseResult>| r.map_or("-".into(), |r| format!("{:.2}%", 100.0 * r.test_acc));
    let mut rows = Vec::new();
    if let Some((t, s)) = app.sizes {
        rows.push((
            Rank::Params,
            Row::new(vec![
                "params".into(),
                t.params.to_string(),
                s.params.to_string(),
                ratio_text(t.params as f64, s.params as f64),
            ]),
        ));
        rows.push((
            Rank::Size,
            Row::new(vec![
                "size".into(),
                human_bytes(t.bytes),
                human_bytes(s.bytes),
                ratio_text(t.bytes as f64, s.bytes as f64),
            ]),
        ));
    }
    let latency =
        |r: Option<&PhaseResult>| r.map_or("-".into(), |r| format!("{:.1}µs", r.latency.batch1_us));
    let speedup = match (teacher, student) {
        (Some(t), Some(s)) => ratio_text(t.latency.batch1_us, s.latency.batch1_us),
        _ => "-".into(),
    };
    rows.push((
        Rank::Latency,
        Row::new(vec![
            "latency".into(),
            latency(teacher),
            latency(student),
            speedup,
        ]),
    ));
    rows.push((
        Rank::Teacher,
        Row::new(vec![
            "test acc".into(),
            acc(teacher),
            String::new(),
            String::new(),
        ]),
    ));
    rows.push((
        Rank::Baseline,
        Row::new(vec![
            "baseline".into(),
            String::new(),
            acc(baseline),
            String::new(),
        ]),
    ));
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
    rows.push((Rank::Distilled, gain));
    let comparison = app.summary.as_ref().and_then(|s| s.comparison.as_ref());
    // At the end: whether the gain is more than chance, from the paired test.
    if let Some(t) = comparison.and_then(|c| c.paired) {
        let verdict = if t.significant() {
            Span::styled("signif.", theme::good())
        } else {
            Span::styled("n.s.", theme::bad())
        };
        rows.push((
            Rank::Paired,
            Row::new(vec![
                Line::from("paired p"),
                Line::from(""),
                Line::from(format_p(t.p_value)),
                Line::from(verdict),
            ]),
        ));
        rows.push((
            Rank::Interval,
            Row::new(vec![
                "95% CI".into(),
                String::new(),
                format!("{:+.2}", t.ci_pp[0]),
                format!("{:+.2}pp", t.ci_pp[1]),
            ]),
        ));
    }
    // Read across the row: "gap  closed  72%", the share of the teacher-baseline gap.
    if let Some(closed) = comparison.and_then(|c| c.gap_closed) {
        let style = if closed >= 0.0 {
            theme::good()
        } else {
            theme::bad()
        };
        rows.push((
            Rank::Gap,
            Row::new(vec![
                Line::from("gap"),
                Line::from(""),
                Line::from("closed"),
                Line::styled(format!("{:.0}%", 100.0 * closed), style),
            ]),
        ));
    }
    rows
}

/// The models panel's height with every row shown: its rows, the header and the border.
pub(super) fn models_height(app: &App) -> u16 {
    model_rows(app).len() as u16 + 3
}

/// The `room` best-ranked rows, in reading order.
fn most_important(rows: Vec<(Rank, Row<'static>)>, room: usize) -> Vec<Row<'static>> {
    let mut ranks: Vec<Rank> = rows.iter().map(|(rank, _)| *rank).collect();
    ranks.sort();
    let cutoff = ranks.get(room).copied();
    rows.into_iter()
        .filter(|(rank, _)| cutoff.is_none_or(|cutoff| *rank < cutoff))
        .map(|(_, row)| row)
        .collect()
}

pub(super) fn render_models(app: &App, frame: &mut Frame, area: Rect) {
    let room = usize::from(area.height.saturating_sub(3));
    let rows = most_important(model_rows(app), room);
    // Values are at most 8 columns (`74.6 KiB`), the ratios 7 (`+0.60pp`), the labels 9.
    let table = Table::new(
        rows,
        [
            Constraint::Length(9),
            Constraint::Length(8),
            Constraint::Length(8),
            Constraint::Min(7),
        ],
    )
    .header(Row::new(vec!["", "teacher", "student", "ratio"]).style(theme::title()))
    .block(Block::bordered().title(models_title(app)));
    frame.render_widget(table, area);
}

pub(super) fn log_line(line: &super::super::app::LogLine) -> Line<'static> {
    Line::from(vec![
        Span::styled(
            format!("{:>7} ", format_duration(line.wall_time)),
            theme::dim(),
        ),
        Span::styled(line.text.clone(), theme::log_level(line.level)),
    ])
}

pub(super) fn render_log(app: &App, frame: &mut Frame, area: Rect) {
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
