//! The trainer's interface: `Command`s in, `Stamped` `Event`s out. The trainer knows nothing of
//! who listens; the TUI, batch mode and the run folder's `metrics.jsonl` all read these. Both
//! are serde types free of tch types, so a consumer in another process can speak them as JSON.

pub mod failure;
pub mod fit;
pub mod ranks;
pub mod shapes;
pub mod stats;
pub mod summary;

pub use crate::device::nvml::{GpuReading, GpuUse};
use serde::{Deserialize, Serialize};
pub use shapes::{InputShape, ModelSize, WeightInit};
use std::collections::BTreeMap;
use summary::{PhaseResult, RunSummary};

/// The three training phases, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Teacher,
    Baseline,
    Distilled,
}

impl Phase {
    pub const ALL: [Phase; 3] = [Phase::Teacher, Phase::Baseline, Phase::Distilled];

    pub fn role(self) -> Role {
        match self {
            Phase::Teacher => Role::Teacher,
            Phase::Baseline | Phase::Distilled => Role::Student,
        }
    }

    /// Position in `ALL`, for per-phase arrays.
    pub fn index(self) -> usize {
        match self {
            Phase::Teacher => 0,
            Phase::Baseline => 1,
            Phase::Distilled => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Teacher => "teacher",
            Phase::Baseline => "baseline",
            Phase::Distilled => "distilled",
        }
    }
}

/// Which network a phase trains; pausing is per role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Teacher,
    Student,
}

impl Role {
    /// Index for per-role arrays (teacher 0, student 1).
    pub fn index(self) -> usize {
        match self {
            Role::Teacher => 0,
            Role::Student => 1,
        }
    }

    /// The preset table holding this role's settings.
    pub fn table(self) -> &'static str {
        match self {
            Role::Teacher => "teacher",
            Role::Student => "student",
        }
    }
}

/// What a consumer can ask of the trainer. Each takes effect before the next optimizer step.
/// Serialised as `{"command": "set", "key": ..., "value": ...}`, for consumers in another process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// Pause or resume a role's training (takes effect when that role's phase runs).
    SetPaused { role: Role, paused: bool },
    /// Change a live preset key (see `Preset::live_keys`) to a value in TOML syntax.
    Set { key: String, value: String },
    /// End the current phase now and go on with the next.
    SkipPhase,
    /// Write a checkpoint of the current state.
    Checkpoint,
    /// Checkpoint, finish the run folder and stop.
    Stop { reason: String },
}

/// Where the trainer is. Epochs are 1-based; `step` counts optimizer steps within the phase.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Position {
    pub phase: Option<Phase>,
    pub epoch: usize,
    pub step: usize,
}

/// An event with the position and wall time (seconds since the run started) it happened at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stamped {
    #[serde(flatten)]
    pub at: Position,
    pub wall_time: f64,
    #[serde(flatten)]
    pub event: Event,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    RunStarted {
        run_dir: String,
        device: String,
        data: String,
        train_examples: usize,
        teacher: ModelSize,
        student: ModelSize,
        /// The resolved preset, as TOML.
        preset: String,
        /// Unix time (seconds) of this process's `wall_time` 0.
        #[serde(default)]
        clock_origin_unix: f64,
        /// Ranks of a data-parallel job (1 for one process, and in older records).
        #[serde(default = "one_rank")]
        world_size: usize,
    },
    /// Stamped with the epochs already finished and the phase's step: both 0 unless the phase
    /// goes on from a checkpoint.
    PhaseStarted {
        epochs: usize,
        steps_per_epoch: usize,
        /// Intra-op CPU threads the phase trains with (0: not a CPU run, or not recorded).
        #[serde(default)]
        threads: usize,
        /// Steps of the epoch in progress that a resumed phase had already taken (0 otherwise).
        #[serde(default, skip_serializing_if = "is_zero")]
        epoch_steps_done: usize,
    },
    /// Mean training loss over the steps since the previous `Step`.
    Step {
        loss: f64,
        lr: f64,
        samples_per_sec: f64,
        /// Mean of each named part of the loss (unweighted), e.g. `ce`, `kd`.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        parts: BTreeMap<String, f64>,
    },
    Epoch {
        train_loss: f64,
        val_loss: f64,
        val_acc: f64,
        epochs: usize,
        /// The epoch's mean of each named part of the training loss.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        train_parts: BTreeMap<String, f64>,
    },
    PhaseFinished {
        result: Box<PhaseResult>,
    },
    Paused {
        role: Role,
        paused: bool,
    },
    /// A live edit the trainer applied, with what it resolved, so that a front end updates its
    /// copy of the preset from this alone (records written before `params` and `preset` were
    /// carried have them empty).
    Edit {
        key: String,
        old: serde_json::Value,
        /// The value applied.
        new: serde_json::Value,
        /// After a `distill.method` switch, the new method's hyperparameters as resolved
        /// (defaults filled in, name -> value); empty for other edits.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        params: BTreeMap<String, serde_json::Value>,
        /// The whole preset after the edit, as TOML.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        preset: String,
    },
    EditRefused {
        key: String,
        value: String,
        reason: String,
    },
    Checkpoint {
        path: String,
    },
    Log {
        level: LogLevel,
        message: String,
    },
    /// The teacher's outputs over the training set, which the distilled phase computes before
    /// it trains: sent as the pass starts (`done` 0), as it goes (a few times a second at most)
    /// and when it is done; once, done, when they were read from the teacher-output cache.
    TeacherOutputs {
        /// Training examples done, of `total`.
        #[serde(default)]
        done: usize,
        #[serde(default)]
        total: usize,
        #[serde(default = "computed")]
        source: summary::TeacherOutputs,
        /// The pass over the output of the teacher's layer of that name (`hint`'s guided
        /// layer; several, comma-separated, for `at` over several pairs), which follows the
        /// logits' pass; `None`: the logits.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        layer: Option<String>,
    },
    Finished {
        summary: Box<RunSummary>,
    },
    /// The run's GPUs now (NVML), about every second while it runs on them: shown live, kept
    /// neither in `metrics.jsonl` nor in a job's history (each phase's result has their use).
    Gpus {
        gpus: Vec<GpuReading>,
    },
    /// Every rank of a data-parallel job, from rank 0 about every second (`protocol::ranks`):
    /// shown live, kept neither in `metrics.jsonl` nor in a job's history.
    Ranks {
        ranks: Vec<ranks::RankStatus>,
    },
}

