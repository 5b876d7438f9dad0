//! The trainer: teacher -> baseline student -> distilled student, on its own OS thread.
//!
//! It reads `Command`s between optimizer steps and publishes `Stamped` events. It never waits on
//! a consumer: step metrics go through a bounded channel with `try_send` (dropped when full),
//! everything else through an unbounded channel that carries only a few events per epoch.
//! Every event is also appended to the run folder's `metrics.jsonl` here, so the TUI and batch
//! mode leave identical run folders.
//!
//! The `Trainer` keeps what lasts for the run; a `PhaseRun` (`phase_run.rs`) what lasts for one
//! phase. Files: `phase.rs` (one phase from start to result), `distilled.rs` (the distilled
//! phase's teacher targets and `hint` regressor), `epoch.rs` (an epoch: its batches, each step),
//! `window.rs` (step records: losses summed between two), `eval.rs` (accuracy, latency),
//! `control.rs` (commands and live edits), `resume.rs` (checkpoints), `extension.rs` (a
//! completed run's students given more epochs), `parallel.rs` (several ranks: batch shares, the
//! gradient all-reduce, the command log).

pub mod cache;
mod control;
mod distilled;
mod epoch;
mod error;
mod eval;
mod extension;
mod gpu_watch;
mod herald;
pub mod optim;
mod parallel;
mod phase;
mod phase_run;
mod rank_watch;
mod resume;
mod step_memory;
mod targets;
pub mod threads;
mod window;

use crate::config::{NetConfig, Preset};
use crate::data::Splits;
use crate::model::Model;
use crate::protocol::summary::{Comparison, PhaseResult, RunStatus, RunSummary};
use crate::protocol::{Command, Event, LogLevel, Phase, Position, Stamped};
use crate::run::checkpoint::Checkpoint;
use crate::run::RunFolder;
use std::sync::mpsc;
use std::time::Instant;
use tch::Device;
use tokio::sync::mpsc as tokio_mpsc;

pub use error::RunError;
pub use eval::logits_in_chunks;

/// Capacity of the step-metrics channel; when a consumer lags this far behind, steps are dropped.
pub const STEP_CHANNEL_CAPACITY: usize = 1024;

