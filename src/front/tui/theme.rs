//! Every colour and style of the TUI, in one place.

use crate::protocol::{LogLevel, Phase};
use ratatui::style::{Color, Modifier, Style};

pub fn phase_color(phase: Phase) -> Color {
    match phase {
        Phase::Teacher => Color::Magenta,
        Phase::Baseline => Color::Blue,
        Phase::Distilled => Color::Green,
    }
}

pub const EDIT_MARKER: Color = Color::Yellow;
/// Loss parts in the parts view, in the order the method names them (alphabetical).
pub const PART_COLORS: [Color; 5] = [
    Color::Cyan,
    Color::LightRed,
    Color::LightGreen,
    Color::LightMagenta,
    Color::LightYellow,
];
pub const REFERENCE: Color = Color::DarkGray;

pub fn title() -> Style {
    Style::new().add_modifier(Modifier::BOLD)
}

pub fn dim() -> Style {
    Style::new().fg(Color::DarkGray)
}

pub fn key_hint() -> Style {
    Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD)
}

pub fn selected() -> Style {
    Style::new()
        .bg(Color::DarkGray)
        .add_modifier(Modifier::BOLD)
}

pub fn editing() -> Style {
    Style::new().fg(Color::Black).bg(Color::Yellow)
}

pub fn error() -> Style {
    Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)
}

pub fn running() -> Style {
    Style::new().fg(Color::Green).add_modifier(Modifier::BOLD)
}

pub fn paused() -> Style {
    Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD)
}

pub fn gauge() -> Style {
    Style::new().fg(Color::Cyan)
}

pub fn log_level(level: LogLevel) -> Style {
    match level {
        LogLevel::Info => Style::new(),
        LogLevel::Warn => Style::new().fg(Color::Yellow),
        LogLevel::Error => Style::new().fg(Color::Red),
    }
}

pub fn good() -> Style {
    Style::new().fg(Color::Green)
}

pub fn bad() -> Style {
    Style::new().fg(Color::Red)
}
