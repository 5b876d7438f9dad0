//! Headless mode: consumes the trainer's events, shows progress on stderr (bars on a terminal,
//! one plain line per epoch otherwise) and turns SIGINT / SIGTERM / SIGHUP into a clean stop.

use crate::console;
use crate::device::nvml;
use crate::front::{signal_name, Consumer, Signals};
use crate::protocol::summary::TeacherOutputs;
use crate::protocol::{teacher_layers, Command, Event, LogLevel, Phase, Stamped};
use crate::series::queue::Queue;
use crate::series::Front;
use crate::train::{Ended, TrainerHandle};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::Path;

/// Progress on stderr.
enum Progress {
    /// A bar per phase (stderr is a terminal).
    Bar(Option<PhaseBar>),
    /// One plain line per epoch (logs, CI, nohup).
    Lines,
}

struct PhaseBar {
    bar: ProgressBar,
    steps_per_epoch: u64,
    loss: f64,
    /// Latest epoch and its validation accuracy.
    epoch: Option<(usize, usize, f64)>,
    /// Step at which the latest epoch ended.
    epoch_end_step: u64,
    /// Epochs of the phase (live-editable).
    epochs: usize,
}

impl PhaseBar {
    /// Steps done plus the epochs left at the current steps per epoch: right after an epochs
    /// or batch-size edit too.
    fn follow_schedule(&mut self) {
        let done = self.epoch.map_or(0, |e| e.0);
        let left = self.epochs.saturating_sub(done) as u64;
        self.bar
            .set_length(self.epoch_end_step + left * self.steps_per_epoch);
    }

    fn show(&self) {
        let mut message = format!("loss {:.4}", self.loss);
        if let Some((epoch, epochs, val_acc)) = self.epoch {
            message.push_str(&format!(
                " · epoch {epoch}/{epochs} · val acc {:.2}%",
                100.0 * val_acc
            ));
        }
        self.bar.set_message(message);
    }
}

impl Progress {
    fn on_event(&mut self, s: &Stamped) {
        let phase = s.at.phase.map_or("", Phase::as_str);
        match (&mut *self, &s.event) {
            (Progress::Bar(current), Event::PhaseStarted { epochs, steps_per_epoch, .. }) => {
                if let Some(old) = current.take() {
                    old.bar.finish();
                }
                let bar = new_bar(phase, (epochs * steps_per_epoch) as u64, "steps  {msg}  ({elapsed}, eta {eta})");
                *current = Some(PhaseBar { bar, steps_per_epoch: *steps_per_epoch as u64, loss: f64::NAN, epoch: None, epoch_end_step: 0, epochs: *epochs });
            }
            // The distilled phase's pass for the teacher's outputs has a bar of its own.
            (Progress::Bar(current), Event::TeacherOutputs { done, total, source, layer }) if !source.from_cache() && *source != TeacherOutputs::PerBatch => {
                if *done == 0 {
                    if let Some(old) = current.take() {
                        old.bar.finish();
                    }
                    let what = match layer {
                        Some(layer) => teacher_layers(layer),
                        None => "the teacher's outputs".into(),
                    };
                    let bar = new_bar(phase, *total as u64, &format!("examples: {what}  ({{elapsed}}, eta {{eta}})"));
                    *current = Some(PhaseBar { bar, steps_per_epoch: 0, loss: f64::NAN, epoch: None, epoch_end_step: 0, epochs: 0 });
                }
                if let Some(p) = current {
                    p.bar.set_position(*done as u64);
                    if done >= total {
                        p.bar.finish();
                    }
                }
            }
            (Progress::Bar(Some(p)), Event::Step { loss, .. }) => {
                p.bar.set_position(s.at.step as u64);
                p.loss = *loss;
                p.show();
            }
            (Progress::Bar(Some(p)), Event::Epoch { val_acc, epochs, .. }) => {
                p.epoch = Some((s.at.epoch, *epochs, *val_acc));
                p.epoch_end_step = s.at.step as u64;
                p.epochs = *epochs;
                p.follow_schedule();
                p.show();
            }
            // A batch-size edit changes the steps per epoch (the old size is in the event).
            (Progress::Bar(Some(p)), Event::Edit { key, old, new, .. }) if key.ends_with(".batch_size") => {
                if let (Some(old), Some(new)) = (old.as_u64(), new.as_u64().filter(|&n| n > 0)) {
                    p.steps_per_epoch = (p.steps_per_epoch * old).div_ceil(new);
                    p.follow_schedule();
                }
                p.bar.println(format!("{phase:>9} {}", s.event.control_line().unwrap_or_default()));
            }
            // The bar ends with its phase: its elapsed time stops there, and its last line
            // comes before the lines of what follows (the teacher's outputs, the next phase).
            (Progress::Bar(current), Event::PhaseFinished { .. }) => {
                if let Some(p) = current.take() {
                    p.bar.finish();
                }
                if let Some(line) = describe(phase, &s.event) {
                    console::note(&line);
                }
            }
            (Progress::Bar(current), Event::Finished { .. }) => {
                if let Some(p) = current.take() {
                    p.bar.finish();
                }
            }
            (Progress::Lines, Event::Epoch { train_loss, val_loss, val_acc, epochs, train_parts }) => console::note(format_args!(
                "{phase:>9} epoch {:>3}/{epochs}  step {:>6}  train loss {train_loss:.4}{}  val loss {val_loss:.4}  val acc {:.2}%  {:.1}s",
                s.at.epoch,
                s.at.step,
                parts_text(train_parts),
                100.0 * val_acc,
                s.wall_time
            )),
            (_, event) => {
                if let Some(line) = describe(phase, event) {
                    match self {
                        Progress::Bar(Some(p)) => p.bar.println(line),
                        _ => console::note(&line),
                    }
                }
            }
        }
    }
}

