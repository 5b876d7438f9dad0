//! Why a run failed: `RunError`, with the exit code each kind means.

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The preset's `teacher.checkpoint` could not be loaded (bad input).
    #[error("loading the teacher from {path}: {message}")]
    LoadTeacher { path: String, message: String },
    /// A stopped run's files could not be read back (bad input).
    #[error("resuming: {0}")]
    Resume(String),
    #[error("building the {phase} model: {message}")]
    Model {
        phase: &'static str,
        message: String,
    },
    #[error("the distilled phase has no teacher to learn from")]
    NoTeacher,
    #[error("writing metrics.jsonl: {0}")]
    Metrics(std::io::Error),
    /// A file of the run could not be written (a full disk, ...): the run stops there, and the
    /// files written before stay as they were.
    #[error("writing {path}: {message}; the run stopped, earlier files are intact")]
    Write { path: String, message: String },
    /// The training loss stopped being a number.
    #[error("the {phase} phase diverged at epoch {epoch} step {step} (loss {loss:.4e}); checkpoints from before it are kept: lower the lr (and --resume, where one was written)")]
    Diverged {
        phase: &'static str,
        epoch: usize,
        step: usize,
        loss: f64,
    },
    /// A collective or the store failed: another rank died, hung past the timeout, or the
    /// network broke.
    #[error("data-parallel training failed: {0}")]
    Distributed(String),
    #[error("the trainer thread panicked")]
    Panicked,
    /// An allocation libtorch could not make while training.
    #[error("the {phase} phase ran out of memory: {message}; a smaller model or batch fits")]
    OutOfMemory {
        phase: &'static str,
        message: String,
    },
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
        match self {
            RunError::LoadTeacher { .. } | RunError::Resume(_) => 2,
            _ => 1,
        }
    }
}
