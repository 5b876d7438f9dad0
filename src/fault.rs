//! Fault injection for tests of the failure paths (terminal restore after a panic, ...).
//!
//! `KD_TUI_FAULT=<point>` makes the named point fail; unset, every check is one cached compare.
//! Points: `trainer-panic` (the trainer thread panics at its third step), `ui-panic` (the TUI
//! thread panics at its first frame).

use std::sync::OnceLock;

pub fn injected(point: &str) -> bool {
    static FAULT: OnceLock<Option<String>> = OnceLock::new();
    FAULT
        .get_or_init(|| std::env::var("KD_TUI_FAULT").ok())
        .as_deref()
        == Some(point)
}
