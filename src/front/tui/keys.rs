//! Key handling of the `App`: normal mode, confirmations, help and the edit field.

use super::app::{App, Confirm, EditField, Mode};
use crate::protocol::{Command, LogLevel, Role};
use crossterm::event::{Event as TermEvent, KeyCode, KeyEvent, KeyModifiers};
use tui_input::backend::crossterm::EventHandler;

impl App {
    pub(super) fn on_key(&mut self, key: KeyEvent) -> Option<Command> {
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            if self.detaches() {
                self.exit = true;
                return None;
            }
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
                        Confirm::StopJob => self.stop("stopped from an attached cockpit"),
                        Confirm::LowerLr => {
                            self.retry = self.lower_lr();
                            self.exit = true;
                            None
                        }
                    }
                }
                _ => {
                    self.mode = Mode::Normal;
                    None
                }
            },
            Mode::Editing { field, .. } => self.on_edit_key(key, field),
            Mode::Normal => self.on_normal_key(key),
        }
    }

    fn on_normal_key(&mut self, key: KeyEvent) -> Option<Command> {
        match key.code {
            KeyCode::Char('q') => {
                if self.finished() || self.detaches() {
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
                let rows = self.hyper_rows().len();
                self.selected = (self.selected.min(rows - 1) + rows - 1) % rows;
                None
            }
            KeyCode::Down | KeyCode::Char('j') => {
                let rows = self.hyper_rows().len();
                self.selected = (self.selected.min(rows - 1) + 1) % rows;
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
                    let value = self.hyper_value(&self.selected_row().key);
                    self.mode = Mode::Editing {
                        field: EditField::new(value),
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
            KeyCode::Char('X') if !self.finished() && self.detaches() => {
                self.mode = Mode::Confirm(Confirm::StopJob);
                None
            }
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
            KeyCode::Char('p') => {
                self.parts_view = !self.parts_view;
                None
            }
            KeyCode::Char('z') => {
                self.zoom = !self.zoom;
                None
            }
            KeyCode::Char('r') => {
                self.ranks_panel = !self.ranks_panel;
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

    fn on_edit_key(&mut self, key: KeyEvent, mut field: EditField) -> Option<Command> {
        match key.code {
            KeyCode::Esc => {
                self.mode = Mode::Normal;
                None
            }
            KeyCode::Enter => {
                let key = self.selected_row().key;
                let value = field.value().trim().to_string();
                let checked = match &self.preset {
                    Some(p) => p
                        .with_run_edit(&key, &value, self.train_examples)
                        .map(|_| ()),
                    None => Err("the run has not started yet".into()),
                };
                match checked {
                    Ok(()) => {
                        self.mode = Mode::Normal;
                        self.pending.insert(key.clone(), value.clone());
                        Some(Command::Set { key, value })
                    }
                    Err(reason) => {
                        self.mode = Mode::Editing {
                            field,
                            refused: Some(reason),
                        };
                        None
                    }
                }
            }
            // Values are short: a long paste is not a hyperparameter.
            KeyCode::Char(_) if field.value().len() >= 32 => None,
            _ => {
                let changed = field.0.handle_event(&TermEvent::Key(key)).is_some();
                self.dirty = changed;
                self.mode = Mode::Editing {
                    field,
                    refused: None,
                };
                None
            }
        }
    }
}
