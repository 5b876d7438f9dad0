//! One phase from start to result: build, (resume,) train epoch by epoch keeping the
//! best-by-validation weights, then score, time and save them.

use super::control::Interrupt;
use super::epoch::Distilling;
use super::eval::{measure_latency, Evaluation};
use super::optim::Optimizer;
use super::phase_run::{Best, PhaseClock, PhaseRun};
use super::{PhaseEnd, RunError, Trainer};
use crate::model::Model;
use crate::protocol::summary::{EndState, PhaseResult, TeacherOutputs};
use crate::protocol::{Event, LogLevel, Phase, Position, Role, WeightInit};
use crate::random;

use std::collections::BTreeMap;

/// What training chose, for a phase's result.
pub(super) struct Trained {
    best_epoch: usize,
    best_val_acc: f64,
    /// Test accuracy of the last epoch's weights.
    test_acc_last: f64,
    /// The last epoch's test scores when its weights are the ones reported (no second pass).
    reported_test: Option<Evaluation>,
    train_seconds: f64,
    /// Where the distilled student's teacher outputs came from.
    pub(super) teacher_outputs: Option<TeacherOutputs>,
    /// The last epoch's mean of each part of the training loss.
    loss_parts: BTreeMap<String, f64>,
    pub(super) regressor_params: Option<usize>,
    end_state: Option<EndState>,
    /// A student's: where its weights started.
    pub(super) init: Option<WeightInit>,
}

impl Trainer {
    /// Trains (or loads) one phase and records its result; `Err` says why the run ends here.
    pub(super) fn run_phase(&mut self, phase: Phase) -> Result<(), PhaseEnd> {
        self.at = Position {
            phase: Some(phase),
            epoch: 0,
            step: 0,
        };
        self.gpu_phase_begins(phase);
        if phase == Phase::Teacher {
            if let Some(path) = self.preset.teacher.checkpoint.clone() {
                return self.load_teacher(Some(&path));
            }
            if self.preset.teacher.model.is_torchscript() {
                return self.load_teacher(None);
            }
        }
        let clock = PhaseClock::start();
        let cfg = self.net_config(phase).clone();
        // Baseline and distilled students start from the same weights: a fair comparison.
        tch::manual_seed(random::torch_seed(
            self.preset.seed,
            &format!("init/{}", phase.role().table()),
            0,
        ));
        let mut model = self.build(phase, self.device).map_err(PhaseEnd::Failed)?;
        let init = self.start_from_teacher(phase, &model)?;
        let threads = self.set_threads(phase, &model, cfg.batch_size);
        let mut opt = Optimizer::new(&cfg, &model.vs);
        let mut run = PhaseRun::new(phase, clock, threads, &self.preset);
        let mut hint_state = None;
        let point = self.resume_points.iter().position(|c| c.phase == phase);
        if let Some(ckpt) = point.map(|i| self.resume_points.remove(i)) {
            hint_state = ckpt.hint.clone();
            self.restore_phase(&ckpt, &mut run, &mut model, &mut opt)
                .map_err(PhaseEnd::Failed)?;
        }
        // The distilled phase borrows the teacher for its targets and gives it back at the end.
        let teacher = match phase {
            Phase::Distilled => Some(
                self.teacher
                    .take()
                    .ok_or(PhaseEnd::Failed(RunError::NoTeacher))?,
            ),
            _ => None,
        };
        let trained = match &teacher {
            Some(teacher) => {
                self.train_distilled(&mut run, &cfg, teacher, &mut model, &mut opt, hint_state)
            }
            None => self.train_epochs(&mut run, &mut model, &mut opt, None),
        };
        if teacher.is_some() {
            self.teacher = teacher;
        }
        let mut trained = trained?;
        trained.init = init;
        self.finish_phase(run, model, Some(trained));
        Ok(())
    }

    /// Where a student phase's weights start (`student.init`, `student.baseline_init`): with
    /// `teacher`, its weights are selected out of the trained teacher's (`model::select`), the
    /// same for both students. `None` for the teacher.
    fn start_from_teacher(
        &self,
        phase: Phase,
        model: &Model,
    ) -> Result<Option<WeightInit>, PhaseEnd> {
        let init = match phase {
            Phase::Teacher => return Ok(None),
            Phase::Baseline => self.preset.student.baseline_init,
            Phase::Distilled => self.preset.student.init,
        };
        if init == WeightInit::Teacher {
            let teacher = self
                .teacher
                .as_ref()
                .ok_or(PhaseEnd::Failed(RunError::NoTeacher))?;
            let (t, s) = (&self.preset.teacher.model, &self.preset.student.model);
            crate::model::select::select(&teacher.vs, t, &model.vs, s)
                .map_err(|reason| PhaseEnd::Failed(RunError::Init { phase, reason }))?;
        }
        Ok(Some(init))
    }