/// A bar of `len` for `phase`, its count followed by `what`.
fn new_bar(phase: &str, len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{prefix:>9}} [{{bar:30}}] {{pos}}/{{len}} {what}"
        ))
        .expect("static template")
        .progress_chars("=> "),
    );
    bar.set_prefix(phase.to_string());
    bar
}

/// ` (ce 0.31, kd 1.20)` for a loss of several parts; nothing for a plain cross-entropy.
fn parts_text(parts: &std::collections::BTreeMap<String, f64>) -> String {
    if parts.len() < 2 {
        return String::new();
    }
    let items: Vec<String> = parts.iter().map(|(k, v)| format!("{k} {v:.4}")).collect();
    format!(" ({})", items.join(", "))
}

/// One line for the events worth a line of their own.
fn describe(phase: &str, event: &Event) -> Option<String> {
    Some(match event {
        Event::RunStarted { run_dir, device, data, teacher, student, .. } => format!(
            "run folder {run_dir}\ndevice {device}; data {data}\nteacher {} params, student {} params",
            teacher.params, student.params
        ),
        Event::PhaseStarted { epochs, .. } => format!("{phase:>9} phase: {epochs} epochs"),
        Event::PhaseFinished { result } => format!(
            "{phase:>9} done: test acc {:.2}% (best val epoch {}), last-epoch test acc {:.2}%{}",
            100.0 * result.test_acc,
            result.best_epoch,
            100.0 * result.test_acc_last,
            (result.gpu.as_ref()).map_or(String::new(), |u| format!("; {}", nvml::use_text(u)))
        ),
        Event::Log { level, message } => {
            let tag = match level {
                LogLevel::Info => "info",
                LogLevel::Warn => "warning",
                LogLevel::Error => "error",
            };
            format!("{tag}: {message}")
        }
        Event::TeacherOutputs { done: 0, total, layer: Some(layer), .. } => {
            format!("{phase:>9} {}: computing over {total} examples", teacher_layers(layer))
        }
        Event::TeacherOutputs { done, total, layer: Some(layer), .. } if done >= total => {
            format!("{phase:>9} {}: computed", teacher_layers(layer))
        }
        Event::TeacherOutputs { source, .. } if source.from_cache() => {
            format!("{phase:>9} the teacher's outputs: read from the cache")
        }
        Event::TeacherOutputs { done: 0, total, source: TeacherOutputs::Views { views, .. }, .. } => {
            format!("{phase:>9} the teacher's outputs: computing over {} examples x {views} views", total / (*views).max(1))
        }
        Event::TeacherOutputs { done: 0, total, .. } => {
            format!("{phase:>9} the teacher's outputs: computing over {total} examples")
        }
        Event::TeacherOutputs { done, total, .. } if done >= total => {
            format!("{phase:>9} the teacher's outputs: computed")
        }
        _ => return event.control_line(),
    })
}

