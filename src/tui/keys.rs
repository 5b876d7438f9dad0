//! Key handling of the `App`: normal mode, confirmations, help and the edit field.

use super::app::{App, Confirm, Hyper, Mode};
use crate::protocol::{Command, LogLevel, Role};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

impl App {
    pub(super) fn on_key(&mut self, key: KeyEvent) -> Option<Command> {
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            return self.stop("Ctrl-C");
        }
        match self.mode.clone() {
            Mode::Help => {
                self.mode = Mode::Normal;
                None
            }
            Mode::Confirm(action) => match key.code {
                KeyCode::Char('y') | KeyCode::Char('Y') | KeyCode::Enter => {
                    self.mode = Mode::Normal;
                    match action {
                        Confirm::SkipPhase => Some(Command::SkipPhase),
                        Confirm::Quit => self.stop("quit from the TUI"),
                    }
                }
                _ => {
                    self.mode = Mode::Normal;
                    None
                }
            },
            Mode::Editing { buffer, .. } => self.on_edit_key(key, buffer),
            Mode::Normal => self.on_normal_key(key),
        }
    }

    fn on_normal_key(&mut self, key: KeyEvent) -> Option<Command> {
        match key.code {
            KeyCode::Char('q') => {
                if self.finished() {
                    self.exit = true;
                } else {
                    self.mode = Mode::Confirm(Confirm::Quit);
                }
                None
            }
            KeyCode::Char('?') => {
                self.mode = Mode::Help;
                None
            }
            KeyCode::Char(' ') => self.toggle_pause(self.active_role()),
            KeyCode::Char('t') => self.toggle_pause(Role::Teacher),
            KeyCode::Char('s') => self.toggle_pause(Role::Student),
            KeyCode::Up | KeyCode::Char('k') => {
                self.selected = (self.selected + Hyper::ALL.len() - 1) % Hyper::ALL.len();
                None
            }
            KeyCode::Down | KeyCode::Char('j') => {
                self.selected = (self.selected + 1) % Hyper::ALL.len();
                None
            }
            KeyCode::Enter => {
                if self.finished() {
                    self.push_log(
                        self.progress.wall_time,
                        LogLevel::Warn,
                        "the run has finished; nothing to edit".into(),
                    );
                } else {
                    let buffer = self.hyper_value(Hyper::ALL[self.selected]);
                    self.mode = Mode::Editing {
                        buffer,
                        refused: None,
                    };
                }
                None
            }
            KeyCode::Char('n') if !self.finished() => {
                self.mode = Mode::Confirm(Confirm::SkipPhase);
                None
            }
            KeyCode::Char('c') if !self.finished() => Some(Command::Checkpoint),
            KeyCode::Char('l') => {
                self.log_scale = !self.log_scale;
                None
            }
            KeyCode::Char('e') => {
                self.smoothing = !self.smoothing;
                None
            }
            KeyCode::Char('m') => {
                self.ascii_markers = !self.ascii_markers;
                None
            }
            _ => {
                self.dirty = false;
                None
            }
        }
    }

    fn toggle_pause(&mut self, role: Role) -> Option<Command> {
        if self.finished() {
            return None;
        }
        Some(Command::SetPaused {
            role,
            paused: !self.is_paused(role),
        })
    }

    fn on_edit_key(&mut self, key: KeyEvent, mut buffer: String) -> Option<Command> {
        match key.code {
            KeyCode::Esc => {
                self.mode = Mode::Normal;
                None
            }
            KeyCode::Enter => {
                let key = Hyper::ALL[self.selected].key(self.active_role());
                let checked = match &self.preset {
                    Some(p) => p.with_edit(&key, &buffer).map(|_| ()),
                    None => Err("the run has not started yet".into()),
                };
                match checked {
                    Ok(()) => {
                        self.mode = Mode::Normal;
                        Some(Command::Set {
                            key,
                            value: buffer.trim().to_string(),
                        })
                    }
                    Err(reason) => {
                        self.mode = Mode::Editing {
                            buffer,
                            refused: Some(reason),
                        };
                        None
                    }
                }
            }
            KeyCode::Backspace => {
                buffer.pop();
                self.mode = Mode::Editing {
                    buffer,
                    refused: None,
                };
                None
            }
            KeyCode::Char(c) if !c.is_control() && buffer.len() < 32 => {
                buffer.push(c);
                self.mode = Mode::Editing {
                    buffer,
                    refused: None,
                };
                None
            }
            _ => None,
        }
    }
}
