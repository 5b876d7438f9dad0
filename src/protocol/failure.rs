//! Why a run failed, as its summary and end event carry it: front ends act on the kind, and
//! show the message.

use crate::protocol::Phase;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A failed run's failure: where, what kind, and the trainer's words for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunFailure {
    /// The phase it failed in; `None` when no phase had begun.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    pub kind: FailureKind,
    /// What the log and standard error said, e.g. `the distilled phase diverged at epoch 4 ...`.
    pub message: String,
}

/// What kind of failure ended a run (one per kind of `train::RunError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The training loss stopped being a number (or grew past `diverge_factor`): a lower lr
    /// may go on from the last checkpoint.
    Diverged,
    /// libtorch could not allocate memory while training.
    OutOfMemory,
    /// A file of the run could not be written (a full disk, an I/O error).
    Io,
    /// `teacher.checkpoint` could not be loaded (bad input).
    BadTeacher,
    /// A stopped run's files could not be read back (bad input).
    BadResume,
    /// A network could not be built for the data.
    BadModel,
    /// The distilled phase had no teacher to learn from.
    NoTeacher,
    /// A collective or the store failed: a rank died, hung past the timeout, or the network
    /// broke.
    RankLost,
    /// An image of a folder decoded as batches are drawn could not be decoded (bad input).
    BadData,
    /// The trainer thread panicked.
    Panicked,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Diverged => "diverged",
            FailureKind::OutOfMemory => "out of memory",
            FailureKind::Io => "disk full or I/O error",
            FailureKind::BadTeacher => "bad teacher checkpoint",
            FailureKind::BadResume => "cannot resume",
            FailureKind::BadModel => "bad model",
            FailureKind::NoTeacher => "no teacher",
            FailureKind::RankLost => "a rank was lost",
            FailureKind::BadData => "unreadable data",
            FailureKind::Panicked => "panicked",
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for RunFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::summary::{RunStatus, RunSummary};

    /// A failed run's summary as kd-tui wrote it before failures were typed.
    const OLD_SUMMARY: &str = r#"{"status":"failed","name":"digits","seed":1,"device":"cpu",
        "data":"d","input":[64],"classes":["0","1"],"wall_seconds":1.5,"teacher":null,
        "baseline":null,"distilled":null,"comparison":null}"#;

    #[test]
    fn an_old_summary_reads_back_without_a_failure() {
        let summary: RunSummary = serde_json::from_str(OLD_SUMMARY).unwrap();
        assert_eq!((summary.status, summary.failure), (RunStatus::Failed, None));
    }

    #[test]
    fn a_failure_travels_as_its_kind_and_phase() {
        let mut summary: RunSummary = serde_json::from_str(OLD_SUMMARY).unwrap();
        let text = serde_json::to_string(&summary).unwrap();
        assert!(!text.contains("failure"), "{text}");
        summary.failure = Some(RunFailure {
            phase: Some(Phase::Distilled),
            kind: FailureKind::Diverged,
            message: "the distilled phase diverged".into(),
        });
        let text = serde_json::to_string(&summary).unwrap();
        assert!(
            text.contains(r#""failure":{"phase":"distilled","kind":"diverged","#),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<RunSummary>(&text).unwrap(), summary);
        let kind: FailureKind = serde_json::from_str(r#""out_of_memory""#).unwrap();
        assert_eq!(kind, FailureKind::OutOfMemory);
    }
}
