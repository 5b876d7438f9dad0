//! Checkpoints and `--resume`: what a stopped run wrote, and reading it back.

use super::phase::Best;
use super::{RunError, Trainer};
use crate::model::Model;
use crate::protocol::{Event, LogLevel, Phase};
use crate::run::checkpoint::{self, BestWeights, Checkpoint};

impl Trainer {
    /// On resume: takes the finished phases' results and reloads the teacher's weights.
    pub(super) fn restore_finished_phases(&mut self) -> Result<(), RunError> {
        let Some(ckpt) = &self.resume else {
            return Ok(());
        };
        self.results = ckpt.completed.clone();
        let message = format!(
            "resumed from {} at {} epoch {} step {}; finished phases kept: {}; optimizer moments restart",
            checkpoint::FILE,
            ckpt.phase.as_str(),
            ckpt.epoch,
            ckpt.step,
            self.results.iter().map(|r| r.phase.as_str()).collect::<Vec<_>>().join(", "),
        );
        if let Some(teacher) = self.results.iter().find(|r| r.phase == Phase::Teacher) {
            let path = self.run.path(&teacher.weights);
            let mut model = self.build(Phase::Teacher, self.device)?;
            model.vs.load(&path).map_err(|e| {
                RunError::Resume(format!(
                    "loading the finished teacher from {}: {e}",
                    path.display()
                ))
            })?;
            self.teacher = Some(model);
        }
        self.log(LogLevel::Info, message);
        Ok(())
    }

    /// Writes the current weights, the best weights and `checkpoint.json`.
    pub(super) fn checkpoint(&mut self, phase: Phase, model: &Model) {
        let stem = format!(
            "checkpoints/{}-e{}-s{}",
            phase.as_str(),
            self.at.epoch,
            self.at.step
        );
        let weights = format!("{stem}.safetensors");
        let best_file = format!("checkpoints/{}-best.safetensors", phase.as_str());
        let written = model
            .vs
            .save(self.run.path(&weights))
            .and_then(|()| match &self.best {
                Some(best) => best.save(&self.run.path(&best_file)).map(|()| {
                    Some(BestWeights {
                        epoch: best.epoch,
                        val_acc: best.val_acc,
                        weights: best_file.clone(),
                    })
                }),
                None => Ok(None),
            });
        let best = match written {
            Ok(best) => best,
            Err(e) => {
                self.log(
                    LogLevel::Error,
                    format!("writing checkpoint {weights}: {e}"),
                );
                return;
            }
        };
        let record = Checkpoint {
            phase,
            epoch: self.at.epoch,
            step: self.at.step,
            epoch_cursor: self.epoch_cursor,
            weights: weights.clone(),
            best,
            train_seconds: self.phase_train_seconds(),
            completed: self.results.clone(),
            preset: self.preset.to_toml(),
        };
        match self.run.write_json(checkpoint::FILE, &record) {
            Ok(()) => self.emit(Event::Checkpoint {
                path: self.run.path(&weights).display().to_string(),
            }),
            Err(e) => self.log(
                LogLevel::Error,
                format!("writing {}: {e}", checkpoint::FILE),
            ),
        }
    }

    /// Loads a stopped phase's weights, best weights and position from its checkpoint.
    pub(super) fn restore_phase(
        &mut self,
        ckpt: &Checkpoint,
        model: &mut Model,
    ) -> Result<(), RunError> {
        let path = self.run.path(&ckpt.weights);
        model
            .vs
            .load(&path)
            .map_err(|e| RunError::Resume(format!("{}: {e}", path.display())))?;
        if let Some(record) = &ckpt.best {
            let best = Best::load(record, &self.run)
                .map_err(|e| RunError::Resume(format!("{}: {e}", record.weights)))?;
            self.best = Some(best);
        }
        // The loop below increments the epoch before training it.
        self.at.epoch = ckpt.epoch.saturating_sub(1);
        self.at.step = ckpt.step;
        self.train_seconds_before = ckpt.train_seconds;
        Ok(())
    }
}
