//! Checkpoints and `--resume`: what a stopped run wrote, and reading it back.

use super::optim::Optimizer;
use super::phase_run::{Best, PhaseRun};
use super::{RunError, Trainer};
use crate::model::Model;
use crate::protocol::summary::BestWeights;
use crate::protocol::summary::{EndState, HintState};
use crate::protocol::{Event, LogLevel, Phase};
use crate::run::checkpoint::{self, Checkpoint};
use tch::Tensor;

/// Puts the method's head and its optimizer back where a checkpoint left them.
pub(super) fn restore_head(
    kit: &mut super::targets::HeadKit,
    state: &HintState,
    run: &crate::run::RunFolder,
) -> Result<(), RunError> {
    let what = "the method's head (`hint`'s regressor, `crd`'s heads and banks)";
    let unreadable = |source| RunError::ResumeFile {
        what: what.into(),
        source,
    };
    kit.head
        .vs_mut()
        .load(run.path(&state.weights))
        .map_err(unreadable)?;
    let saved = Tensor::read_safetensors(run.path(&state.optimizer)).map_err(unreadable)?;
    kit.opt
        .load_state(saved, state.optimizer_steps)
        .map_err(|e| RunError::Resume(format!("{what}: {e}")))
}

/// A checkpoint's weights and its optimizer state beside them.
fn remove_checkpoint_files(weights: &std::path::Path) {
    for extension in [
        "safetensors",
        "optimizer.safetensors",
        "hint.safetensors",
        "hint.optimizer.safetensors",
    ] {
        let _ = std::fs::remove_file(weights.with_extension(extension));
    }
}

