//! Live control between optimizer steps: pause and resume, edits, skip, checkpoint, stop.

use super::optim::Optimizer;
use super::phase_run::PhaseRun;
use super::Trainer;
use crate::config::Preset;
use crate::model::Model;
use crate::protocol::{Command, Event, LogLevel, Phase};
use std::time::{Duration, Instant};

/// Refused edits recorded in a second, at most: a client repeating a bad edit cannot fill
/// `metrics.jsonl`; the others are counted in one log record when the second is over.
pub(super) const REFUSALS_PER_SECOND: usize = 10;

/// The current second's refused edits.
#[derive(Debug, Default)]
pub(super) struct Refusals {
    since: Option<Instant>,
    recorded: usize,
    unrecorded: usize,
}

impl Refusals {
    /// Ends a second that is over; the refusals it left unrecorded, if any.
    fn close(&mut self, now: Instant) -> Option<usize> {
        let over = self
            .since
            .is_some_and(|t| now.saturating_duration_since(t) >= Duration::from_secs(1));
        if !over {
            return None;
        }
        let unrecorded = std::mem::take(self).unrecorded;
        (unrecorded > 0).then_some(unrecorded)
    }

    /// Whether a refusal now is recorded (or only counted).
    fn admit(&mut self, now: Instant) -> bool {
        self.since.get_or_insert(now);
        if self.recorded < REFUSALS_PER_SECOND {
            self.recorded += 1;
            true
        } else {
            self.unrecorded += 1;
            false
        }
    }
}

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
        run: &mut PhaseRun,
        model: &Model,
        opt: &Optimizer,
    ) -> Result<Duration, Interrupt> {
        let phase = run.phase;
        let mut paused_for = Duration::ZERO;
        if let Some(e) = self.write_failed.take() {
            return Err(Interrupt::Fail(e));
        }
        self.note_unrecorded(Instant::now());
        loop {
            let paused = self.paused[phase.role().index()];
            let command = if paused {
                let since = Instant::now();
                self.beat_paused(true);
                let received = self.next_command(true);
                self.beat_paused(false);
                let received = received?;
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
                Command::Set { key, value } => {
                    if self.apply_edit(&key, &value, model, phase) {
                        run.edited(&key, &self.preset);
                    }
                }
                Command::Checkpoint => self.checkpoint(run, model, opt),
                Command::SkipPhase => {
                    self.log(
                        LogLevel::Info,
                        format!("skipping the rest of the {} phase", phase.as_str()),
                    );
                    return Err(Interrupt::Skip);
                }
                Command::Stop { reason } => {
                    self.checkpoint(run, model, opt);
                    return Err(Interrupt::Stop(reason));
                }
            }
        }
    }

    /// Applies an edit to the preset (or refuses it); whether it was applied. A batch size must
    /// fit the training split, and the training network's batch the memory too.
    fn apply_edit(&mut self, key: &str, value: &str, model: &Model, phase: Phase) -> bool {
        let training_batch = format!("{}.batch_size", phase.role().table());
        let checked = self
            .preset
            .with_run_edit(key, value, self.data.train.len())
            .and_then(|edited| {
                // Ranks would judge their own memory and could disagree: one job, one answer.
                if key == training_batch && self.world_size() == 1 {
                    let batch = edited.net(phase.role()).batch_size;
                    super::step_memory::check_batch(model, &self.data.input, batch)?;
                }
                Ok(edited)
            });
        match checked {
            Ok(edited) => {
                let as_json = |p: &Preset| {
                    p.get(key)
                        .and_then(|v| serde_json::to_value(v).ok())
                        .unwrap_or_default()
                };
                let (old, new) = (as_json(&self.preset), as_json(&edited));
                // A method switch resets the hyperparameters: say what they are now.
                let params = if edited.distill.method == self.preset.distill.method {
                    Default::default()
                } else {
                    edited
                        .distill
                        .params
                        .iter()
                        .filter_map(|(k, v)| Some((k.clone(), serde_json::to_value(v).ok()?)))
                        .collect()
                };
                let preset = edited.to_toml();
                self.preset = edited;
                self.emit(Event::Edit {
                    key: key.into(),
                    old,
                    new,
                    params,
                    preset,
                });
                true
            }
            Err(reason) => {
                let now = Instant::now();
                self.note_unrecorded(now);
                if self.refusals.admit(now) {
                    self.emit(Event::EditRefused {
                        key: key.into(),
                        value: value.into(),
                        reason,
                    });
                }
                false
            }
        }
    }

    /// One record for the refused edits of a second past that were only counted.
    fn note_unrecorded(&mut self, now: Instant) {
        if let Some(n) = self.refusals.close(now) {
            self.log(
                LogLevel::Warn,
                format!(
                    "{n} more refused edits not recorded (at most {REFUSALS_PER_SECOND} a second)"
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_past_the_seconds_share_are_counted_once() {
        let t0 = Instant::now();
        let mut r = Refusals::default();
        let recorded = (0..100).filter(|_| r.admit(t0)).count();
        assert_eq!(recorded, REFUSALS_PER_SECOND);
        assert_eq!(r.close(t0 + Duration::from_millis(500)), None);
        assert_eq!(r.close(t0 + Duration::from_secs(1)), Some(90));
        assert_eq!(r.close(t0 + Duration::from_secs(5)), None);
        assert!(r.admit(t0 + Duration::from_secs(5)));
    }
}