    /// Sets the intra-op CPU threads of a phase (`threads`) and returns them; logs the choice.
    fn set_threads(&mut self, phase: Phase, model: &Model, batch: usize) -> usize {
        if self.device != tch::Device::Cpu {
            return 0;
        }
        let cores = super::threads::cores();
        let flops = super::threads::step_flops(model, &self.data.input, batch);
        let (n, why) = super::threads::choose(self.preset.threads, flops, cores);
        tch::set_num_threads(n as i32);
        self.log(
            LogLevel::Info,
            format!("{} phase: intra-op threads {why}", phase.as_str()),
        );
        n
    }

    /// The epoch loop of a phase; then restores the best-by-validation weights into `model`.
    pub(super) fn train_epochs(
        &mut self,
        run: &mut PhaseRun,
        model: &mut Model,
        opt: &mut Optimizer,
        distilling: Option<Distilling>,
    ) -> Result<Trained, PhaseEnd> {
        let phase = run.phase;
        let n_train = self.data.train.len();
        let global_batch = self.net_config(phase).batch_size * self.world_size();
        self.emit(Event::PhaseStarted {
            epochs: self.net_config(phase).epochs,
            steps_per_epoch: n_train.div_ceil(global_batch),
            threads: run.threads,
            epoch_steps_done: run.start_cursor.div_ceil(global_batch),
        });
        let mut last_parts = BTreeMap::new();
        while self.at.epoch < self.net_config(phase).epochs {
            self.at.epoch += 1;
            match self.train_epoch(run, model, opt, distilling) {
                Ok(loss) => {
                    last_parts = loss.parts.clone();
                    let val = match self.score(model, &self.data.val) {
                        Ok(val) => val,
                        Err(e) => {
                            // The epoch's steps are done: resuming goes on from its evaluation.
                            self.checkpoint(run, model, opt);
                            return Err(PhaseEnd::Failed(e));
                        }
                    };
                    if run.best.as_ref().is_none_or(|b| val.acc > b.val_acc) {
                        run.best = Some(Best {
                            epoch: self.at.epoch,
                            val_acc: val.acc,
                            weights: Best::snapshot(&model.vs),
                        });
                    }
                    let epochs = self.net_config(phase).epochs;
                    self.emit(Event::Epoch {
                        train_loss: loss.total,
                        train_parts: loss.parts,
                        val_loss: val.loss,
                        val_acc: val.acc,
                        epochs,
                    });
                    let (every, minutes) =
                        (self.preset.checkpoint_every, self.preset.checkpoint_minutes);
                    let since = run.last_checkpoint.elapsed().as_secs_f64() / 60.0;
                    if (every > 0 && self.at.epoch.is_multiple_of(every))
                        || (minutes > 0.0 && since >= minutes)
                    {
                        self.auto_checkpoint(run, model, opt);
                    }
                }
                Err(Interrupt::Skip) => break,
                Err(Interrupt::Stop(reason)) => return Err(PhaseEnd::Stopped(reason)),
                Err(Interrupt::Fail(e)) => return Err(PhaseEnd::Failed(e)),
            }
        }
        let last = self
            .score(model, &self.data.test)
            .map_err(PhaseEnd::Failed)?;
        // Training ends here; what follows is bookkeeping (PyTorch's twin does not time its
        // saves either).
        let train_seconds = run.clock.train_seconds();
        // Students keep their end state: a completed run can give them more epochs. (The
        // teacher cannot go on once students learned from it; its state is not kept.)
        let end_state = (phase.role() == Role::Student)
            .then(|| self.end_state(run, model, opt))
            .flatten();
        let epochs_run = self.at.epoch;
        let best = match run.best.take() {
            Some(best) => best,
            None => Best {
                epoch: epochs_run,
                val_acc: self
                    .score(model, &self.data.val)
                    .map_err(PhaseEnd::Failed)?
                    .acc,
                weights: Best::snapshot(&model.vs),
            },
        };
        best.restore(&mut model.vs);
        Ok(Trained {
            best_epoch: best.epoch,
            best_val_acc: best.val_acc,
            test_acc_last: last.acc,
            reported_test: (best.epoch == epochs_run).then_some(last),
            train_seconds,
            teacher_outputs: None,
            loss_parts: last_parts,
            regressor_params: None,
            end_state,
            init: None,
        })
    }