impl Trainer {
    /// On resume: takes the finished phases' results and reloads the teacher's weights. A
    /// stopped phase goes on from the checkpoint; a finished student phase whose `epochs` were
    /// raised goes on from its end state, for the extra epochs only.
    pub(super) fn restore_finished_phases(&mut self) -> Result<(), RunError> {
        let Some(ckpt) = self.resume.take() else {
            return Ok(());
        };
        self.results = ckpt.completed.clone();
        self.extending = ckpt.extending.clone();
        if !self.results.iter().any(|r| r.phase == ckpt.phase) {
            self.resume_points.push(ckpt.clone());
        }
        let student_epochs = self.preset.student.epochs;
        let begun = ckpt.student_epochs_begun();
        if student_epochs < begun {
            return Err(RunError::Resume(format!(
                "student.epochs = {student_epochs}, but a student has begun {begun} epochs: \
                 both students end with the same number"
            )));
        }
        let mut extended = Vec::new();
        self.results.retain(|r| {
            let more = r.phase.role() == crate::protocol::Role::Student
                && r.epochs_run < student_epochs
                && r.end_state.is_some();
            if more {
                extended.push(r.clone());
            }
            !more
        });
        // An unfinished extension's student that had not begun its extra epochs.
        for old in &self.extending {
            let waiting = !self.results.iter().any(|r| r.phase == old.phase)
                && !self.resume_points.iter().any(|c| c.phase == old.phase)
                && old.end_state.is_some();
            if waiting {
                extended.push(old.clone());
            }
        }
        for r in &extended {
            // The result as the run completed it stays the reported one until both students
            // have their new results (kept from an earlier, unfinished extension if any).
            if !self.extending.iter().any(|old| old.phase == r.phase) {
                self.extending.push(r.clone());
            }
            let end = r.end_state.clone().expect("kept only with an end state");
            self.resume_points.push(Checkpoint {
                phase: r.phase,
                epoch: r.epochs_run + 1,
                step: end.step,
                epoch_cursor: 0,
                weights: end.weights,
                optimizer: Some(end.optimizer),
                optimizer_steps: end.optimizer_steps,
                best: end.best,
                hint: end.hint,
                train_seconds: r.train_seconds,
                completed: Vec::new(),
                extending: Vec::new(),
                preset: String::new(),
                world_size: ckpt.world_size,
            });
        }
        let mut message = format!(
            "resumed from {} at {} epoch {} step {}; finished phases kept: {}",
            checkpoint::FILE,
            ckpt.phase.as_str(),
            ckpt.epoch,
            ckpt.step,
            match self.results.len() {
                0 => "none".to_string(),
                _ => self
                    .results
                    .iter()
                    .map(|r| r.phase.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            },
        );
        for r in &extended {
            message.push_str(&format!(
                "; {} goes on from epoch {} to {student_epochs}",
                r.phase.as_str(),
                r.epochs_run
            ));
        }
        if let Some(teacher) = self.results.iter().find(|r| r.phase == Phase::Teacher) {
            let path = self.run.path(&teacher.weights);
            let mut model = self.build(Phase::Teacher, self.device)?;
            model
                .vs
                .load(&path)
                .map_err(|source| RunError::ResumeFile {
                    what: format!("loading the finished teacher from {}", path.display()),
                    source,
                })?;
            self.teacher = Some(model);
        }
        self.log(LogLevel::Info, message);
        Ok(())
    }

    /// Writes the current weights, the best weights and `checkpoint.json` (asked for, or on a
    /// stop): resuming goes on from this very step.
    pub(super) fn checkpoint(&mut self, run: &PhaseRun, model: &Model, opt: &Optimizer) {
        let stem = format!(
            "checkpoints/{}-e{}-s{}",
            run.phase.as_str(),
            self.at.epoch,
            self.at.step
        );
        let at = (self.at.epoch, run.epoch_cursor);
        if let Some(weights) = self.write_checkpoint(run, (model, opt), at, &stem) {
            self.emit(Event::Checkpoint {
                path: self.run.path(&weights).display().to_string(),
            });
        }
    }

    /// The checkpoint written after an epoch (`checkpoint_every`): resuming starts the next
    /// epoch. It replaces the previous automatic one, so they do not pile up.
    pub(super) fn auto_checkpoint(&mut self, run: &mut PhaseRun, model: &Model, opt: &Optimizer) {
        let stem = format!("checkpoints/{}-auto-e{}", run.phase.as_str(), self.at.epoch);
        let Some(weights) = self.write_checkpoint(run, (model, opt), (self.at.epoch + 1, 0), &stem)
        else {
            return;
        };
        run.last_checkpoint = std::time::Instant::now();
        if let Some(old) = run.last_auto_checkpoint.replace(weights) {
            remove_checkpoint_files(&self.run.path(&old));
        }
        // Best weights of earlier epochs are no longer referenced.
        let current = run.best.as_ref().map(|b| b.epoch);
        self.remove_stale_best(run.phase, current);
    }

    /// After a phase: `checkpoint.json` holds it among the finished phases (its final weights
    /// written already), so resuming never trains it again.
    pub(super) fn phase_end_checkpoint(&mut self, run: &mut PhaseRun, weights: &str) {
        if self.write_failed.is_some() {
            return;
        }
        let record = Checkpoint {
            phase: run.phase,
            epoch: self.at.epoch + 1,
            step: self.at.step,
            epoch_cursor: 0,
            weights: weights.to_string(),
            optimizer: None,
            optimizer_steps: 0,
            best: None,
            hint: None,
            train_seconds: run.clock.train_seconds(),
            completed: self.results.clone(),
            extending: self.extending_record(),
            preset: self.preset.to_toml(),
            world_size: self.world_size(),
        };
        match self.run.write_json(checkpoint::FILE, &record) {
            Ok(()) => {
                self.remove_extended_files();
                // The phase's own checkpoints are not needed any more.
                if let Some(old) = run.last_auto_checkpoint.take() {
                    remove_checkpoint_files(&self.run.path(&old));
                }
                let kept = self
                    .results
                    .last()
                    .and_then(|r| r.end_state.as_ref()?.best.as_ref())
                    .map(|b| b.epoch);
                self.remove_stale_best(run.phase, kept);
            }
            Err(e) => self.write_failed(checkpoint::FILE, e),
        }
    }

    /// Removes the phase's best-weights files but the one of epoch `keep`.
    fn remove_stale_best(&self, phase: Phase, keep: Option<usize>) {
        let prefix = format!("{}-best-e", phase.as_str());
        let current = keep.map(|e| format!("{prefix}{e}.safetensors"));
        self.remove_checkpoints(&prefix, current.as_deref());
    }

    /// Removes the files in `checkpoints/` whose names start with `prefix` but not with `keep`.
    fn remove_checkpoints(&self, prefix: &str, keep: Option<&str>) {
        let Ok(entries) = std::fs::read_dir(self.run.path("checkpoints")) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(prefix) && !keep.is_some_and(|k| name.starts_with(k)) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// Weights, best weights, then `checkpoint.json` pointing at them (each file replaced
    /// atomically, the record last): a crash at any moment leaves a checkpoint that loads.
    /// `at` is the epoch and the example within it that resuming starts from.
    fn write_checkpoint(
        &mut self,
        run: &PhaseRun,
        (model, opt): (&Model, &Optimizer),
        (epoch, epoch_cursor): (usize, usize),
        stem: &str,
    ) -> Option<String> {
        let state = self.save_state(run, model, opt, stem)?;
        let record = Checkpoint {
            phase: run.phase,
            epoch,
            step: state.step,
            epoch_cursor,
            weights: state.weights.clone(),
            optimizer: Some(state.optimizer),
            optimizer_steps: state.optimizer_steps,
            best: state.best,
            hint: state.hint,
            train_seconds: run.clock.train_seconds(),
            completed: self.results.clone(),
            extending: self.extending_record(),
            preset: self.preset.to_toml(),
            world_size: self.world_size(),
        };
        if let Err(e) = self.run.write_json(checkpoint::FILE, &record) {
            self.write_failed(checkpoint::FILE, e);
            return None;
        }
        Some(state.weights)
    }

    /// A phase's state after its last epoch, kept with its result: a completed run's students
    /// can go on from it for more epochs.
    pub(super) fn end_state(
        &mut self,
        run: &PhaseRun,
        model: &Model,
        opt: &Optimizer,
    ) -> Option<EndState> {
        let stem = format!("checkpoints/{}-last", self.result_stem(run.phase));
        self.save_state(run, model, opt, &stem)
    }

    /// Writes the weights, the optimizer's state and the best weights (each atomically).
    fn save_state(
        &mut self,
        run: &PhaseRun,
        model: &Model,
        opt: &Optimizer,
        stem: &str,
    ) -> Option<EndState> {
        let (weights, optimizer, optimizer_steps) = self.save_trainable(&model.vs, opt, stem)?;
        // The method's head learns alongside the student: its state goes with it.
        let hint = match &run.head {
            Some(kit) => {
                let saved = self.save_trainable(kit.head.vs(), &kit.opt, &format!("{stem}.hint"));
                let (weights, optimizer, optimizer_steps) = saved?;
                Some(HintState {
                    weights,
                    optimizer,
                    optimizer_steps,
                })
            }
            None => None,
        };
        let best = match &run.best {
            Some(best) => {
                let file = format!(
                    "checkpoints/{}-best-e{}.safetensors",
                    run.phase.as_str(),
                    best.epoch
                );
                let record = BestWeights {
                    epoch: best.epoch,
                    val_acc: best.val_acc,
                    weights: file.clone(),
                };
                if let Err(e) = best.save(&self.run.path(&file)) {
                    self.write_failed(&file, e);
                    return None;
                }
                Some(record)
            }
            None => None,
        };
        Some(EndState {
            weights,
            optimizer,
            optimizer_steps,
            step: self.at.step,
            best,
            hint,
        })
    }

    /// Weights and their optimizer's state, each file replaced atomically: the files' names
    /// and the optimizer's step count.
    fn save_trainable(
        &mut self,
        vs: &tch::nn::VarStore,
        opt: &Optimizer,
        stem: &str,
    ) -> Option<(String, String, u64)> {
        let weights = format!("{stem}.safetensors");
        if let Err(e) = crate::run::save_weights(vs, &self.run.path(&weights)) {
            self.write_failed(&weights, e);
            return None;
        }
        let optimizer = format!("{stem}.optimizer.safetensors");
        let (state, steps) = opt.state();
        let saved = crate::run::replace_file(&self.run.path(&optimizer), |tmp| {
            Tensor::write_safetensors(&state, tmp).map_err(std::io::Error::other)
        });
        if let Err(e) = saved {
            self.write_failed(&optimizer, e);
            return None;
        }
        Some((weights, optimizer, steps))
    }

    /// Loads a stopped phase's weights, best weights and position from its checkpoint (into
    /// the phase's `run` starting from it).
    pub(super) fn restore_phase(
        &mut self,
        ckpt: &Checkpoint,
        run: &mut PhaseRun,
        model: &mut Model,
        opt: &mut Optimizer,
    ) -> Result<(), RunError> {
        let unreadable = |what: String| move |source| RunError::ResumeFile { what, source };
        let path = self.run.path(&ckpt.weights);
        model
            .vs
            .load(&path)
            .map_err(unreadable(path.display().to_string()))?;
        if let Some(file) = &ckpt.optimizer {
            let path = self.run.path(file);
            let state =
                Tensor::read_safetensors(&path).map_err(unreadable(path.display().to_string()))?;
            opt.load_state(state, ckpt.optimizer_steps)
                .map_err(|e| RunError::Resume(format!("{}: {e}", path.display())))?;
        }
        if let Some(record) = &ckpt.best {
            let best = Best::load(record, &self.run).map_err(unreadable(record.weights.clone()))?;
            run.best = Some(best);
        }
        // Automatic checkpoints of the phase other than this one are stale: the stopped process
        // may have written several (one kept through a stop), and this process would not know.
        let auto = format!("{}-auto-e", ckpt.phase.as_str());
        let stem = ckpt.weights.trim_start_matches("checkpoints/");
        let keep = format!("{}.", stem.trim_end_matches(".safetensors"));
        self.remove_checkpoints(&auto, Some(&keep));
        if ckpt.weights.contains(&auto) {
            run.last_auto_checkpoint = Some(ckpt.weights.clone());
        }
        // The loop below increments the epoch before training it.
        self.at.epoch = ckpt.epoch.saturating_sub(1);
        self.at.step = ckpt.step;
        run.clock.trained_before(ckpt.train_seconds);
        run.start_cursor = ckpt.epoch_cursor;
        Ok(())
    }
}
