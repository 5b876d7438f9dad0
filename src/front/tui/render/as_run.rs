//! The end's hyperparameter panel: each phase's settings as it started, and the live edits
//! made during it, marked where they apply (`temperature 4 → 20 @step 120`, or a `*` on a
//! table cell with the edit below the table).

use super::super::app::{value_text, App, AppliedEdit};
use super::super::theme;
use crate::protocol::Phase;
use ratatui::text::{Line, Span};

/// The table's columns: the keys of the training network's table, with their headings.
const COLUMNS: [(&str, &str, usize); 3] = [
    ("lr", "lr", 8),
    ("batch_size", "batch", 6),
    ("epochs", "epochs", 6),
];

/// `old → new @step N`.
fn edit_text(edit: &AppliedEdit) -> String {
    format!("{} → {} @step {}", edit.old, edit.new, edit.step)
}

/// The panel's lines: a row per phase that ran, footnotes for its edited cells, then the
/// distillation method's hyperparameters with their edits.
pub(super) fn lines(app: &App) -> Vec<Line<'static>> {
    let mut heading = format!(" {:<10}", "");
    for (_, title, width) in COLUMNS {
        heading.push_str(&format!("{title:<width$}"));
    }
    let mut rows = vec![Line::styled(heading, theme::title())];
    let mut notes = Vec::new();
    let mut method_lines = Vec::new();
    for phase in Phase::ALL {
        let series = &app.series[phase.index()];
        let Some(preset) = series.started_with.as_ref().or(app.preset.as_ref()) else {
            continue;
        };
        let loaded = series.result.as_ref().is_some_and(|r| !r.trained);
        if series.started_with.is_none() && !loaded {
            continue;
        }
        let mut row = format!(" {:<10}", phase.as_str());
        if loaded {
            row.push_str("loaded");
        }
        let table = phase.role().table();
        for (key, title, width) in COLUMNS.iter().filter(|_| !loaded) {
            let key = format!("{table}.{key}");
            let mut cell = value_text(Some(preset), &key);
            // Edits during the phase of its own network's settings; others apply later.
            for edit in series.edits.iter().filter(|e| e.key == key) {
                cell = format!("{}*", cell.trim_end_matches('*'));
                // The old value is in the table: the note gives the new one and when.
                notes.push(format!(
                    " * {} {title} → {} @step {}",
                    phase.as_str(),
                    edit.new,
                    edit.step
                ));
            }
            row.push_str(&format!("{cell:<width$}"));
        }
        rows.push(Line::raw(row));
        if phase == Phase::Distilled {
            method_lines = method(preset, &series.edits);
        }
    }
    rows.extend(notes.into_iter().map(|n| Line::styled(n, theme::paused())));
    rows.extend(method_lines);
    rows
}

/// The distilled phase's method and its hyperparameters as it started, each followed by its
/// edits; then the edits of other `distill.` keys (a method switch).
fn method(preset: &crate::config::Preset, edits: &[AppliedEdit]) -> Vec<Line<'static>> {
    let name = value_text(Some(preset), "distill.method");
    let params = crate::distill::spec(preset.distill.method).params;
    // The method on a line of its own, so that an edited value fits a narrow panel.
    let mut lines = vec![Line::raw(format!(" method {name}"))];
    for param in params {
        let key = format!("distill.{}", param.name);
        let mut text = format!("   {} {}", param.name, value_text(Some(preset), &key));
        let mut edited = false;
        for edit in edits.iter().filter(|e| e.key == key) {
            text.push_str(&format!(" → {} @step {}", edit.new, edit.step));
            edited = true;
        }
        lines.push(marked(text, edited));
    }
    let shown = |key: &str| params.iter().any(|p| key == format!("distill.{}", p.name));
    for edit in edits
        .iter()
        .filter(|e| e.key.starts_with("distill.") && !shown(&e.key))
    {
        let name = edit.key.trim_start_matches("distill.");
        lines.push(marked(format!("   {name} {}", edit_text(edit)), true));
    }
    lines
}

fn marked(text: String, edited: bool) -> Line<'static> {
    if edited {
        Line::from(Span::styled(text, theme::paused()))
    } else {
        Line::raw(text)
    }
}
