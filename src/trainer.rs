//! The trainer: teacher -> baseline student -> distilled student, on its own OS thread.
//!
//! It reads `Command`s between optimizer steps and publishes `Stamped` events. It never waits on
//! a consumer: step metrics go through a bounded channel with `try_send` (dropped when full),
//! everything else through an unbounded channel that carries only a few events per epoch.
//! Every event is also appended to the run folder's `metrics.jsonl` here, so the TUI and batch
//! mode leave identical run folders.

use crate::checkpoint::{self, BestWeights, Checkpoint};
use crate::data::{Split, Splits};
use crate::distill::{self, DistillParams};
use crate::events::{Command, Event, LogLevel, Phase, Position, Role, Stamped};
use crate::model::{self, Mlp};
use crate::preset::{NetConfig, OptimizerKind, Preset};
use crate::run::RunFolder;
use crate::seed;
use crate::summary::{Comparison, Latency, PhaseResult, RunStatus, RunSummary};
use rand::{rngs::StdRng, seq::SliceRandom, SeedableRng};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tch::{nn, nn::OptimizerConfig, Device, Kind, Tensor};
use tokio::sync::mpsc as tokio_mpsc;

/// Capacity of the step-metrics channel; when a consumer lags this far behind, steps are dropped.
const STEP_CHANNEL_CAPACITY: usize = 1024;

/// What the trainer needs to run.
pub struct TrainerSetup {
    pub preset: Preset,
    pub data: Splits,
    pub device: Device,
    pub run: RunFolder,
    /// Where a stopped run left off (`--resume`).
    pub resume: Option<Checkpoint>,
}

/// The consumer's side of a running trainer.
pub struct TrainerHandle {
    pub commands: mpsc::Sender<Command>,
    /// Phase changes, epochs, edits, logs, the end: reliable, low volume.
    pub events: tokio_mpsc::UnboundedReceiver<Stamped>,
    /// Step metrics: coalesced by the sender's cadence, dropped if the consumer lags.
    pub steps: tokio_mpsc::Receiver<Stamped>,
    pub thread: std::thread::JoinHandle<RunOutcome>,
}

/// How a run ended.
#[derive(Debug)]
pub enum RunOutcome {
    Completed(RunSummary),
    Stopped { reason: String, summary: RunSummary },
    Failed(String),
}

/// Waits for the trainer thread; a panic there becomes a failed run.
pub fn join(thread: std::thread::JoinHandle<RunOutcome>) -> RunOutcome {
    thread
        .join()
        .unwrap_or_else(|_| RunOutcome::Failed("the trainer thread panicked".into()))
}

/// Starts the trainer thread.
pub fn spawn(setup: TrainerSetup) -> TrainerHandle {
    let (command_tx, command_rx) = mpsc::channel();
    let (event_tx, event_rx) = tokio_mpsc::unbounded_channel();
    let (step_tx, step_rx) = tokio_mpsc::channel(STEP_CHANNEL_CAPACITY);
    let thread = std::thread::Builder::new()
        .name("trainer".into())
        .spawn(move || {
            let mut trainer = Trainer::new(
                setup,
                command_rx,
                Outbox {
                    events: event_tx,
                    steps: step_tx,
                },
            );
            trainer.run()
        })
        .expect("spawning the trainer thread");
    TrainerHandle {
        commands: command_tx,
        events: event_rx,
        steps: step_rx,
        thread,
    }
}

struct Outbox {
    events: tokio_mpsc::UnboundedSender<Stamped>,
    steps: tokio_mpsc::Sender<Stamped>,
}

/// Why a phase stopped before its last epoch.
enum Interrupt {
    Skip,
    Stop(String),
}

/// A trained (or loaded) network and its variables.
struct Net {
    vs: nn::VarStore,
    mlp: Mlp,
}

impl Net {
    fn new(cfg: &NetConfig, data: &Splits, device: Device) -> Net {
        let vs = nn::VarStore::new(device);
        let mlp = Mlp::new(&vs.root(), &cfg.model, data.input_dim, data.num_classes);
        Net { vs, mlp }
    }

