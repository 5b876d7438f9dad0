//! Text tables and notes fitted to the width of the terminal they are printed on: a table
//! drops its least important columns first, a note wraps between words. `None` is no limit
//! (a pipe: whole lines for scripts).
//!
//! How wide: the terminal's width when standard output is one, else `$COLUMNS` (a shell's own,
//! or set by hand), else no limit: a pipe or a file gets whole lines, for scripts (`--json` and
//! `summary.json` keep every field in any case).

use comfy_table::{ColumnConstraint, ContentArrangement, Table};
use std::io::IsTerminal;

/// The columns standard output can show, `None` for no limit.
pub fn stdout_columns() -> Option<usize> {
    let terminal = std::io::stdout()
        .is_terminal()
        .then(crossterm::terminal::size)
        .and_then(Result::ok)
        .map(|(columns, _)| columns as usize);
    let columns = || {
        std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.trim().parse::<usize>().ok())
    };
    terminal.or_else(columns).filter(|&c| c > 0)
}

/// `table` within `width` columns, its cells' text wrapped where the columns do not fit whole.
pub fn wrapped(mut table: Table, width: Option<usize>) -> String {
    if let Some(width) = width {
        table
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_width(width.min(u16::MAX as usize) as u16);
    }
    table.to_string()
}

/// `table` within `width` columns, dropping the columns of `drop_order` (least important
/// first) until it fits; with a line naming what was left out, and where to find it.
pub fn table(table: Table, width: Option<usize>, drop_order: &[usize], whole: &str) -> String {
    table_dropping(table, width, drop_order, whole).0
}

/// `table`, and the columns it left out.
pub fn table_dropping(
    mut table: Table,
    width: Option<usize>,
    drop_order: &[usize],
    whole: &str,
) -> (String, Vec<usize>) {
    let widest = |t: &Table| t.lines().map(|l| l.chars().count()).max().unwrap_or(0);
    let Some(width) = width else {
        return (table.to_string(), Vec::new());
    };
    let mut dropped = Vec::new();
    for &column in drop_order {
        if widest(&table) <= width {
            break;
        }
        if let Some(c) = table.column_mut(column) {
            c.set_constraint(ColumnConstraint::Hidden);
            dropped.push(column);
        }
    }
    let mut out = table.to_string();
    if !dropped.is_empty() {
        let headers = table.header().map(|h| h.cell_iter()).into_iter().flatten();
        let names: Vec<String> = headers
            .enumerate()
            .filter(|(i, _)| dropped.contains(i))
            .map(|(_, cell)| cell.content())
            .collect();
        let note = format!(
            "(left out to fit {width} columns: {}; {whole} has them)",
            names.join(", ")
        );
        out.push('\n');
        out.push_str(&wrap(&note, Some(width)));
    }
    (out, dropped)
}

/// `text` with each line wrapped at spaces within `width` columns (a word longer than the
/// width stays whole); continuation lines are indented by two spaces.
pub fn wrap(text: &str, width: Option<usize>) -> String {
    let Some(width) = width else {
        return text.to_string();
    };
    let mut out = Vec::new();
    for line in text.lines() {
        let mut current = String::new();
        for word in line.split(' ') {
            let len = current.chars().count();
            if len > 0 && len + 1 + word.chars().count() > width {
                out.push(std::mem::replace(&mut current, format!("  {word}")));
            } else {
                if len > 0 {
                    current.push(' ');
                }
                current.push_str(word);
            }
        }
        out.push(current);
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        let mut t = Table::new();
        t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED)
            .set_header(["name", "a long column", "another long one"]);
        t.add_row(["x", "1111111111111", "2222222222222222"]);
        t
    }

    #[test]
    fn a_table_drops_columns_in_order_until_it_fits() {
        let whole = table(sample(), None, &[2, 1], "the file");
        assert!(whole.lines().all(|l| l.chars().count() > 30), "{whole}");
        let narrow = table(sample(), Some(30), &[2, 1], "the file");
        let (grid, note) = narrow.split_at(narrow.find("\n(left out").unwrap());
        assert!(grid.lines().all(|l| l.chars().count() <= 30), "{narrow}");
        assert!(
            grid.contains("a long column") && !grid.contains("another"),
            "{narrow}"
        );
        assert!(note.contains("another long one;"), "{note}");
        assert!(note.lines().all(|l| l.chars().count() <= 30), "{note}");
    }

    #[test]
    fn notes_wrap_between_words() {
        assert_eq!(wrap("aaa bbb ccc", Some(7)), "aaa bbb\n  ccc");
        assert_eq!(wrap("aaa bbb ccc", None), "aaa bbb ccc");
        assert_eq!(wrap("abcdefghij k", Some(4)), "abcdefghij\n  k");
    }
}