impl Event {
    /// A reading of the moment, superseded by the next: dropped rather than queued or replayed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Event::Gpus { .. } | Event::Ranks { .. })
    }

    /// The one-line text both front ends show for a control event (pause, edit, checkpoint).
    pub fn control_line(&self) -> Option<String> {
        Some(match self {
            Event::Paused { role, paused } => {
                let what = if *paused { "paused" } else { "resumed" };
                format!("{} training {what}", role.table())
            }
            Event::Edit {
                key,
                old,
                new,
                params,
                ..
            } => {
                let resolved = params
                    .iter()
                    .map(|(name, value)| format!("{name} {value}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let resolved = if resolved.is_empty() {
                    resolved
                } else {
                    format!(" ({resolved})")
                };
                format!("edit {key}: {old} -> {new}{resolved}")
            }
            Event::EditRefused { key, value, reason } => {
                format!("edit {key}={value} refused: {reason}")
            }
            Event::Checkpoint { path } => format!("checkpoint {path}"),
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Info,
    Warn,
    Error,
}

fn computed() -> summary::TeacherOutputs {
    summary::TeacherOutputs::Computed
}

/// A world of one process: the serde default of records from before `world_size` was kept.
/// What a front end calls the pass over the guided layers of `TeacherOutputs::layer`:
/// `the teacher's layer features.1`, or `the teacher's layers features.0, features.1`.
pub fn teacher_layers(layer: &str) -> String {
    match layer.contains(", ") {
        true => format!("the teacher's layers {layer}"),
        false => format!("the teacher's layer {layer}"),
    }
}

pub fn one_rank() -> usize {
    1
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_events_round_trip_through_json() {
        let commands = [
            Command::SetPaused {
                role: Role::Student,
                paused: true,
            },
            Command::Set {
                key: "distill.temperature".into(),
                value: "8".into(),
            },
            Command::SkipPhase,
            Command::Checkpoint,
            Command::Stop {
                reason: "quit".into(),
            },
        ];
        for c in commands {
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(serde_json::from_str::<Command>(&json).unwrap(), c, "{json}");
        }
        let json = serde_json::to_string(&Command::SkipPhase).unwrap();
        assert_eq!(json, r#"{"command":"skip_phase"}"#);
        let event = Stamped {
            at: Position {
                phase: Some(Phase::Distilled),
                epoch: 3,
                step: 40,
            },
            wall_time: 1.5,
            event: Event::Edit {
                key: "distill.method".into(),
                old: serde_json::json!("soft"),
                new: serde_json::json!("dkd"),
                params: BTreeMap::from([
                    ("alpha".into(), serde_json::json!(1.0)),
                    ("beta".into(), serde_json::json!(8.0)),
                ]),
                preset: "name = \"x\"\n".into(),
            },
        };
        let json = serde_json::to_string(&event).unwrap();
        assert_eq!(
            serde_json::from_str::<Stamped>(&json).unwrap(),
            event,
            "{json}"
        );
        assert_eq!(
            event.event.control_line().unwrap(),
            r#"edit distill.method: "soft" -> "dkd" (alpha 1.0, beta 8.0)"#
        );
    }

    #[test]
    fn teacher_output_progress_round_trips_and_old_records_still_parse() {
        let event = Event::TeacherOutputs {
            done: 1024,
            total: 54000,
            source: summary::TeacherOutputs::Computed,
            layer: None,
        };
        let json = serde_json::to_string(&event).unwrap();
        assert_eq!(
            json,
            r#"{"type":"teacher_outputs","done":1024,"total":54000,"source":"computed"}"#
        );
        assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), event);
        let bare =
            r#"{"phase":"distilled","epoch":0,"step":0,"wall_time":1.0,"type":"teacher_outputs"}"#;
        let stamped: Stamped = serde_json::from_str(bare).unwrap();
        assert_eq!(
            stamped.event,
            Event::TeacherOutputs {
                done: 0,
                total: 0,
                source: summary::TeacherOutputs::Computed,
                layer: None,
            }
        );
    }

    #[test]
    fn edit_records_from_before_the_resolved_preset_still_parse() {
        let line = r#"{"phase":"distilled","epoch":3,"step":40,"wall_time":1.5,"type":"edit","key":"distill.alpha","old":0.9,"new":0.5}"#;
        let stamped: Stamped = serde_json::from_str(line).unwrap();
        let Event::Edit {
            key,
            params,
            preset,
            ..
        } = &stamped.event
        else {
            panic!("{stamped:?}")
        };
        assert_eq!(key, "distill.alpha");
        assert!(params.is_empty() && preset.is_empty());
        assert_eq!(
            stamped.event.control_line().unwrap(),
            "edit distill.alpha: 0.9 -> 0.5"
        );
    }
}
