//! Pure rendering: `render(&App, frame)` and one function per panel. Nothing here changes state.

mod as_run;
pub mod charts;
mod header;
mod panels;
mod queue;
mod ranks;

pub use charts::{ema, thin};

use super::app::{App, Confirm, Link, Mode};
use super::theme;
use crate::protocol::Phase;
use charts::{render_accuracy_chart, render_loss_chart};
use header::render_header;
use panels::{log_line, models_height, render_hyperparameters, render_log, render_models};
use ratatui::layout::{Alignment, Constraint, Flex, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};
use ratatui::Frame;

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
    // Compact: the models table's widest rows (`distilled`, `74.6 KiB` twice, `+0.60pp`).
    let left_width = if compact {
        Constraint::Length(37)
    } else {
        Constraint::Percentage(38)
    };
    let [left, right] = Layout::horizontal([left_width, Constraint::Min(0)]).areas(top);
    let queue_height = app.queue.as_ref().map_or(0, |q| queue::height(q, left));
    let ranks_height = match ranks::shown(app, compact) {
        true => ranks::height(app, left),
        false => 0,
    };
    let left_rows = left.height.saturating_sub(queue_height + ranks_height);
    let as_run_on_right = as_run_moves_right(app, left_rows);
    // The end on a small screen: the settings as run take the loss chart's place, since the
    // results and the validation curves say more than the losses once it is over; the loss
    // chart goes under the models panel where there is room for one.
    let (hyper_rows, models_rows, spare_rows) = match as_run_on_right {
        true => (
            0,
            Constraint::Length(models_height(app)),
            Constraint::Min(0),
        ),
        false => (hyper_height(app), Constraint::Min(0), Constraint::Length(0)),
    };
    let [hyper, queue_area, ranks_area, models, spare] = Layout::vertical([
        Constraint::Length(hyper_rows),
        Constraint::Length(queue_height),
        Constraint::Length(ranks_height),
        models_rows,
        spare_rows,
    ])
    .areas(left);
    let loss_chart_shown = if as_run_on_right {
        let [as_run, acc] =
            Layout::vertical([Constraint::Length(as_run_height(app)), Constraint::Min(0)])
                .areas(right);
        render_hyperparameters(app, frame, as_run);
        render_accuracy_chart(app, frame, acc);
        let room = spare.height >= MIN_CHART_HEIGHT;
        if room {
            render_loss_chart(app, frame, spare);
        }
        room
    } else {
        let [loss, acc] =
            Layout::vertical([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(right);
        render_hyperparameters(app, frame, hyper);
        render_loss_chart(app, frame, loss);
        render_accuracy_chart(app, frame, acc);
        true
    };
    if let Some(q) = &app.queue {
        queue::render_queue(q, frame, queue_area);
    }
    if ranks_height > 0 {
        ranks::render_ranks(app, frame, ranks_area);
    }
    render_models(app, frame, models);
    if let Some(log) = log_area {
        render_log(app, frame, log);
    }
    render_footer(app, frame, footer, compact, loss_chart_shown);
    match &app.mode {
        Mode::Help => render_help(frame, area),
        Mode::Confirm(action) => render_confirm(app, *action, frame, area),
        _ => {}
    }
}

/// The hyperparameter panel's height: all its rows while training (they are edited there);
/// after the run, the settings as run (which move right where they do not fit).
fn hyper_height(app: &App) -> u16 {
    match app.finished() {
        true => as_run_height(app),
        false => app.hyper_rows().len() as u16 + 2,
    }
}

/// A chart's fewest rows: borders, two of plot, the axis labels.
const MIN_CHART_HEIGHT: u16 = 6;

fn as_run_height(app: &App) -> u16 {
    as_run::lines(app).len() as u16 + 2
}

/// Whether the finished run's settings go to the right column: they do not fit under the
/// models panel on the left, which keeps its results.
fn as_run_moves_right(app: &App, available: u16) -> bool {
    app.finished() && as_run_height(app) + models_height(app) > available
}

pub fn format_duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

fn render_footer(app: &App, frame: &mut Frame, area: Rect, compact: bool, loss_chart: bool) {
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
            hint("←→ Home End", "move"),
            hint("^U ^W", "delete"),
        ]
        .concat(),
        _ if app.finished() => {
            let mut keys = hint(" q", "quit");
            // The chart keys only where the loss chart is drawn.
            if loss_chart {
                keys.extend(
                    [hint("l", "log scale"), hint("e", "EMA"), hint("p", "parts")].concat(),
                );
            }
            keys.extend(hint("?", "help"));
            keys
        }
        _ => {
            let quit = match app.link {
                Link::InProcess => hint("q", "quit"),
                _ => [hint("q", "detach"), hint("X", "stop job")].concat(),
            };
            let paused = app.is_paused(app.active_role());
            [
                hint(" Space", if paused { "resume" } else { "pause" }),
                hint("↑↓", "select"),
                hint("Enter", "edit"),
                hint("n", "skip"),
                hint("c", "ckpt"),
                hint("l", "log"),
                quit,
                hint("?", "help"),
            ]
            .concat()
        }
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
    ("p", "loss chart: totals / the current phase's parts"),
    ("z", "loss chart: zoom to the recent steps / all"),
    (
        "r",
        "ranks panel on / off (several ranks; folded on small screens)",
    ),
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

/// The confirm dialog's width where the terminal has room.
const CONFIRM_WIDTH: u16 = 64;

fn render_confirm(app: &App, action: Confirm, frame: &mut Frame, area: Rect) {
    let question = match action {
        Confirm::SkipPhase => format!(
            "Skip the rest of the {} phase?",
            app.progress.phase.map_or("current", Phase::as_str)
        ),
        Confirm::Quit => "Quit? The run stops with a checkpoint, marked interrupted.".into(),
        Confirm::LowerLr => format!(
            "The {} phase diverged. Go on from the last checkpoint with {} = {}?",
            app.diverged.map_or("current", Phase::as_str),
            app.lower_lr().map_or(String::new(), |o| o.key),
            app.lower_lr().map_or(String::new(), |o| o.value),
        ),
        Confirm::StopJob => {
            "Stop the job? It writes a checkpoint and its run folder, then exits.".into()
        }
    };
    let text = vec![
        Line::from(question),
        Line::from(""),
        Line::styled("y / Enter: yes    any other key: no", theme::key_hint()),
    ];
    let paragraph = Paragraph::new(text)
        .alignment(Alignment::Center)
        .wrap(Wrap { trim: true })
        .block(Block::bordered().title(" confirm "));
    // As tall as its wrapped text, so that the yes / no line is always shown.
    let width = CONFIRM_WIDTH.min(area.width);
    let height = paragraph.line_count(width.saturating_sub(2)) as u16;
    let popup = centered(area, width, height);
    frame.render_widget(Clear, popup);
    frame.render_widget(paragraph, popup);
}