    fn logits(&self, xs: &Tensor) -> Tensor {
        tch::no_grad(|| self.mlp.forward_t(xs, false))
    }
}

/// Accuracy and loss of a model on a split.
struct Evaluation {
    acc: f64,
    loss: f64,
    per_class: Vec<f64>,
}

const EVAL_CHUNK: i64 = 8192;

fn evaluate(net: &Net, split: &Split, num_classes: usize) -> Evaluation {
    let n = split.len() as i64;
    if n == 0 {
        return Evaluation {
            acc: f64::NAN,
            loss: f64::NAN,
            per_class: vec![f64::NAN; num_classes],
        };
    }
    let mut correct = Tensor::zeros([num_classes as i64], (Kind::Int64, split.labels.device()));
    let mut loss_sum = 0.0;
    for start in (0..n).step_by(EVAL_CHUNK as usize) {
        let len = EVAL_CHUNK.min(n - start);
        let x = split.features.narrow(0, start, len);
        let y = split.labels.narrow(0, start, len);
        let logits = net.logits(&x);
        loss_sum += distill::cross_entropy(&logits, &y).double_value(&[]) * len as f64;
        let hits = logits.argmax(-1, false).eq_tensor(&y);
        correct += y
            .masked_select(&hits)
            .bincount::<Tensor>(None, num_classes as i64);
    }
    let totals: Vec<i64> = Vec::try_from(split.labels.bincount::<Tensor>(None, num_classes as i64))
        .unwrap_or_default();
    let correct: Vec<i64> = Vec::try_from(correct).unwrap_or_default();
    let per_class = correct
        .iter()
        .zip(&totals)
        .map(|(&c, &t)| if t > 0 { c as f64 / t as f64 } else { f64::NAN })
        .collect();
    Evaluation {
        acc: correct.iter().sum::<i64>() as f64 / n as f64,
        loss: loss_sum / n as f64,
        per_class,
    }
}

