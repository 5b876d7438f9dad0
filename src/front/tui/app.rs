//! The TUI's state and its `update`: every key, trainer event and signal becomes a `Msg`, and
//! `update` is the only place that changes the `App`. It returns the `Command` to send, if any.

pub use super::progress::Progress;
use crate::config::Preset;
use crate::protocol::ranks::RankStatus;
use crate::protocol::summary::{PhaseResult, RunSummary};
use crate::protocol::{Command, Event, LogLevel, Phase, Role, Stamped};
use crate::protocol::{GpuReading, ModelSize};
use crate::series::queue::Queue;
use crossterm::event::KeyEvent;
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

/// A preset key's value in `preset`, as text (`-` where it has none).
pub fn value_text(preset: Option<&Preset>, key: &str) -> String {
    match preset.and_then(|p| p.get(key)) {
        Some(toml::Value::String(s)) => s,
        Some(toml::Value::Float(f)) => format!("{f}"),
        Some(v) => v.to_string(),
        None => "-".into(),
    }
}

/// Lines kept in the event log.
const LOG_CAPACITY: usize = 500;

#[derive(Debug, Clone, PartialEq)]
pub enum Msg {
    Key(KeyEvent),
    Trainer(Stamped),
    /// The trainer's event stream ended.
    TrainerGone,
    /// SIGINT, SIGTERM or SIGHUP.
    Signal(i32),
    /// The Unix time now (drives the elapsed clock).
    Tick(f64),
    Resize,
}

/// A destructive action waiting for y/n.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirm {
    SkipPhase,
    Quit,
    /// Stop the job an attached cockpit watches.
    StopJob,
    /// A phase diverged: go on from the last checkpoint with its lr divided by 10.
    LowerLr,
}

/// Where the run this cockpit shows lives.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Link {
    /// In this process: quitting stops it.
    #[default]
    InProcess,
    /// A job in another process, over its control socket: `q` detaches, `X` stops the job.
    Attached { pid: u32 },
    /// A run no job serves (finished or dead), shown from its `metrics.jsonl`.
    ReadOnly { reason: String },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    Normal,
    /// Editing the selected hyperparameter; `refused` holds the last rejection's reason.
    Editing {
        field: EditField,
        refused: Option<String>,
    },
    Confirm(Confirm),
    Help,
}

/// The edit field: a line editor with the keys people type by reflex (Left/Right, Home/End,
/// Ctrl-A/E, Ctrl-U, Ctrl-W, Ctrl-K, ...), from `tui-input`.
#[derive(Debug, Clone, Default)]
pub struct EditField(pub tui_input::Input);

impl EditField {
    pub fn new(value: String) -> EditField {
        EditField(tui_input::Input::new(value))
    }

    pub fn value(&self) -> &str {
        self.0.value()
    }

    /// Characters before the cursor.
    pub fn cursor(&self) -> usize {
        self.0.cursor()
    }
}

impl PartialEq for EditField {
    fn eq(&self, other: &EditField) -> bool {
        self.value() == other.value() && self.cursor() == other.cursor()
    }
}

/// A row of the hyperparameter panel: a live preset key and its label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HyperRow {
    pub label: String,
    pub key: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub wall_time: f64,
    pub level: LogLevel,
    pub text: String,
}

/// A live edit as the trainer applied it: its values as text, and the phase's step.
#[derive(Debug, Clone, PartialEq)]
pub struct AppliedEdit {
    pub step: usize,
    pub key: String,
    pub old: String,
    pub new: String,
}

