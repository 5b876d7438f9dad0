//! The header: what runs and where it stands (or how the run ended), and its two gauges.

use super::super::app::{App, Link};
use super::super::theme;
use super::format_duration;
use crate::device::nvml;
use crate::protocol::summary::{RunStatus, RunSummary};
use crate::protocol::{Phase, Role};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{LineGauge, Paragraph};
use ratatui::Frame;

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

/// ` · 1 thread`, or nothing where the phase did not say.
fn threads_text(threads: usize) -> String {
    match threads {
        0 => String::new(),
        1 => " · 1 thread".into(),
        n => format!(" · {n} threads"),
    }
}

pub(super) fn render_header(app: &App, frame: &mut Frame, area: Rect) {
    let p = &app.progress;
    let phase = match p.phase {
        Some(phase) => Span::styled(phase.as_str(), theme::title().fg(theme::phase_color(phase))),
        None if app.summary.is_some() => Span::raw("run"),
        None if app.trainer_gone => Span::styled("trainer stopped", theme::error()),
        None => Span::raw("-"),
    };
    let eta = |seconds: Option<f64>| seconds.map_or("-".into(), format_duration);
    let paused = p.phase.is_some_and(|phase| app.is_paused(phase.role()));
    let rate = if paused {
        " · paused".to_string()
    } else {
        format!(" · {:.0} samples/s", p.samples_per_sec)
    };
    let mut spans = vec![
        Span::styled(" kd-tui ", theme::title()),
        Span::raw(format!("{} · ", app.name)),
    ];
    // Where the attached job's pid goes, if the link has one.
    let link_at = spans.len();
    match &app.link {
        Link::InProcess => {}
        Link::Attached { pid } => spans.push(Span::raw(match app.world_size {
            1 => format!("attached to pid {pid} · "),
            n => format!("attached to pid {pid} · {n} ranks · "),
        })),
        Link::ReadOnly { reason } => spans.push(Span::styled(
            format!("read-only: {reason} · "),
            theme::paused(),
        )),
    }
    if let Some(q) = &app.queue {
        let at = q.running().map_or(q.done(), |i| i + 1);
        spans.push(Span::raw(format!("{} {at}/{} · ", q.title, q.rows.len())));
    }
    if app.follows_series {
        spans.push(Span::raw(format!(
            "series run {} · ",
            series_run(&app.run_dir)
        )));
    }
    spans.extend([phase, Span::raw(" "), status(app)]);
    let students_wait = p.phase == Some(Phase::Teacher) && app.is_paused(Role::Student);
    if students_wait && app.summary.is_none() {
        spans.push(Span::styled(" · students start paused", theme::paused()));
    }
    if let Some(warning) = super::ranks::warning(app) {
        // On a narrow screen a rank that needs attention goes before the attached job's pid.
        let used: usize = spans.iter().map(|s| s.width()).sum();
        if used + warning.width() > area.width as usize {
            if let (Link::Attached { .. }, Some(link)) = (&app.link, spans.get_mut(link_at)) {
                *link = Span::raw(format!("{} ranks · ", app.world_size));
            }
        }
        spans.push(warning);
    }
    // Most important first; whatever does not fit the width is left out.
    let optional = match &app.summary {
        Some(summary) => vec![
            format!(" · run took {}", format_duration(summary.wall_seconds)),
            format!(" · {}", app.device),
        ],
        None => vec![
            match &p.teacher_pass {
                Some(pass) => format!(" · {}", pass.text()),
                None => format!(" · epoch {}/{}", p.epoch, p.epochs),
            },
            format!(" · ETA {}", eta(app.run_eta_seconds())),
            format!(" · elapsed {}", format_duration(app.elapsed.as_secs_f64())),
            (app.gpus.iter())
                .map(|g| format!(" · {}", nvml::reading_text(g)))
                .collect(),
            format!(" · phase ETA {}", eta(p.eta_seconds())),
            rate,
            format!(" · step {}", p.step),
            format!(" · {}{}", app.device, threads_text(p.threads)),
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
    // At the end the gauges have nothing left to measure: the row says how the run came out.
    if let Some(summary) = &app.summary {
        frame.render_widget(Paragraph::new(outcome(app, summary)), gauges);
        return;
    }
    let [epoch_gauge, phase_gauge] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(gauges);
    let gauge = |label: String, ratio: f64| {
        LineGauge::default()
            .filled_style(theme::gauge())
            .unfilled_style(theme::dim())
            .label(label)
            .ratio(ratio)
    };
    // Before the distilled phase's first step, the left gauge follows the teacher's outputs.
    let (label, ratio) = match &p.teacher_pass {
        Some(pass) => (" teacher's outputs", pass.ratio()),
        None => (" epoch", p.epoch_ratio()),
    };
    frame.render_widget(
        gauge(format!("{label} {:>3.0}%", 100.0 * ratio), ratio),
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

/// How the run came out, most important first: the students' test accuracies and the gain,
/// or where it stopped, or why it failed.
fn outcome(app: &App, summary: &RunSummary) -> Line<'static> {
    let acc = |phase: Phase| {
        let result = app.series[phase.index()].result.as_ref();
        result.map(|r| format!("{} {:.2}%", phase.as_str(), 100.0 * r.test_acc))
    };
    let finished: Vec<&str> = Phase::ALL
        .into_iter()
        .filter(|p| app.series[p.index()].result.is_some())
        .map(Phase::as_str)
        .collect();
    match summary.status {
        RunStatus::Completed => {
            let comparison = summary.comparison.as_ref();
            let mut spans = vec![Span::raw(" ")];
            let students: Vec<String> = [Phase::Distilled, Phase::Baseline]
                .into_iter()
                .filter_map(acc)
                .collect();
            spans.push(Span::styled(students.join(" vs "), theme::title()));
            if let Some(gain) = comparison.and_then(|c| c.gain_pp) {
                let style = if gain >= 0.0 {
                    theme::good()
                } else {
                    theme::bad()
                };
                spans.push(Span::raw(": "));
                spans.push(Span::styled(format!("{gain:+.2}pp"), style));
            }
            if let Some(paired) = comparison.and_then(|c| c.paired) {
                let verdict = if paired.significant() {
                    "significant"
                } else {
                    "n.s."
                };
                spans.push(Span::raw(format!(" ({verdict})")));
            }
            if let Some(teacher) = acc(Phase::Teacher) {
                spans.push(Span::raw(format!(" · {teacher}")));
            }
            Line::from(spans)
        }
        RunStatus::Interrupted => {
            let kept = if finished.is_empty() {
                "no phase finished".to_string()
            } else {
                format!("finished: {}", finished.join(", "))
            };
            Line::styled(
                format!(" {kept} · go on with kd-tui --resume {}", app.run_dir),
                theme::paused(),
            )
        }
        RunStatus::Failed => {
            let why = summary
                .failure
                .as_ref()
                .map_or("see the log".into(), |f| f.message.clone());
            Line::styled(format!(" {why}"), theme::error())
        }
    }
}

/// A series' run by its place in the series' folder: `seed-8`, `seed-7/point-2`.
fn series_run(run_dir: &str) -> String {
    let parts: Vec<&str> = run_dir.rsplit('/').take(2).collect();
    match parts.as_slice() {
        [point, seed] if point.starts_with("point-") => format!("{seed}/{point}"),
        [run, ..] => run.to_string(),
        [] => String::new(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_series_run_is_named_by_its_place_in_the_series() {
        assert_eq!(super::series_run("runs/s/seed-8"), "seed-8");
        assert_eq!(
            super::series_run("/tmp/x/s/seed-7/point-2"),
            "seed-7/point-2"
        );
    }
}