/// Median forward time at batch 1 and per example at a large batch.
fn measure_latency(net: &Net, test: &Split, device: Device) -> Latency {
    fn median_us(mut f: impl FnMut(), device: Device, reps: usize) -> f64 {
        for _ in 0..reps.min(10) {
            f();
        }
        let mut times: Vec<f64> = (0..reps)
            .map(|_| {
                let t = Instant::now();
                f();
                if let Device::Cuda(i) = device {
                    tch::Cuda::synchronize(i as i64);
                }
                t.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        times.sort_by(f64::total_cmp);
        times[times.len() / 2]
    }
    let one = test.features.narrow(0, 0, 1);
    let batch_size = test.len().min(1024);
    let many = test.features.narrow(0, 0, batch_size as i64);
    // One example is served by one CPU thread: splitting a tiny matmul over threads only adds
    // wake-up latency, which on a busy machine swamps the figure.
    let threads = tch::get_num_threads();
    tch::set_num_threads(1);
    let batch1_us = median_us(|| drop(net.logits(&one)), device, 200);
    tch::set_num_threads(threads);
    let batch_us = median_us(|| drop(net.logits(&many)), device, 20);
    Latency {
        batch1_us,
        per_sample_us: batch_us / batch_size as f64,
        batch_size,
    }
}

/// What training chose, for a phase's result.
struct Trained {
    best_epoch: usize,
    best_val_acc: f64,
    /// Test accuracy of the last epoch's weights.
    test_acc_last: f64,
    train_seconds: f64,
}

/// The best-by-validation weights seen so far in a phase.
struct Best {
    epoch: usize,
    val_acc: f64,
    weights: Vec<(String, Tensor)>,
}

impl Best {
    fn snapshot(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
        tch::no_grad(|| {
            vs.variables()
                .into_iter()
                .map(|(k, v)| (k, v.copy()))
                .collect()
        })
    }

    fn save(&self, path: &std::path::Path) -> Result<(), tch::TchError> {
        Tensor::write_safetensors(&self.weights, path)
    }

    fn load(record: &BestWeights, run: &RunFolder) -> Result<Best, tch::TchError> {
        Ok(Best {
            epoch: record.epoch,
            val_acc: record.val_acc,
            weights: Tensor::read_safetensors(run.path(&record.weights))?,
        })
    }

    fn restore(&self, vs: &mut nn::VarStore) {
        let vars = vs.variables();
        tch::no_grad(|| {
            for (name, saved) in &self.weights {
                vars[name].shallow_clone().copy_(saved);
            }
        });
    }
}

struct Trainer {
    preset: Preset,
    data: Splits,
    device: Device,
    run: RunFolder,
    commands: mpsc::Receiver<Command>,
    out: Outbox,
    started: Instant,
    at: Position,
    paused: [bool; 2],
    teacher: Option<Net>,
    results: Vec<PhaseResult>,
    /// The current phase's best-by-validation weights.
    best: Option<Best>,
    /// Training examples of the current epoch already used.
    epoch_cursor: usize,
    /// Training time of the current phase before this process (resumed runs).
    train_seconds_before: f64,
    phase_started: Instant,
    /// Time the current phase spent paused (left out of its training time).
    paused_total: Duration,
    resume: Option<Checkpoint>,
}

impl Trainer {
    fn new(setup: TrainerSetup, commands: mpsc::Receiver<Command>, out: Outbox) -> Trainer {
        let TrainerSetup {
            preset,
            data,
            device,
            run,
            resume,
        } = setup;
        let data = Splits {
            train: data.train.to_device(device),
            val: data.val.to_device(device),
            test: data.test.to_device(device),
            ..data
        };
        Trainer {
            preset,
            data,
            device,
            run,
            commands,
            out,
            started: Instant::now(),
            at: Position {
                phase: None,
                epoch: 0,
                step: 0,
            },
            paused: [false; 2],
            teacher: None,
            results: Vec::new(),
            best: None,
            epoch_cursor: 0,
            train_seconds_before: 0.0,
            phase_started: Instant::now(),
            paused_total: Duration::ZERO,
            resume,
        }
    }

    fn stamp(&self, event: Event) -> Stamped {
        Stamped {
            at: self.at,
            wall_time: self.started.elapsed().as_secs_f64(),
            event,
        }
    }

    /// Records an event in the run folder and sends it to the consumer (who may be gone).
    fn emit(&mut self, event: Event) {
        let stamped = self.stamp(event);
        // Flushed at once: these are rare, and a paused or killed run should show them.
        if let Err(e) = self.run.record(&stamped).and_then(|()| self.run.flush()) {
            let _ = self.out.events.send(self.stamp(Event::Log {
                level: LogLevel::Error,
                message: format!("writing metrics.jsonl: {e}"),
            }));
        }
        let _ = self.out.events.send(stamped);
    }

    /// Step metrics: recorded always, sent only if the consumer keeps up.
    fn emit_step(&mut self, event: Event) {
        let stamped = self.stamp(event);
        let _ = self.run.record(&stamped);
        let _ = self.out.steps.try_send(stamped);
    }

    fn log(&mut self, level: LogLevel, message: String) {
        self.emit(Event::Log { level, message });
    }

    fn run(&mut self) -> RunOutcome {
        let sizes = {
            let t = Net::new(&self.preset.teacher, &self.data, Device::Cpu);
            let s = Net::new(&self.preset.student, &self.data, Device::Cpu);
            (model::size_of(&t.vs), model::size_of(&s.vs))
        };
        self.emit(Event::RunStarted {
            run_dir: self.run.dir().display().to_string(),
            device: crate::device::describe(self.device),
            data: self.data.description.clone(),
            train_examples: self.data.train.len(),
            teacher: sizes.0,
            student: sizes.1,
            preset: self.preset.to_toml(),
        });
        let mut phases = vec![Phase::Teacher];
        if self.preset.student.trains_baseline() {
            phases.push(Phase::Baseline);
        }
        phases.push(Phase::Distilled);
        if let Err(message) = self.restore_finished_phases() {
            self.log(LogLevel::Error, message.clone());
            return RunOutcome::Failed(message);
        }
        phases.retain(|p| !self.results.iter().any(|r| r.phase == *p));
        let mut stop = None;
        for phase in phases {
            if let Err(reason) = self.run_phase(phase) {
                stop = Some(reason);
                break;
            }
        }
        let status = if stop.is_some() {
            RunStatus::Interrupted
        } else {
            RunStatus::Completed
        };
        let _ = self.run.flush();
        match crate::plots::write(self.run.dir()) {
            Ok(files) if !files.is_empty() => {
                let names: Vec<String> = files
                    .iter()
                    .filter_map(|f| f.file_name())
                    .map(|f| f.to_string_lossy().into_owned())
                    .collect();
                self.log(LogLevel::Info, format!("plots: {}", names.join(", ")));
            }
            Ok(_) => {}
            Err(e) => self.log(LogLevel::Warn, format!("plots not written: {e}")),
        }
        let summary = self.summary(status);
        if let Err(e) = self.run.write_json("summary.json", &summary) {
            self.log(LogLevel::Error, format!("writing summary.json: {e}"));
        }
        self.at.phase = None;
        self.emit(Event::Finished {
            summary: Box::new(summary.clone()),
        });
        if let Err(e) = self.run.flush() {
            return RunOutcome::Failed(format!("writing metrics.jsonl: {e}"));
        }
        match stop {
            Some(reason) => RunOutcome::Stopped { reason, summary },
            None => RunOutcome::Completed(summary),
        }
    }

    fn summary(&self, status: RunStatus) -> RunSummary {
        let find = |p: Phase| self.results.iter().find(|r| r.phase == p).cloned();
        let (teacher, baseline, distilled) = (
            find(Phase::Teacher),
            find(Phase::Baseline),
            find(Phase::Distilled),
        );
        let comparison = teacher
            .as_ref()
            .and_then(|t| Comparison::of(t, baseline.as_ref(), distilled.as_ref()));
        RunSummary {
            status,
            name: self.preset.name.clone(),
            seed: self.preset.seed,
            device: crate::device::describe(self.device),
            data: self.data.description.clone(),
            wall_seconds: self.started.elapsed().as_secs_f64(),
            teacher,
            baseline,
            distilled,
            comparison,
        }
    }

    fn net_config(&self, phase: Phase) -> &NetConfig {
        match phase.role() {
            Role::Teacher => &self.preset.teacher,
            Role::Student => &self.preset.student,
        }
    }

    fn distill_params(&self) -> DistillParams {
        let d = &self.preset.distill;
        DistillParams {
            method: d.method,
            temperature: d.temperature,
            alpha: d.alpha,
        }
    }

    /// Handles pending commands; blocks (without spinning) while the phase's role is paused.
    /// Returns how long it was paused, so throughput figures can leave that out.
    fn poll_commands(&mut self, phase: Phase, net: &Net) -> Result<Duration, Interrupt> {
        let mut paused_for = Duration::ZERO;
        loop {
            let paused = self.paused[phase.role().index()];
            let command = if paused {
                let since = Instant::now();
                let received = self.commands.recv();
                paused_for += since.elapsed();
                match received {
                    Ok(c) => c,
                    Err(_) => return Err(Interrupt::Stop("the controlling side went away".into())),
                }
            } else {
                match self.commands.try_recv() {
                    Ok(c) => c,
                    Err(mpsc::TryRecvError::Empty) => return Ok(paused_for),
                    // Nobody can resume or stop us any more: finish the run as configured.
                    Err(mpsc::TryRecvError::Disconnected) => return Ok(paused_for),
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
                Command::Checkpoint => self.checkpoint(phase, net),
                Command::SkipPhase => {
                    self.log(
                        LogLevel::Info,
                        format!("skipping the rest of the {} phase", phase.as_str()),
                    );
                    return Err(Interrupt::Skip);
                }
                Command::Stop { reason } => {
                    self.checkpoint(phase, net);
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

    /// On resume: takes the finished phases' results and reloads the teacher's weights.
    fn restore_finished_phases(&mut self) -> Result<(), String> {
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
            let mut net = Net::new(&self.preset.teacher, &self.data, self.device);
            let path = self.run.path(&teacher.weights);
            net.vs.load(&path).map_err(|e| {
                format!("loading the finished teacher from {}: {e}", path.display())
            })?;
            self.teacher = Some(net);
        }
        self.log(LogLevel::Info, message);
        Ok(())
    }

    /// Writes the current weights, the best weights and `checkpoint.json`.
    fn checkpoint(&mut self, phase: Phase, net: &Net) {
        let stem = format!(
            "checkpoints/{}-e{}-s{}",
            phase.as_str(),
            self.at.epoch,
            self.at.step
        );
        let weights = format!("{stem}.safetensors");
        let best_file = format!("checkpoints/{}-best.safetensors", phase.as_str());
        let written = net
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

    fn optimizer(cfg: &NetConfig, vs: &nn::VarStore) -> Result<nn::Optimizer, tch::TchError> {
        match cfg.optimizer {
            OptimizerKind::Adam => nn::Adam {
                wd: cfg.weight_decay,
                ..Default::default()
            }
            .build(vs, cfg.lr),
            OptimizerKind::Adamw => nn::AdamW {
                wd: cfg.weight_decay,
                ..Default::default()
            }
            .build(vs, cfg.lr),
            OptimizerKind::Sgd => nn::Sgd {
                momentum: cfg.momentum,
                wd: cfg.weight_decay,
                ..Default::default()
            }
            .build(vs, cfg.lr),
        }
    }

    /// Trains (or loads) one phase; `Err` carries the reason the run stopped.
    fn run_phase(&mut self, phase: Phase) -> Result<(), String> {
        self.at = Position {
            phase: Some(phase),
            epoch: 0,
            step: 0,
        };
        if phase == Phase::Teacher {
            if let Some(path) = self.preset.teacher.checkpoint.clone() {
                return self.load_teacher(&path);
            }
        }
        self.phase_started = Instant::now();
        self.paused_total = Duration::ZERO;
        self.train_seconds_before = 0.0;
        self.best = None;
        let cfg = self.net_config(phase).clone();
        // Baseline and distilled students start from the same weights: a fair comparison.
        tch::manual_seed(seed::torch_seed(
            self.preset.seed,
            &format!("init/{}", phase.role().table()),
            0,
        ));
        let mut net = Net::new(&cfg, &self.data, self.device);
        let mut opt = match Self::optimizer(&cfg, &net.vs) {
            Ok(o) => o,
            Err(e) => return Err(format!("building the optimizer: {e}")),
        };
        let teacher_logits = match phase {
            Phase::Distilled => self
                .teacher
                .as_ref()
                .map(|t| t.logits(&self.data.train.features)),
            _ => None,
        };
        let mut start_cursor = 0;
        if let Some(ckpt) = self.resume.take().filter(|c| c.phase == phase) {
            start_cursor = ckpt.epoch_cursor;
            if let Err(message) = self.restore_phase(&ckpt, &mut net) {
                self.log(LogLevel::Error, message.clone());
                return Err(message);
            }
        }
        let n_train = self.data.train.len();
        self.emit(Event::PhaseStarted {
            epochs: cfg.epochs,
            steps_per_epoch: n_train.div_ceil(cfg.batch_size),
        });
        let mut interrupt = None;
        while self.at.epoch < self.net_config(phase).epochs {
            self.at.epoch += 1;
            let cursor = std::mem::take(&mut start_cursor);
            match self.train_epoch(phase, &net, &mut opt, teacher_logits.as_ref(), cursor) {
                Ok(train_loss) => {
                    let val = evaluate(&net, &self.data.val, self.data.num_classes);
                    if self.best.as_ref().is_none_or(|b| val.acc > b.val_acc) {
                        self.best = Some(Best {
                            epoch: self.at.epoch,
                            val_acc: val.acc,
                            weights: Best::snapshot(&net.vs),
                        });
                    }
                    let epochs = self.net_config(phase).epochs;
                    self.emit(Event::Epoch {
                        train_loss,
                        val_loss: val.loss,
                        val_acc: val.acc,
                        epochs,
                    });
                }
                Err(i) => {
                    interrupt = Some(i);
                    break;
                }
            }
        }
        if let Some(Interrupt::Stop(reason)) = interrupt {
            return Err(reason);
        }
        let last = evaluate(&net, &self.data.test, self.data.num_classes);
        let epochs_run = self.at.epoch;
        let best = self.best.take().unwrap_or_else(|| {
            let val = evaluate(&net, &self.data.val, self.data.num_classes);
            Best {
                epoch: epochs_run,
                val_acc: val.acc,
                weights: Best::snapshot(&net.vs),
            }
        });
        best.restore(&mut net.vs);
        let trained = Trained {
            best_epoch: best.epoch,
            best_val_acc: best.val_acc,
            test_acc_last: last.acc,
            train_seconds: self.phase_train_seconds(),
        };
        self.finish_phase(phase, net, Some(trained));
        Ok(())
    }

    /// Training time of the current phase, pauses left out, earlier processes included.
    fn phase_train_seconds(&self) -> f64 {
        self.train_seconds_before + (self.phase_started.elapsed() - self.paused_total).as_secs_f64()
    }

    /// Loads a stopped phase's weights, best weights and position from its checkpoint.
    fn restore_phase(&mut self, ckpt: &Checkpoint, net: &mut Net) -> Result<(), String> {
        let path = self.run.path(&ckpt.weights);
        net.vs
            .load(&path)
            .map_err(|e| format!("resuming from {}: {e}", path.display()))?;
        if let Some(record) = &ckpt.best {
            let best = Best::load(record, &self.run)
                .map_err(|e| format!("resuming from {}: {e}", record.weights))?;
            self.best = Some(best);
        }
        // The loop below increments the epoch before training it.
        self.at.epoch = ckpt.epoch.saturating_sub(1);
        self.at.step = ckpt.step;
        self.train_seconds_before = ckpt.train_seconds;
        Ok(())
    }

    /// Evaluates on test, measures latency, saves the weights, records and announces the result.
    /// `trained` is `None` for a teacher loaded from a checkpoint.
    fn finish_phase(&mut self, phase: Phase, net: Net, trained: Option<Trained>) {
        let test = evaluate(&net, &self.data.test, self.data.num_classes);
        let was_trained = trained.is_some();
        let trained = trained.unwrap_or_else(|| Trained {
            best_epoch: 0,
            best_val_acc: evaluate(&net, &self.data.val, self.data.num_classes).acc,
            test_acc_last: test.acc,
            train_seconds: 0.0,
        });
        let weights = format!("{}.safetensors", phase.as_str());
        if let Err(e) = net.vs.save(self.run.path(&weights)) {
            self.log(LogLevel::Error, format!("writing {weights}: {e}"));
        }
        let result = PhaseResult {
            phase,
            trained: was_trained,
            epochs_run: self.at.epoch,
            best_epoch: trained.best_epoch,
            best_val_acc: trained.best_val_acc,
            test_acc: test.acc,
            test_acc_last: trained.test_acc_last,
            per_class_acc: test.per_class,
            size: model::size_of(&net.vs),
            latency: measure_latency(&net, &self.data.test, self.device),
            train_seconds: trained.train_seconds,
            weights,
        };
        self.results.push(result.clone());
        if phase == Phase::Teacher {
            self.teacher = Some(net);
        }
        self.emit(Event::PhaseFinished {
            result: Box::new(result),
        });
    }

    fn load_teacher(&mut self, path: &std::path::Path) -> Result<(), String> {
        let mut net = Net::new(&self.preset.teacher, &self.data, self.device);
        if let Err(e) = net.vs.load(path) {
            let message = format!("loading the teacher from {}: {e}", path.display());
            self.log(LogLevel::Error, message.clone());
            return Err(message);
        }
        self.emit(Event::PhaseStarted {
            epochs: 0,
            steps_per_epoch: 0,
        });
        self.log(
            LogLevel::Info,
            format!("teacher loaded from {}", path.display()),
        );
        self.finish_phase(Phase::Teacher, net, None);
        Ok(())
    }

    /// One pass over the training data; returns the mean training loss.
    fn train_epoch(
        &mut self,
        phase: Phase,
        net: &Net,
        opt: &mut nn::Optimizer,
        teacher_logits: Option<&Tensor>,
        start_cursor: usize,
    ) -> Result<f64, Interrupt> {
        let s = self.preset.seed;
        let tag = phase.as_str();
        // Per-epoch seeds: an epoch's shuffling and dropout replay from (seed, phase, epoch) alone.
        tch::manual_seed(seed::torch_seed(
            s,
            &format!("dropout/{tag}"),
            self.at.epoch as u64,
        ));
        let mut order: Vec<i64> = (0..self.data.train.len() as i64).collect();
        order.shuffle(&mut StdRng::seed_from_u64(seed::derive(
            s,
            &format!("shuffle/{tag}"),
            self.at.epoch as u64,
        )));
        let order = Tensor::from_slice(&order).to_device(self.device);
        let n = order.size()[0];
        let (mut epoch_loss, mut epoch_batches) = (0.0, 0usize);
        let mut window_loss = Tensor::zeros([], (Kind::Float, self.device));
        let (mut window_steps, mut window_samples, mut window_start) =
            (0usize, 0usize, Instant::now());
        // A resumed epoch skips the examples it had already used (same order: same seed).
        let mut cursor = start_cursor as i64;
        while cursor < n {
            self.epoch_cursor = cursor as usize;
            let paused_for = self.poll_commands(phase, net)?;
            window_start += paused_for;
            self.paused_total += paused_for;
            let cfg = self.net_config(phase);
            let (lr, batch) = (cfg.lr, cfg.batch_size as i64);
            opt.set_lr(lr);
            let idx = order.narrow(0, cursor, batch.min(n - cursor));
            cursor += batch;
            let x = self.data.train.features.index_select(0, &idx);
            let y = self.data.train.labels.index_select(0, &idx);
            let logits = net.mlp.forward_t(&x, true);
            let loss = match (phase, teacher_logits) {
                (Phase::Distilled, Some(t)) => distill::student_loss(
                    self.distill_params(),
                    &logits,
                    &t.index_select(0, &idx),
                    &y,
                ),
                _ => distill::cross_entropy(&logits, &y),
            };
            opt.backward_step(&loss);
            // Summed on the device; read back only when logging, to avoid a sync every step.
            window_loss += loss.detach();
            window_steps += 1;
            window_samples += idx.size()[0] as usize;
            self.at.step += 1;
            if self.at.step == 3 && crate::fault::injected("trainer-panic") {
                panic!("injected fault: trainer-panic");
            }
            if window_steps >= self.preset.log_every || cursor >= n {
                let mean = window_loss.double_value(&[]) / window_steps as f64;
                if !mean.is_finite() {
                    self.log(
                        LogLevel::Warn,
                        format!(
                            "{tag} loss is {mean} at step {}; try a lower lr",
                            self.at.step
                        ),
                    );
                }
                let samples_per_sec =
                    window_samples as f64 / window_start.elapsed().as_secs_f64().max(1e-9);
                self.emit_step(Event::Step {
                    loss: mean,
                    lr,
                    samples_per_sec,
                });
                epoch_loss += mean * window_steps as f64;
                epoch_batches += window_steps;
                window_loss = Tensor::zeros([], (Kind::Float, self.device));
                (window_steps, window_samples, window_start) = (0, 0, Instant::now());
            }
        }
        Ok(epoch_loss / epoch_batches.max(1) as f64)
    }
}