/// Everything one phase has shown so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PhaseSeries {
    /// (step, mean training loss).
    pub loss: Vec<(f64, f64)>,
    /// (epoch, validation accuracy in %).
    pub val_acc: Vec<(f64, f64)>,
    /// The live edits the trainer applied during this phase.
    pub edits: Vec<AppliedEdit>,
    /// The preset as the phase started (edits before it applied), for the end's account.
    pub started_with: Option<Preset>,
    /// (step, mean) of each named part of the loss.
    pub parts: BTreeMap<String, Vec<(f64, f64)>>,
    pub result: Option<PhaseResult>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct App {
    pub name: String,
    pub run_dir: String,
    pub device: String,
    /// The run's GPUs at the latest reading (empty on the CPU, without a driver, and once the
    /// run is over).
    pub gpus: Vec<GpuReading>,
    /// Ranks of the job (1 for one process).
    pub world_size: usize,
    /// Each rank's last heartbeat (empty for one process, and once the run is over).
    pub ranks: Vec<RankStatus>,
    /// The ranks panel is wanted (`r` toggles it; it folds away on a small screen anyway).
    pub ranks_panel: bool,
    pub data: String,
    pub sizes: Option<(ModelSize, ModelSize)>,
    pub train_examples: usize,
    /// The trainer's live preset: the start preset with every accepted edit applied.
    pub preset: Option<Preset>,
    pub progress: Progress,
    pub paused: [bool; 2],
    pub series: [PhaseSeries; 3],
    pub summary: Option<RunSummary>,
    pub log: VecDeque<LogLine>,
    pub selected: usize,
    pub mode: Mode,
    pub log_scale: bool,
    pub smoothing: bool,
    /// The loss chart shows the current phase's loss parts instead of the phases' totals.
    pub parts_view: bool,
    /// The loss chart shows only the most recent steps.
    pub zoom: bool,
    pub ascii_markers: bool,
    /// The series (seeds, sweep) this run belongs to, if any.
    pub queue: Option<Queue>,
    /// Attached to a run of a series that a background job runs: the run's end leaves this
    /// run's screen, for the next run's.
    pub follows_series: bool,
    pub link: Link,
    /// The phase whose loss diverged, as the failed run's summary says.
    pub diverged: Option<Phase>,
    /// The edit to go on with (a lower lr after a divergence), once the user said yes.
    pub retry: Option<crate::config::Override>,
    /// Edits sent to the trainer and not yet applied or refused: key -> value.
    pub pending: BTreeMap<String, String>,
    /// Seconds per optimizer step last measured for each role's network (for the run's ETA).
    pub step_seconds: [Option<f64>; 2],
    /// Unix time of the job's start (its `wall_time` 0), or of the first tick before it is known.
    pub clock_origin: Option<f64>,
    /// Time since the job started (the trainer's time, however late the cockpit attached).
    pub elapsed: Duration,
    /// A stop was asked for; the TUI exits when the trainer has finished.
    pub stopping: bool,
    pub trainer_gone: bool,
    pub exit: bool,
    /// Something visible changed since the last draw.
    pub dirty: bool,
}

impl App {
    pub fn new(ascii_markers: bool) -> App {
        App {
            name: String::new(),
            run_dir: String::new(),
            device: String::new(),
            gpus: Vec::new(),
            world_size: 1,
            ranks: Vec::new(),
            ranks_panel: true,
            data: String::new(),
            sizes: None,
            train_examples: 0,
            preset: None,
            progress: Progress::default(),
            paused: [false; 2],
            series: Default::default(),
            summary: None,
            log: VecDeque::new(),
            selected: 0,
            mode: Mode::Normal,
            log_scale: false,
            smoothing: true,
            parts_view: false,
            zoom: false,
            ascii_markers,
            queue: None,
            follows_series: false,
            link: Link::InProcess,
            diverged: None,
            retry: None,
            pending: BTreeMap::new(),
            step_seconds: [None; 2],
            clock_origin: None,
            elapsed: Duration::ZERO,
            stopping: false,
            trainer_gone: false,
            exit: false,
            dirty: true,
        }
    }

    /// The role whose settings the lr / batch / epochs rows edit: the one training now.
    pub fn active_role(&self) -> Role {
        self.progress.phase.map_or(Role::Teacher, Phase::role)
    }

    pub fn finished(&self) -> bool {
        self.summary.is_some() || self.trainer_gone
    }

    pub fn is_paused(&self, role: Role) -> bool {
        self.paused[role.index()]
    }

    /// The panel's rows: the training network's lr, batch size and epochs, the method, and the
    /// method's live hyperparameters as it declares them.
    pub fn hyper_rows(&self) -> Vec<HyperRow> {
        let role = self.active_role().table();
        let row = |label: &str, key: String| HyperRow {
            label: label.into(),
            key,
        };
        let mut rows = vec![
            row("lr", format!("{role}.lr")),
            row("batch size", format!("{role}.batch_size")),
            row("epochs", format!("{role}.epochs")),
            row("method", "distill.method".into()),
        ];
        if let Some(p) = &self.preset {
            rows.extend(
                crate::distill::spec(p.distill.method)
                    .params
                    .iter()
                    .filter(|param| param.live)
                    .map(|param| row(param.name, format!("distill.{}", param.name))),
            );
        }
        rows
    }

    /// The selected row (the selection follows a shorter list after a method change).
    pub fn selected_row(&self) -> HyperRow {
        let rows = self.hyper_rows();
        rows[self.selected.min(rows.len() - 1)].clone()
    }