/// Drives a batch run to its end.
pub fn run(handle: TrainerHandle, consumer: &mut Consumer) -> Ended {
    let progress = if std::io::stderr().is_terminal() {
        Progress::Bar(None)
    } else {
        Progress::Lines
    };
    let signal = consumer.runtime.block_on(consume(
        handle.events,
        handle.steps,
        &handle.commands,
        &mut consumer.signals,
        progress,
    ));
    Ended::join(handle.thread, signal)
}

async fn consume(
    mut events: tokio::sync::mpsc::UnboundedReceiver<Stamped>,
    mut steps: tokio::sync::mpsc::Receiver<Stamped>,
    commands: &std::sync::mpsc::Sender<Command>,
    signals: &mut Signals,
    mut progress: Progress,
) -> Option<i32> {
    let mut stopped_by = None;
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(e) => progress.on_event(&e),
                None => break,
            },
            Some(step) = steps.recv() => progress.on_event(&step),
            signo = signals.next() => {
                if stopped_by.is_none() {
                    console::note(format_args!("kd-tui: {} received; checkpointing and stopping", signal_name(signo)));
                    stopped_by = Some(signo);
                    let _ = commands.send(Command::Stop { reason: signal_name(signo).into() });
                }
            }
        }
    }
    stopped_by
}

/// Puts the trainer of the batch run in `dir` behind the folder's control socket, so that
/// cockpits can attach (`history`: what a resumed run recorded before); a run that cannot bind
/// one, e.g. with a path too long for a socket, runs unattachable.
pub fn serve(
    handle: TrainerHandle,
    dir: &Path,
    history: Vec<Stamped>,
    consumer: &Consumer,
) -> TrainerHandle {
    let socket = {
        let _context = consumer.runtime.enter();
        crate::remote::server::ControlSocket::bind(dir)
    };
    match socket {
        Ok(socket) => socket.serve(handle, history, &consumer.runtime),
        Err(e) => {
            console::note(format_args!(
                "kd-tui: warning: no control socket in {} ({e}); kd-tui attach cannot reach this run",
                dir.display()
            ));
            handle
        }
    }
}

/// What a resumed run in `dir` recorded before this process (its `metrics.jsonl`, cut back to
/// the checkpoint by set-up), for the screens that show it; nothing for a new run.
pub fn resumed_history(dir: &Path, resumed: bool) -> Vec<Stamped> {
    match resumed {
        true => crate::remote::client::history(dir).unwrap_or_default(),
        false => Vec::new(),
    }
}

/// Batch mode as a series' front end: each run behind its folder's control socket, so that a
/// series that runs as a detached job can be attached run by run.
pub struct Headless(pub Consumer);

impl Front for Headless {
    fn drive(
        &mut self,
        handle: TrainerHandle,
        dir: &Path,
        resumed: bool,
        _queue: &Queue,
    ) -> Result<Ended, String> {
        let handle = serve(handle, dir, resumed_history(dir, resumed), &self.0);
        Ok(run(handle, &mut self.0))
    }
}