/// What the trainer needs to run.
pub struct TrainerSetup {
    pub preset: Preset,
    pub data: Splits,
    pub device: Device,
    pub run: RunFolder,
    /// Where a stopped run left off (`--resume`).
    pub resume: Option<Checkpoint>,
    /// The group of a data-parallel job (`dist`); `None` for one process.
    pub world: Option<crate::collective::World>,
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

/// How a run ended. A user's stop is not an error; a failure is.
#[derive(Debug)]
pub enum RunOutcome {
    Completed(RunSummary),
    Stopped { reason: String, summary: RunSummary },
    Failed(RunError),
}

/// How a phase ended early.
enum PhaseEnd {
    Stopped(String),
    Failed(RunError),
}

/// How a run that a front end drove ended, and the signal that stopped it, if any.
pub struct Ended {
    pub outcome: RunOutcome,
    pub signal: Option<i32>,
}

impl Ended {
    /// Waits for the trainer thread (a panic there is a failed run) once the consumer is done.
    pub fn join(thread: std::thread::JoinHandle<RunOutcome>, signal: Option<i32>) -> Ended {
        Ended {
            outcome: join(thread),
            signal,
        }
    }
}

/// Waits for the trainer thread; a panic there becomes a failed run.
pub fn join(thread: std::thread::JoinHandle<RunOutcome>) -> RunOutcome {
    thread
        .join()
        .unwrap_or(RunOutcome::Failed(RunError::Panicked))
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

/// What lasts for the run; what lasts for one phase is its `PhaseRun`.
struct Trainer {
    /// The preset, live edits applied.
    preset: Preset,
    data: Splits,
    device: Device,
    run: RunFolder,
    commands: mpsc::Receiver<Command>,
    /// A data-parallel rank's heartbeat (and, on rank 0, every rank's, for the front end);
    /// declared before `parallel` so that it stops before the group (and its store) goes.
    rank_watch: Option<rank_watch::RankWatch>,
    /// The group and command log of a data-parallel job.
    parallel: Option<parallel::Parallel>,
    out: Outbox,
    started: Instant,
    /// Where the run stands: every event is stamped with it.
    at: Position,
    /// Whether each role is paused (a pause asked for in advance holds its next phase).
    paused: [bool; 2],
    /// The trained (or loaded) teacher, once its phase is over.
    teacher: Option<Model>,
    /// The finished phases' results.
    results: Vec<PhaseResult>,
    /// A completed run's student results while the students train for more epochs: the
    /// reported ones until every student has its new result.
    extending: Vec<PhaseResult>,
    /// The checkpoint of `--resume`, until the finished phases are restored from it.
    resume: Option<Checkpoint>,
    /// Where phases go on from on a resume: the stopped phase's checkpoint, and the end states
    /// of finished students given more epochs.
    resume_points: Vec<Checkpoint>,
    /// The first write (or collective) that failed; the run stops at the next step.
    write_failed: Option<RunError>,
    /// Refused edits of the current second (recorded at most `REFUSALS_PER_SECOND`).
    refusals: control::Refusals,
    /// The run's GPUs, read on a thread of their own; `None` on the CPU or without a driver.
    gpu_watch: Option<gpu_watch::GpuWatch>,
}

impl Trainer {
    fn new(setup: TrainerSetup, commands: mpsc::Receiver<Command>, out: Outbox) -> Trainer {
        let TrainerSetup {
            preset,
            data,
            device,
            run,
            resume,
            world,
        } = setup;
        let data = Splits {
            train: data.train.to_device(device),
            val: data.val.to_device(device),
            test: data.test.to_device(device),
            ..data
        };
        let started = Instant::now();
        let gpu_watch = gpu_watch::GpuWatch::start(device, out.steps.clone(), started);
        let rank_watch = world.as_ref().and_then(|w| {
            let gpu = match &gpu_watch {
                Some(watch) => watch.latest(),
                None => Box::new(|| None),
            };
            rank_watch::RankWatch::start(w, gpu, out.steps.clone(), started)
        });
        Trainer {
            preset,
            data,
            device,
            run,
            commands,
            parallel: world.map(parallel::Parallel::new),
            out,
            started,
            at: Position {
                phase: None,
                epoch: 0,
                step: 0,
            },
            paused: [false; 2],
            teacher: None,
            results: Vec::new(),
            extending: Vec::new(),
            resume,
            resume_points: Vec::new(),
            write_failed: None,
            refusals: control::Refusals::default(),
            gpu_watch,
            rank_watch,
        }
    }

    fn log(&mut self, level: LogLevel, message: String) {
        self.emit(Event::Log { level, message });
    }

    /// Notes a failed write of `path`; the run stops before its next step.
    fn write_failed(&mut self, path: &str, source: std::io::Error) {
        self.log(LogLevel::Error, format!("writing {path}: {source}"));
        self.write_failed.get_or_insert(RunError::Write {
            path: self.run.path(path).display().to_string(),
            source,
        });
    }

    /// A new model of `cfg`'s shape for this run's data, on `device`.
    fn build(&self, phase: Phase, device: Device) -> Result<Model, RunError> {
        let cfg = self.net_config(phase);
        Model::new(&cfg.model, &self.data.input, self.data.num_classes, device)
            .map(|m| m.with_precision(self.preset.precision))
            .map_err(|source| RunError::Model { phase, source })
    }

    fn run(&mut self) -> RunOutcome {
        let sizes = self
            .build(Phase::Teacher, Device::Cpu)
            .and_then(|t| Ok((t.size(), self.build(Phase::Baseline, Device::Cpu)?.size())));
        let sizes = match sizes {
            Ok(sizes) => sizes,
            Err(e) => return RunOutcome::Failed(e),
        };
        self.emit(Event::RunStarted {
            run_dir: self.run.dir().display().to_string(),
            device: self.device_text(),
            data: self.data.description.clone(),
            train_examples: self.data.train.len(),
            teacher: sizes.0,
            student: sizes.1,
            preset: self.preset.to_toml(),
            clock_origin_unix: crate::protocol::unix_now() - self.started.elapsed().as_secs_f64(),
            world_size: self.world_size(),
        });
        let mut phases = vec![Phase::Teacher];
        if self.preset.student.trains_baseline() {
            phases.push(Phase::Baseline);
        }
        phases.push(Phase::Distilled);
        let mut end = self.restore_finished_phases().err().map(PhaseEnd::Failed);
        phases.retain(|p| !self.results.iter().any(|r| r.phase == *p));
        for phase in phases {
            if end.is_some() {
                break;
            }
            // libtorch reports an allocation the memory cannot hold by a panic inside tch, and a
            // streamed image folder an image that no longer decodes: the run fails with it, and
            // its summary says so. Any other panic is a bug: it goes on.
            let ran =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.run_phase(phase)));
            end = match ran {
                Ok(ran) => ran.err(),
                Err(payload) => match (
                    error::out_of_memory(payload.as_ref()),
                    payload.downcast_ref::<crate::data::UnreadableImage>(),
                ) {
                    (Some(message), _) => {
                        Some(PhaseEnd::Failed(RunError::OutOfMemory { phase, message }))
                    }
                    (None, Some(image)) => Some(PhaseEnd::Failed(RunError::UnreadableImage {
                        phase,
                        image: image.clone(),
                    })),
                    (None, None) => std::panic::resume_unwind(payload),
                },
            };
            if let (None, Some(e)) = (&end, self.write_failed.take()) {
                end = Some(PhaseEnd::Failed(e));
            }
        }
        if let Some(PhaseEnd::Failed(e @ (RunError::Resume(_) | RunError::ResumeFile { .. }))) = end
        {
            // A refused resume leaves the run's summary and plots as they were.
            self.log(LogLevel::Error, e.to_string());
            return RunOutcome::Failed(e);
        }
        let (status, failure) = match &end {
            None => (RunStatus::Completed, None),
            Some(PhaseEnd::Stopped(_)) => (RunStatus::Interrupted, None),
            Some(PhaseEnd::Failed(e)) => {
                self.log(LogLevel::Error, e.to_string());
                (RunStatus::Failed, Some(e.failure(self.at.phase)))
            }
        };
        let _ = self.run.flush();
        let plots = crate::run::plots::write(self.run.dir());
        if !plots.written.is_empty() {
            let names: Vec<String> = (plots.written.iter())
                .filter_map(|f| f.file_name())
                .map(|f| f.to_string_lossy().into_owned())
                .collect();
            self.log(LogLevel::Info, format!("plots: {}", names.join(", ")));
        }
        for e in plots.errors {
            self.log(LogLevel::Warn, format!("plot not written: {e}"));
        }
        // The summary last: small, and what a full disk must not take.
        let summary = RunSummary {
            failure,
            ..self.summary(status)
        };
        if let Err(e) = self.run.write_json("summary.json", &summary) {
            self.log(LogLevel::Error, format!("writing summary.json: {e}"));
        }
        self.at.phase = None;
        self.emit(Event::Finished {
            summary: Box::new(summary.clone()),
        });
        if let Err(e) = self.run.flush() {
            return RunOutcome::Failed(RunError::Metrics(e));
        }
        match end {
            None => RunOutcome::Completed(summary),
            Some(PhaseEnd::Stopped(reason)) => RunOutcome::Stopped { reason, summary },
            Some(PhaseEnd::Failed(e)) => RunOutcome::Failed(e),
        }
    }

    fn summary(&self, status: RunStatus) -> RunSummary {
        let results = self.reported_results();
        let find = |p: Phase| results.iter().find(|r| r.phase == p).cloned();
        let (teacher, baseline, distilled) = (
            find(Phase::Teacher),
            find(Phase::Baseline),
            find(Phase::Distilled),
        );
        let comparison = teacher.as_ref().and_then(|t| {
            Comparison::of(t, baseline.as_ref(), distilled.as_ref(), self.paired_test())
        });
        RunSummary {
            status,
            name: self.preset.name.clone(),
            seed: self.preset.seed,
            device: self.device_text(),
            data: self.data.description.clone(),
            input: self.data.input.clone(),
            classes: self.data.classes.clone(),
            wall_seconds: self.started.elapsed().as_secs_f64(),
            teacher,
            baseline,
            distilled,
            comparison,
            distributed: self.distributed_summary(),
            failure: None,
        }
    }

    fn net_config(&self, phase: Phase) -> &NetConfig {
        self.preset.net(phase.role())
    }
}