    /// The current value of a preset key, as text.
    pub fn hyper_value(&self, key: &str) -> String {
        value_text(self.preset.as_ref(), key)
    }

    pub(super) fn push_log(&mut self, wall_time: f64, level: LogLevel, text: String) {
        if self.log.len() == LOG_CAPACITY {
            self.log.pop_front();
        }
        self.log.push_back(LogLine {
            wall_time,
            level,
            text,
        });
    }

    pub(super) fn push_control_line(
        &mut self,
        wall_time: f64,
        level: LogLevel,
        event: &Event,
        suffix: &str,
    ) {
        if let Some(line) = event.control_line() {
            self.push_log(wall_time, level, line + suffix);
        }
    }

    /// Applies one message. A message that changes nothing visible clears `dirty` for itself
    /// only: a change still waiting to be drawn stays pending.
    pub fn update(&mut self, msg: Msg) -> Option<Command> {
        let pending = self.dirty;
        self.dirty = true;
        let mut command = self.apply(msg);
        if let (Link::ReadOnly { reason }, Some(_)) = (&self.link, &command) {
            let line = format!("read-only: {reason}");
            self.push_log(self.progress.wall_time, LogLevel::Warn, line);
            command = None;
        }
        self.dirty |= pending;
        command
    }

    /// The lr edit a retry after a divergence takes: the diverged role's lr divided by 10.
    pub fn lower_lr(&self) -> Option<crate::config::Override> {
        let key = format!("{}.lr", self.diverged?.role().table());
        let lr = self.preset.as_ref()?.get(&key)?.as_float()?;
        // Six significant digits: 0.003 / 10 reads 3e-4, not 3.0000000000000003e-4.
        let lower: f64 = format!("{:.6e}", lr / 10.0).parse().ok()?;
        Some(crate::config::Override {
            key,
            value: format!("{lower:e}"),
        })
    }

    /// Leaving an attached or read-only cockpit leaves the job as it is.
    pub fn detaches(&self) -> bool {
        self.link != Link::InProcess
    }

    fn apply(&mut self, msg: Msg) -> Option<Command> {
        match msg {
            Msg::Key(key) => self.on_key(key),
            Msg::Trainer(event) => {
                self.on_event(event);
                None
            }
            // An attached cockpit stays on what it has when the job's stream ends.
            Msg::TrainerGone if self.detaches() && !self.stopping => {
                self.trainer_gone = true;
                if self.follows_series && self.summary.is_some() {
                    self.exit = true;
                }
                if matches!(self.link, Link::Attached { .. }) && self.summary.is_none() {
                    let line = "the job's stream ended without its end: the job died".into();
                    self.push_log(self.progress.wall_time, LogLevel::Error, line);
                }
                None
            }
            Msg::TrainerGone => {
                self.trainer_gone = true;
                // Without a `Finished` event the trainer died: nothing more will come. In a
                // series with runs to come, the next one starts at once.
                let more = self.queue.as_ref().is_some_and(Queue::has_pending);
                if self.stopping || self.summary.is_none() || more {
                    self.exit = true;
                }
                None
            }
            // A hang-up or Ctrl-C of an attached cockpit detaches; the job goes on.
            Msg::Signal(_) if self.detaches() => {
                self.exit = true;
                None
            }
            Msg::Signal(signo) => {
                let name = crate::front::signal_name(signo);
                self.push_log(
                    self.progress.wall_time,
                    LogLevel::Warn,
                    format!("{name}: checkpointing and stopping"),
                );
                self.stop(name)
            }
            Msg::Tick(unix_now) => {
                let origin = *self.clock_origin.get_or_insert(unix_now);
                // A job no longer training stays at its last event's time.
                let seconds = if self.trainer_gone || matches!(self.link, Link::ReadOnly { .. }) {
                    self.progress.wall_time
                } else {
                    unix_now - origin
                };
                let elapsed = Duration::from_secs_f64(seconds.max(0.0));
                // Only the clock changed: redraw once a second for it, not every tick.
                self.dirty = elapsed.as_secs() != self.elapsed.as_secs();
                self.elapsed = elapsed;
                None
            }
            Msg::Resize => None,
        }
    }

    /// Asks the trainer to checkpoint and stop; exits at once if it already finished.
    pub(super) fn stop(&mut self, reason: &str) -> Option<Command> {
        if self.finished() {
            self.exit = true;
            return None;
        }
        if self.stopping {
            return None;
        }
        self.stopping = true;
        Some(Command::Stop {
            reason: reason.into(),
        })
    }
}
