//! The trainer's events as the `App` takes them in: progress, series, results, the log.

use super::app::{App, AppliedEdit, Progress};
use super::progress::TeacherPass;
use crate::config::Preset;
use crate::protocol::failure::FailureKind;
use crate::protocol::ranks::silence_change;
use crate::protocol::summary::TeacherOutputs;
use crate::protocol::{teacher_layers, Event, LogLevel, Phase, Stamped};

impl App {
    pub(super) fn on_event(&mut self, stamped: Stamped) {
        let Stamped {
            at,
            wall_time,
            event,
        } = stamped;
        self.progress.wall_time = self.progress.wall_time.max(wall_time);
        let phase = at.phase;
        let series = phase.map(Phase::index);
        match event {
            Event::RunStarted {
                run_dir,
                device,
                data,
                teacher,
                student,
                preset,
                train_examples,
                clock_origin_unix,
                world_size,
            } => {
                self.world_size = world_size;
                self.train_examples = train_examples;
                // A resumed run's new process: the stopped one's end is history now.
                self.summary = None;
                // Records from before the origin was carried have 0.
                if clock_origin_unix > 0.0 {
                    self.clock_origin = Some(clock_origin_unix);
                }
                self.run_dir = run_dir.clone();
                self.device = device;
                self.data = data;
                self.sizes = Some((teacher, student));
                self.preset = toml::from_str::<Preset>(&preset).ok();
                if let Some(p) = &self.preset {
                    self.name = p.name.clone();
                }
                self.push_log(wall_time, LogLevel::Info, format!("run folder {run_dir}"));
            }
            Event::PhaseStarted {
                epochs,
                steps_per_epoch,
                threads,
                epoch_steps_done,
            } => {
                if let Some(p) = phase {
                    let started_with = &mut self.series[p.index()].started_with;
                    *started_with = started_with.take().or(self.preset.clone());
                }
                let paused = phase.is_some_and(|p| self.is_paused(p.role()));
                // A resumed phase starts where its checkpoint was: `at` holds the epochs done.
                let resumed = at.epoch > 0 || at.step > 0;
                self.progress = Progress {
                    phase,
                    epoch: at.epoch + usize::from(resumed),
                    epochs,
                    epochs_done: at.epoch,
                    epoch_start_step: at.step.saturating_sub(epoch_steps_done),
                    step: at.step,
                    steps_per_epoch,
                    threads,
                    wall_time,
                    phase_started: wall_time,
                    start_epochs_done: at.epoch,
                    start_step: at.step,
                    paused_since: paused.then_some(wall_time),
                    ..Progress::default()
                };
                let name = phase.map_or("", Phase::as_str);
                let text = if resumed {
                    let percent = 100.0 * self.progress.epoch_ratio();
                    format!(
                        "{name} phase resumed at epoch {}/{epochs} ({percent:.0}% into it)",
                        self.progress.epoch
                    )
                } else {
                    format!("{name} phase started ({epochs} epochs)")
                };
                self.push_log(wall_time, LogLevel::Info, text);
            }
            Event::Step {
                loss,
                samples_per_sec,
                parts,
                ..
            } => {
                // Steps travel on their own channel and can trail the epoch events, even into
                // the next phase: file them by their own phase, and only move the counters of
                // the current one, never backwards.
                if phase == self.progress.phase && at.step >= self.progress.step {
                    self.progress.step = at.step;
                    self.progress.epoch = at.epoch;
                    self.progress.samples_per_sec = samples_per_sec;
                }
                if let Some(i) = series {
                    let x = at.step as f64;
                    self.series[i].loss.push((x, loss));
                    for (name, value) in parts {
                        self.series[i]
                            .parts
                            .entry(name)
                            .or_default()
                            .push((x, value));
                    }
                }
            }
            Event::Epoch {
                val_acc, epochs, ..
            } => {
                if phase == self.progress.phase {
                    self.progress.epoch = at.epoch;
                    self.progress.epochs = epochs;
                    self.progress.epochs_done = at.epoch;
                    self.progress.epoch_start_step = at.step;
                    self.progress.step = self.progress.step.max(at.step);
                    self.measure_rate();
                }
                if let Some(i) = series {
                    self.series[i]
                        .val_acc
                        .push((at.epoch as f64, 100.0 * val_acc));
                }
            }
            Event::PhaseFinished { result } => {
                self.push_log(
                    wall_time,
                    LogLevel::Info,
                    format!(
                        "{} finished: test acc {:.2}%",
                        result.phase.as_str(),
                        100.0 * result.test_acc
                    ),
                );
                let index = result.phase.index();
                self.series[index].result = Some(*result);
            }
            Event::Paused { role, paused } => {
                self.paused[role.index()] = paused;
                if self.progress.phase.map(Phase::role) == Some(role) {
                    self.progress.set_paused(paused, wall_time);
                }
                self.push_control_line(wall_time, LogLevel::Info, &event, "");
            }
            Event::Edit {
                ref key,
                ref new,
                ref preset,
                ..
            } => {
                // The trainer validated the edit and sends the preset it now runs with.
                if !preset.is_empty() {
                    self.preset = toml::from_str::<Preset>(preset).ok().or(self.preset.take());
                } else if let Some(edited) = self.preset.as_ref().and_then(|p| {
                    // A record from before edits carried their preset: replay it on the copy.
                    let value = new.as_str().map_or_else(|| new.to_string(), str::to_string);
                    p.with_edit(key, &value).ok()
                }) {
                    self.preset = Some(edited);
                }
                self.follow_schedule_edit(key);
                if let (Some(i), Event::Edit { old, .. }) = (series, &event) {
                    let text = |v: &serde_json::Value| match v {
                        serde_json::Value::String(s) => s.clone(),
                        serde_json::Value::Number(n) => {
                            n.as_f64().map_or(n.to_string(), |f| format!("{f}"))
                        }
                        v => v.to_string(),
                    };
                    self.series[i].edits.push(AppliedEdit {
                        step: at.step,
                        key: key.clone(),
                        old: text(old),
                        new: text(new),
                    });
                }
                self.pending.remove(key);
                let step = format!(" (step {})", at.step);
                self.push_control_line(wall_time, LogLevel::Info, &event, &step);
            }
            Event::EditRefused { ref key, .. } => {
                self.pending.remove(key);
                self.push_control_line(wall_time, LogLevel::Warn, &event, "")
            }
            Event::Checkpoint { .. } => {
                self.push_control_line(wall_time, LogLevel::Info, &event, "")
            }
            Event::Log { level, message } => self.push_log(wall_time, level, message),
            Event::Gpus { gpus } => {
                if self.summary.is_none() {
                    self.gpus = gpus;
                }
            }
            Event::Ranks { ranks } => {
                if self.summary.is_none() {
                    for line in silence_change(&self.ranks, &ranks) {
                        self.push_log(wall_time, LogLevel::Warn, line);
                    }
                    self.ranks = ranks;
                }
            }
            Event::TeacherOutputs {
                done,
                total,
                source,
                layer,
            } => {
                // The distilled phase has begun, before its first step: the header says so.
                if self.progress.phase != phase {
                    self.progress = Progress {
                        phase,
                        epoch: at.epoch,
                        epochs_done: at.epoch,
                        wall_time,
                        phase_started: wall_time,
                        ..Progress::default()
                    };
                }
                // A pass goes on from its first report; the layer's pass is a new one.
                let started = match &self.progress.teacher_pass {
                    Some(p) if done > 0 && p.layer == layer => p.started,
                    _ => wall_time,
                };
                let pass = TeacherPass {
                    done,
                    total,
                    source,
                    layer,
                    started,
                };
                if done == 0 || done >= total {
                    let text = match (&pass.layer, source) {
                        (Some(layer), _) if done == 0 => {
                            format!("computing {} over {total} examples", teacher_layers(layer))
                        }
                        (None, TeacherOutputs::Computed) if done == 0 => {
                            format!("computing the teacher's outputs over {total} examples")
                        }
                        (None, TeacherOutputs::Views { views, .. })
                            if done == 0 && !source.from_cache() =>
                        {
                            let examples = total / views.max(1);
                            format!(
                                "computing the teacher's outputs over {examples} examples x {views} views"
                            )
                        }
                        _ => pass.text(),
                    };
                    self.push_log(wall_time, LogLevel::Info, text);
                }
                self.progress.teacher_pass = Some(pass);
            }
            Event::Finished { summary } => {
                self.gpus.clear();
                self.ranks.clear();
                self.progress.phase = None;
                self.push_log(
                    wall_time,
                    LogLevel::Info,
                    format!(
                        "run {}; summary in {}/summary.json",
                        summary.status, self.run_dir
                    ),
                );
                // The phase whose loss diverged, as the summary's typed failure says.
                self.diverged = (summary.failure.as_ref())
                    .filter(|f| f.kind == FailureKind::Diverged)
                    .and_then(|f| f.phase);
                if let Some(queue) = &mut self.queue {
                    queue.finish_running(&summary);
                }
                // In process, offer to go on with a lower lr (an attached job is its own).
                let failed = summary.status == crate::protocol::summary::RunStatus::Failed;
                if failed && self.link == super::app::Link::InProcess && self.lower_lr().is_some() {
                    self.mode = super::app::Mode::Confirm(super::app::Confirm::LowerLr);
                }
                self.summary = Some(*summary);
                if self.stopping {
                    self.exit = true;
                }
            }
        }
    }

    /// A batch-size edit of the training network changes the steps per epoch from the next
    /// batch on; the gauges and the ETA follow.
    fn follow_schedule_edit(&mut self, key: &str) {
        let Some(phase) = self.progress.phase else {
            return;
        };
        if key == format!("{}.batch_size", phase.role().table()) {
            let batch = self
                .preset
                .as_ref()
                .and_then(|p| p.get(key))
                .and_then(|v| v.as_integer())
                .unwrap_or(0);
            if batch > 0 && self.train_examples > 0 {
                self.progress.steps_per_epoch = self.train_examples.div_ceil(batch as usize);
            }
        }
    }
}
