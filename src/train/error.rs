//! Why a run failed: `RunError`, with the exit code each kind means and the typed failure a
//! run's summary carries.

use crate::exit::{Failure, EXIT_BAD_INPUT, EXIT_FAILED};
use crate::protocol::failure::{FailureKind, RunFailure};
use crate::protocol::Phase;

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The preset's `teacher.checkpoint` could not be loaded (bad input).
    #[error("loading the teacher from {path}: {source}")]
    LoadTeacher {
        path: String,
        #[source]
        source: tch::TchError,
    },
    /// A stopped run's files do not fit the run as it is now (bad input).
    #[error("resuming: {0}")]
    Resume(String),
    /// A file a stopped run wrote could not be loaded back (bad input).
    #[error("resuming: {what}: {source}")]
    ResumeFile {
        /// The file, or what it holds.
        what: String,
        #[source]
        source: tch::TchError,
    },
    #[error("building the {} model: {source}", .phase.as_str())]
    Model {
        phase: Phase,
        #[source]
        source: crate::model::ShapeError,
    },
    /// The student's weights could not be selected out of the teacher's (`student.init`).
    #[error("the {} phase's student.init: {reason}", .phase.as_str())]
    Init { phase: Phase, reason: String },
    #[error("the distilled phase has no teacher to learn from")]
    NoTeacher,
    #[error("writing metrics.jsonl: {0}")]
    Metrics(#[source] std::io::Error),
    /// A file of the run could not be written (a full disk, ...): the run stops there, and the
    /// files written before stay as they were.
    #[error("writing {path}: {source}; the run stopped, earlier files are intact")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The training loss stopped being a number.
    #[error("the {} phase diverged at epoch {epoch} step {step} (loss {loss:.4e}); checkpoints from before it are kept: lower the lr (and --resume, where one was written)", .phase.as_str())]
    Diverged {
        phase: Phase,
        epoch: usize,
        step: usize,
        loss: f64,
    },
    /// A collective or the store failed: another rank died, hung past the timeout, or the
    /// network broke (a `collective::GroupError` mostly; a gather's panic or a command the
    /// store held that does not decode otherwise).
    #[error("data-parallel training failed: {0}")]
    Distributed(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("the trainer thread panicked")]
    Panicked,
    /// An image decoded as its batch was drawn could not be (bad input).
    #[error("the {} phase: {image}", .phase.as_str())]
    UnreadableImage {
        phase: Phase,
        image: crate::data::UnreadableImage,
    },
    /// An allocation libtorch could not make while training (its words, from its panic).
    #[error("the {} phase ran out of memory: {message}; a smaller model or batch fits", .phase.as_str())]
    OutOfMemory { phase: Phase, message: String },
}

/// What libtorch said, when a panic is its report of an allocation it could not make.
pub(super) fn out_of_memory(payload: &(dyn std::any::Any + Send)) -> Option<String> {
    crate::model::panic_text(payload)
        .and_then(crate::model::allocation_failure)
        .map(String::from)
}

impl RunError {
    /// The process exit code: 2 for bad input, 1 for any other failure.
    pub fn exit_code(&self) -> i32 {
        match self.kind() {
            FailureKind::BadTeacher | FailureKind::BadResume | FailureKind::BadData => {
                EXIT_BAD_INPUT
            }
            _ => EXIT_FAILED,
        }
    }

    /// The kind of failure, as front ends tell them apart.
    pub fn kind(&self) -> FailureKind {
        match self {
            RunError::LoadTeacher { .. } => FailureKind::BadTeacher,
            RunError::Resume(_) | RunError::ResumeFile { .. } => FailureKind::BadResume,
            RunError::Model { .. } | RunError::Init { .. } => FailureKind::BadModel,
            RunError::NoTeacher => FailureKind::NoTeacher,
            RunError::Metrics(_) | RunError::Write { .. } => FailureKind::Io,
            RunError::Diverged { .. } => FailureKind::Diverged,
            RunError::Distributed(_) => FailureKind::RankLost,
            RunError::Panicked => FailureKind::Panicked,
            RunError::OutOfMemory { .. } => FailureKind::OutOfMemory,
            RunError::UnreadableImage { .. } => FailureKind::BadData,
        }
    }

    /// The phase the error names, if it names one.
    pub fn phase(&self) -> Option<Phase> {
        match self {
            RunError::Model { phase, .. }
            | RunError::Init { phase, .. }
            | RunError::Diverged { phase, .. }
            | RunError::OutOfMemory { phase, .. }
            | RunError::UnreadableImage { phase, .. } => Some(*phase),
            RunError::LoadTeacher { .. } => Some(Phase::Teacher),
            RunError::NoTeacher => Some(Phase::Distilled),
            _ => None,
        }
    }

    /// The failure a run's summary records: its own phase, else `at` (the phase it stopped).
    pub fn failure(&self, at: Option<Phase>) -> RunFailure {
        RunFailure {
            phase: self.phase().or(at),
            kind: self.kind(),
            message: self.to_string(),
        }
    }
}

/// A failed run as a command's failure: bad input (exit code 2) or not (1), with its text.
impl From<RunError> for Failure {
    fn from(e: RunError) -> Failure {
        match e.exit_code() {
            EXIT_BAD_INPUT => Failure::bad_input(e),
            _ => Failure::failed(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_keeps_its_exit_code_and_its_text() {
        let refused = RunError::Resume("student.epochs = 2".into());
        let text = refused.to_string();
        assert_eq!(refused.exit_code(), 2);
        assert_eq!(Failure::from(refused), Failure::BadInput(text));
        let teacher = RunError::LoadTeacher {
            path: "t.safetensors".into(),
            source: tch::TchError::FileFormat("not safetensors".into()),
        };
        assert_eq!(Failure::from(teacher).exit_code(), 2);
        let diverged = RunError::Diverged {
            phase: Phase::Baseline,
            epoch: 2,
            step: 30,
            loss: f64::NAN,
        };
        let text = diverged.to_string();
        assert!(text.starts_with("the baseline phase diverged at epoch 2 step 30"));
        assert_eq!(Failure::from(diverged), Failure::Failed(text));
        assert_eq!(Failure::from(RunError::Panicked).exit_code(), 1);
    }

    #[test]
    fn a_failure_records_its_kind_and_phase() {
        let full = RunError::Write {
            path: "run/teacher.safetensors".into(),
            source: std::io::Error::other("No space left on device"),
        };
        let failure = full.failure(Some(Phase::Teacher));
        assert_eq!(
            (failure.kind, failure.phase),
            (FailureKind::Io, Some(Phase::Teacher))
        );
        assert_eq!(failure.message, full.to_string());
        assert!(std::error::Error::source(&full).is_some());
        let oom = RunError::OutOfMemory {
            phase: Phase::Distilled,
            message: "you tried to allocate".into(),
        };
        let failure = oom.failure(None);
        assert_eq!(
            (failure.kind, failure.phase),
            (FailureKind::OutOfMemory, Some(Phase::Distilled))
        );
    }
}
