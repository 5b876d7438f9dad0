//! A completed run's students given more epochs (`--resume RUN --set student.epochs=N`): until
//! both have their new results, the results the run completed with stay the reported ones, and
//! their files stay as they were (the new ones are named by their epochs, `baseline-e90`).

use super::Trainer;
use crate::protocol::summary::{EndState, PhaseResult};
use crate::protocol::Phase;

impl Trainer {
    /// Whether every student given more epochs has its new result (or none was).
    pub(super) fn extension_done(&self) -> bool {
        self.extending
            .iter()
            .all(|old| self.results.iter().any(|r| r.phase == old.phase))
    }

    /// The results a summary reports: while an extension is unfinished, the students' results
    /// as the run completed them (their files are kept), never a mix of old and new.
    pub(super) fn reported_results(&self) -> Vec<PhaseResult> {
        if self.extension_done() {
            return self.results.clone();
        }
        let extended = |p: Phase| self.extending.iter().any(|r| r.phase == p);
        self.results
            .iter()
            .filter(|r| !extended(r.phase))
            .chain(&self.extending)
            .cloned()
            .collect()
    }

    /// The name a phase's result files start with: `baseline`, or `baseline-e90` for a student
    /// given more epochs, so that the files of the result it extends stay as they were.
    pub(super) fn result_stem(&self, phase: Phase) -> String {
        match self.extending.iter().any(|r| r.phase == phase) {
            true => format!("{}-e{}", phase.as_str(), self.at.epoch),
            false => phase.as_str().to_string(),
        }
    }

    /// The extension's record for `checkpoint.json`: empty once every student has its new
    /// result (the extension is over).
    pub(super) fn extending_record(&self) -> Vec<PhaseResult> {
        match self.extension_done() {
            true => Vec::new(),
            false => self.extending.clone(),
        }
    }

    /// Once an extension is over: the files of the results it replaced.
    pub(super) fn remove_extended_files(&mut self) {
        if !self.extension_done() {
            return;
        }
        let files_of = |r: &PhaseResult| -> Vec<String> {
            let end = r.end_state.iter().flat_map(EndState::files);
            std::iter::once(r.weights.as_str())
                .chain(end)
                .map(String::from)
                .collect()
        };
        let in_use: Vec<String> = self.results.iter().flat_map(files_of).collect();
        for old in std::mem::take(&mut self.extending) {
            for file in files_of(&old).iter().filter(|f| !in_use.contains(f)) {
                let _ = std::fs::remove_file(self.run.path(file));
            }
        }
    }
}