    /// Evaluates on test, measures latency, saves the weights, records and announces the result.
    /// `trained` is `None` for a teacher loaded from a checkpoint. The phase's `run` ends here.
    fn finish_phase(&mut self, mut run: PhaseRun, model: Model, mut trained: Option<Trained>) {
        let phase = run.phase;
        self.end_phase_allreduce(phase);
        // A loaded teacher was not validated while training: its validation score comes here.
        let scored = match trained.as_mut().map(|t| t.reported_test.take()) {
            Some(Some(test)) => Ok((test, None)),
            Some(None) => self.score(&model, &self.data.test).map(|test| (test, None)),
            None => self
                .score(&model, &self.data.test)
                .and_then(|test| Ok((test, Some(self.score(&model, &self.data.val)?.acc)))),
        };
        let (test, val_acc) = match scored {
            Ok(scores) => scores,
            Err(e) => {
                // No result without its scores; the run stops before its next step.
                self.write_failed.get_or_insert(e);
                return;
            }
        };
        let was_trained = trained.is_some();
        let trained = trained.unwrap_or_else(|| Trained {
            best_epoch: 0,
            best_val_acc: val_acc.unwrap_or(f64::NAN),
            test_acc_last: test.acc,
            reported_test: None,
            train_seconds: 0.0,
            teacher_outputs: None,
            loss_parts: BTreeMap::new(),
            regressor_params: None,
            end_state: None,
            init: None,
        });
        let weights = format!("{}.safetensors", self.result_stem(phase));
        if let Err(e) = crate::run::save_weights(&model.vs, &self.run.path(&weights)) {
            // No result is claimed for weights that are not on disk.
            self.write_failed(&weights, e);
            return;
        }
        // A TorchScript student's result is also its module, trained (a teacher's is its file).
        let script = model
            .net
            .torchscript()
            .filter(|_| phase.role() == Role::Student);
        if let Some(script) = script {
            let file = format!("{}.pt", self.result_stem(phase));
            let saved = script.to_bytes().and_then(|bytes| {
                crate::run::replace_file(&self.run.path(&file), |tmp| std::fs::write(tmp, bytes))
            });
            if let Err(e) = saved {
                self.write_failed(&file, e);
                return;
            }
        }
        let result = PhaseResult {
            phase,
            trained: was_trained,
            epochs_run: self.at.epoch,
            best_epoch: trained.best_epoch,
            best_val_acc: trained.best_val_acc,
            test_acc: test.acc,
            test_acc_last: trained.test_acc_last,
            end_state: trained.end_state,
            threads: run.threads,
            gpu: self.gpu_phase_use(),
            per_class_acc: test.per_class,
            size: model.size(),
            latency: measure_latency(&model, &self.data.test, self.device),
            train_seconds: trained.train_seconds,
            weights,
            model: self.net_config(phase).model.to_string(),
            teacher_outputs: trained.teacher_outputs,
            loss_parts: trained.loss_parts,
            regressor_params: trained.regressor_params,
            init: trained.init,
        };
        self.results.push(result.clone());
        self.phase_end_checkpoint(&mut run, &result.weights);
        if phase == Phase::Teacher {
            self.teacher = Some(model);
        }
        self.emit(Event::PhaseFinished {
            result: Box::new(result),
        });
    }

    /// The teacher from `teacher.checkpoint` (`path`), or a TorchScript teacher (loaded with
    /// its weights when built), instead of training; a file that is missing or holds another
    /// architecture is bad input.
    fn load_teacher(&mut self, path: Option<&std::path::Path>) -> Result<(), PhaseEnd> {
        let run = PhaseRun::new(Phase::Teacher, PhaseClock::start(), 0, &self.preset);
        let mut model = self
            .build(Phase::Teacher, self.device)
            .map_err(PhaseEnd::Failed)?;
        if let Some(path) = path {
            model.vs.load(path).map_err(|source| {
                PhaseEnd::Failed(RunError::LoadTeacher {
                    path: path.display().to_string(),
                    source,
                })
            })?;
        }
        let from = match path {
            Some(path) => path.display().to_string(),
            None => self.preset.teacher.model.to_string(),
        };
        self.emit(Event::PhaseStarted {
            epochs: 0,
            steps_per_epoch: 0,
            threads: run.threads,
            epoch_steps_done: 0,
        });
        self.log(LogLevel::Info, format!("teacher loaded from {from}"));
        self.finish_phase(run, model, None);
        Ok(())
    }
}
