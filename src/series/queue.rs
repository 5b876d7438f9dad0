//! Where a series of runs stands: the queue a cockpit shows beside the running one.

use crate::protocol::summary::{RunStatus, RunSummary};
use serde::{Deserialize, Serialize};

/// Where a series of runs (seeds, a sweep) stands: what a cockpit shows beside the running one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Queue {
    /// "seeds" or "sweep".
    pub title: String,
    pub rows: Vec<QueueRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueRow {
    /// e.g. `seed 7` or `seed 7 · point 1 (distill.alpha = 0.9)`.
    pub label: String,
    pub state: JobState,
    /// The run's figures once it ended, e.g. `val 98.9% · test 98.7%`.
    pub result: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Pending,
    Running,
    Done,
    Stopped,
    Failed,
}

impl Queue {
    pub fn new(title: &str, labels: impl IntoIterator<Item = String>) -> Queue {
        Queue {
            title: title.into(),
            rows: labels
                .into_iter()
                .map(|label| QueueRow {
                    label,
                    state: JobState::Pending,
                    result: String::new(),
                })
                .collect(),
        }
    }

    /// The running row's index.
    pub fn running(&self) -> Option<usize> {
        self.rows.iter().position(|r| r.state == JobState::Running)
    }

    /// Whether a run is still to start after this one.
    pub fn has_pending(&self) -> bool {
        self.rows.iter().any(|r| r.state == JobState::Pending)
    }

    pub fn done(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| r.state == JobState::Done)
            .count()
    }

    pub fn set(&mut self, index: usize, state: JobState, result: String) {
        let row = &mut self.rows[index];
        row.state = state;
        row.result = result;
    }

    /// Marks the running row with how its run ended.
    pub fn finish_running(&mut self, summary: &RunSummary) {
        if let Some(i) = self.running() {
            self.set(i, JobState::of(&summary.status), result_line(summary));
        }
    }
}

impl JobState {
    pub fn of(status: &RunStatus) -> JobState {
        match status {
            RunStatus::Completed => JobState::Done,
            RunStatus::Interrupted => JobState::Stopped,
            RunStatus::Failed => JobState::Failed,
        }
    }
}

/// A run's test accuracies in a line, the distilled student's first (with its validation
/// accuracy, which a sweep chooses by): `distilled 97.49% (val 97.91%) · baseline 97.10% · ...`.
pub fn result_line(s: &RunSummary) -> String {
    let mut parts = Vec::new();
    if let Some(d) = &s.distilled {
        parts.push(format!(
            "distilled {:.2}% (val {:.2}%)",
            100.0 * d.test_acc,
            100.0 * d.best_val_acc
        ));
    }
    for (name, result) in [("baseline", &s.baseline), ("teacher", &s.teacher)] {
        if let Some(r) = result {
            parts.push(format!("{name} {:.2}%", 100.0 * r.test_acc));
        }
    }
    parts.join(" · ")
}
