//! How wide printed tables may be: the terminal's width when standard output is one, else
//! `$COLUMNS` (a shell's own, or set by hand), else no limit: a pipe or a file gets whole
//! lines, for scripts (`--json` and `summary.json` keep every field in any case).

use std::io::IsTerminal;

/// The columns standard output can show, `None` for no limit.
pub fn stdout() -> Option<usize> {
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
