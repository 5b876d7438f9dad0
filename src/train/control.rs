//! Live control between optimizer steps: pause and resume, edits, skip, checkpoint, stop.

use super::optim::Optimizer;
use super::Trainer;
use crate::config::Preset;
use crate::model::Model;
use crate::protocol::{Command, Event, LogLevel, Phase};
use std::time::{Duration, Instant};

/// Why a phase's epoch loop stopped before its last epoch.
pub enum Interrupt {
    Skip,
    Stop(String),
    Fail(super::RunError),
}

impl Trainer {
    /// Handles pending commands; blocks (without spinning) while the phase's role is paused.
    /// Returns how long it was paused, so throughput figures can leave that out.
    pub(super) fn poll_commands(
        &mut self,
        phase: Phase,
        model: &Model,
        opt: &Optimizer,
    ) -> Result<Duration, Interrupt> {
        let mut paused_for = Duration::ZERO;
        if let Some(e) = self.write_failed.take() {
            return Err(Interrupt::Fail(e));
        }
        loop {
            let paused = self.paused[phase.role().index()];
            let command = if paused {
                let since = Instant::now();
                let received = self.next_command(true)?;
                paused_for += since.elapsed();
                match received {
                    Some(c) => c,
                    None => return Err(Interrupt::Stop("the controlling side went away".into())),
                }
            } else {
                // None: nothing pending, or nobody can send a command any more (then the run
                // finishes as configured).
                match self.next_command(false)? {
                    Some(c) => c,
                    None => return Ok(paused_for),
                }
            };
            match command {
                Command::SetPaused { role, paused } => {
                    if self.paused[role.index()] != paused {
                        self.paused[role.index()] = paused;
                        self.emit(Event::Paused { role, paused });
                    }
                }
                Command::Set { key, value } => self.apply_edit(&key, &value),
                Command::Checkpoint => self.checkpoint(phase, model, opt),
                Command::SkipPhase => {
                    self.log(
                        LogLevel::Info,
                        format!("skipping the rest of the {} phase", phase.as_str()),
                    );
                    return Err(Interrupt::Skip);
                }
                Command::Stop { reason } => {
                    self.checkpoint(phase, model, opt);
                    return Err(Interrupt::Stop(reason));
                }
            }
        }
    }

    fn apply_edit(&mut self, key: &str, value: &str) {
        match self.preset.with_edit(key, value) {
            Ok(edited) => {
                let as_json = |p: &Preset| {
                    p.get(key)
                        .and_then(|v| serde_json::to_value(v).ok())
                        .unwrap_or_default()
                };
                let (old, new) = (as_json(&self.preset), as_json(&edited));
                self.preset = edited;
                self.emit(Event::Edit {
                    key: key.into(),
                    old,
                    new,
                });
            }
            Err(reason) => self.emit(Event::EditRefused {
                key: key.into(),
                value: value.into(),
                reason,
            }),
        }
    }
}
