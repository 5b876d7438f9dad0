//! What a run found: per-phase results and the teacher / baseline / distilled comparison.

use crate::protocol::failure::RunFailure;
use crate::protocol::stats::PairedTest;
use crate::protocol::InputShape;
use crate::protocol::ModelSize;
use crate::protocol::Phase;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Inference latency of one model on the run's device.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Median time for one forward pass of a single example, microseconds (one CPU thread).
    pub batch1_us: f64,
    /// Median time per example in a forward pass of `batch_size` examples, microseconds.
    pub per_sample_us: f64,
    pub batch_size: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseResult {
    pub phase: Phase,
    /// False when the teacher was loaded from a checkpoint.
    pub trained: bool,
    pub epochs_run: usize,
    /// Epoch with the best validation accuracy; its weights are the ones saved and reported.
    pub best_epoch: usize,
    pub best_val_acc: f64,
    /// Test accuracy of the best-by-validation weights.
    pub test_acc: f64,
    /// Test accuracy of the weights after the last epoch.
    pub test_acc_last: f64,
    /// Where its training stood when it ended (last weights, optimizer, best weights): a
    /// completed run's students can go on from there for more epochs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_state: Option<EndState>,
    /// Intra-op CPU threads the phase trained with (0 on a GPU).
    #[serde(default)]
    pub threads: usize,
    /// What the phase's GPUs did while it ran (NVML); absent on the CPU or without a driver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<super::GpuUse>,
    /// Test accuracy per class (best-by-validation weights); `null` for a class the test split
    /// does not hold.
    pub per_class_acc: Vec<Option<f64>>,
    pub size: ModelSize,
    pub latency: Latency,
    pub train_seconds: f64,
    /// File in the run folder holding the reported weights.
    pub weights: String,
    /// The network's kind and shape, e.g. `cnn 32-64/1024`.
    #[serde(default)]
    pub model: String,
    /// Distilled phase: where its teacher outputs came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teacher_outputs: Option<TeacherOutputs>,
    /// The last epoch's mean of each named part of the training loss (unweighted).
    #[serde(default)]
    pub loss_parts: BTreeMap<String, f64>,
    /// `hint`, `crd`: parameters of the method's head (the regressor, the embedding heads),
    /// trained with the student but not part of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regressor_params: Option<usize>,
    /// A student's: where its weights started (`student.init`, `student.baseline_init`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<super::WeightInit>,
}

/// Where the distilled student's teacher outputs came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TeacherOutputs {
    /// Computed once over the training set (the student's inputs are not augmented), and
    /// stored in the teacher-output cache.
    Computed,
    /// Read from the teacher-output cache: the same teacher on the same data ran before.
    FromCache,
    /// Computed on every batch, so the teacher sees the student's (augmented) view.
    PerBatch,
    /// The student's inputs are augmented: computed once over each of the `views` views of the
    /// training set its augmentation draws from (or read from the cache), then looked up by
    /// the view each example drew, so the teacher sees what the student sees.
    Views {
        views: usize,
        #[serde(default)]
        from_cache: bool,
    },
}

impl TeacherOutputs {
    /// Read from the teacher-output cache rather than computed.
    pub fn from_cache(self) -> bool {
        matches!(
            self,
            TeacherOutputs::FromCache
                | TeacherOutputs::Views {
                    from_cache: true,
                    ..
                }
        )
    }

    /// What the summary says of it.
    pub fn note(self) -> String {
        match self {
            TeacherOutputs::Computed => "computed once over the training set".into(),
            TeacherOutputs::FromCache => "read from the cache (same teacher, same data)".into(),
            TeacherOutputs::PerBatch => {
                "computed on every batch (the teacher sees the student's augmented view)".into()
            }
            TeacherOutputs::Views { views, from_cache } => format!(
                "{} over the {views} augmented views of the training set (every shift and flip \
                 the student can draw), looked up per batch",
                if from_cache {
                    "read from the cache (same teacher, same data)"
                } else {
                    "computed once"
                },
            ),
        }
    }
}

/// Teacher vs student figures; present once the teacher and at least one student are done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Teacher parameters / student parameters.
    pub compression: f64,
    pub bytes_ratio: f64,
    /// Teacher latency / student latency, batch 1 and large batch.
    pub speedup_batch1: f64,
    pub speedup_batch: f64,
    /// Distilled minus baseline test accuracy, percentage points.
    pub gain_pp: Option<f64>,
    /// The paired comparison of baseline and distilled on the same test examples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paired: Option<PairedTest>,
    /// Teacher minus distilled test accuracy, percentage points.
    pub gap_to_teacher_pp: Option<f64>,
    /// The share of the teacher-baseline gap the distilled student closed on test:
    /// `(distilled - baseline) / (teacher - baseline)`. Negative when distillation hurt; none
    /// when the baseline is not below the teacher (there is no gap to close).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gap_closed: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Completed,
    Interrupted,
    Failed,
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RunStatus::Completed => "completed",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Failed => "failed",
        })
    }
}

/// A trained phase's state after its last epoch, files relative to the run folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndState {
    pub weights: String,
    pub optimizer: String,
    pub optimizer_steps: u64,
    /// Optimizer steps of the phase.
    pub step: usize,
    pub best: Option<crate::protocol::summary::BestWeights>,
    /// `hint`'s regressor, if the phase had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<HintState>,
}

/// A phase's best-by-validation weights so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BestWeights {
    pub epoch: usize,
    pub val_acc: f64,
    /// safetensors file, relative to the run folder.
    pub weights: String,
}

/// `hint`'s regressor and its optimizer's state, files relative to the run folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HintState {
    pub weights: String,
    pub optimizer: String,
    pub optimizer_steps: u64,
}

impl HintState {
    pub fn files(&self) -> [&str; 2] {
        [&self.weights, &self.optimizer]
    }
}

impl EndState {
    /// The files it names (weights, optimizer state, best weights, `hint`'s), relative to the
    /// run folder.
    pub fn files(&self) -> Vec<&str> {
        let mut files = vec![self.weights.as_str(), &self.optimizer];
        files.extend(self.best.as_ref().map(|b| b.weights.as_str()));
        files.extend(self.hint.iter().flat_map(HintState::files));
        files
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub status: RunStatus,
    pub name: String,
    pub seed: u64,
    pub device: String,
    pub data: String,
    /// The shape of one example, as the models take it.
    pub input: InputShape,
    /// The data's label value of each class index.
    pub classes: Vec<String>,
    pub wall_seconds: f64,
    pub teacher: Option<PhaseResult>,
    pub baseline: Option<PhaseResult>,
    pub distilled: Option<PhaseResult>,
    pub comparison: Option<Comparison>,
    /// A data-parallel run: how its ranks trained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distributed: Option<DistributedRun>,
    /// A failed run: why (summaries written before failures were typed have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<RunFailure>,
}

/// How the ranks of a data-parallel run trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistributedRun {
    pub world_size: usize,
    /// `gloo` or `nccl`.
    pub backend: String,
    /// Each step's batch over all ranks is `world_size` times the preset's `batch_size`, each
    /// rank taking an equal share of it.
    pub global_batch: String,
    /// Batch-norm batch statistics are each rank's own; running statistics are averaged over
    /// the ranks before every evaluation.
    pub batch_norm: String,
    /// Seconds each phase spent in the gradient all-reduce (rank 0's clock).
    pub allreduce_seconds: BTreeMap<String, f64>,
}

impl Comparison {
    pub fn of(
        teacher: &PhaseResult,
        baseline: Option<&PhaseResult>,
        distilled: Option<&PhaseResult>,
        paired: Option<PairedTest>,
    ) -> Option<Comparison> {
        let student = distilled.or(baseline)?;
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
        Some(Comparison {
            compression: ratio(teacher.size.params as f64, student.size.params as f64),
            bytes_ratio: ratio(teacher.size.bytes as f64, student.size.bytes as f64),
            speedup_batch1: ratio(teacher.latency.batch1_us, student.latency.batch1_us),
            speedup_batch: ratio(teacher.latency.per_sample_us, student.latency.per_sample_us),
            gain_pp: baseline
                .zip(distilled)
                .map(|(b, d)| 100.0 * (d.test_acc - b.test_acc)),
            paired,
            gap_to_teacher_pp: distilled.map(|d| 100.0 * (teacher.test_acc - d.test_acc)),
            gap_closed: baseline
                .zip(distilled)
                .and_then(|(b, d)| gap_closed(teacher.test_acc, b.test_acc, d.test_acc)),
        })
    }
}

/// `(distilled - baseline) / (teacher - baseline)`, when the teacher is above the baseline.
pub fn gap_closed(teacher: f64, baseline: f64, distilled: f64) -> Option<f64> {
    let gap = teacher - baseline;
    (gap > 0.0).then(|| (distilled - baseline) / gap)
}

impl RunSummary {
    pub fn results(&self) -> impl Iterator<Item = &PhaseResult> {
        [&self.teacher, &self.baseline, &self.distilled]
            .into_iter()
            .flatten()
    }

    /// A phase's test accuracy in %, if the phase finished.
    pub fn test_acc_pct(&self, phase: Phase) -> Option<f64> {
        self.results()
            .find(|r| r.phase == phase)
            .map(|r| 100.0 * r.test_acc)
    }

    /// The final table, within `width` columns (`protocol::fit`): the least telling columns
    /// go first, and `summary.json` keeps them all.
    pub fn table(&self, width: Option<usize>) -> String {
        let mut table = comfy_table::Table::new();
        table
            .load_preset(comfy_table::presets::UTF8_FULL_CONDENSED)
            .set_header([
                "model",
                "network",
                "params",
                "size",
                "test acc",
                "test acc (last)",
                "best epoch",
                "latency b=1",
                "latency/sample",
            ]);
        for r in self.results() {
            table.add_row([
                r.phase.as_str().to_string(),
                r.model.clone(),
                r.size.params.to_string(),
                human_bytes(r.size.bytes),
                format!("{:.2}%", 100.0 * r.test_acc),
                format!("{:.2}%", 100.0 * r.test_acc_last),
                if r.trained {
                    r.best_epoch.to_string()
                } else {
                    "loaded".into()
                },
                format!("{:.1} µs", r.latency.batch1_us),
                format!("{:.2} µs", r.latency.per_sample_us),
            ]);
        }
        // Least telling first: the last epoch's accuracy, then sizes and latencies.
        const DROP_ORDER: [usize; 6] = [5, 6, 3, 7, 1, 8];
        let (mut out, dropped) =
            super::fit::table_dropping(table, width, &DROP_ORDER, "summary.json");
        let shown = |column| !dropped.contains(&column);
        let mut notes = latency_note(&self.results().collect::<Vec<_>>(), shown(7), shown(8));
        if let Some(params) = self.distilled.as_ref().and_then(|d| d.regressor_params) {
            notes.push_str(&format!(
                "\nthe method's head (hint's regressor, crd's embeddings): {params} parameters, trained with the student, not counted in or saved with it"
            ));
        }
        if let Some(source) = self.distilled.as_ref().and_then(|d| d.teacher_outputs) {
            notes.push_str(&format!("\nteacher outputs: {}", source.note()));
        }
        if let Some(c) = &self.comparison {
            notes.push_str(&format!(
                "\nstudent is {:.1}x smaller ({:.1}x fewer bytes), {:.2}x faster at batch 1, {:.2}x per sample in a batch",
                c.compression, c.bytes_ratio, c.speedup_batch1, c.speedup_batch
            ));
            match (&c.paired, c.gain_pp) {
                (Some(t), _) => notes.push_str(&format!(
                    "\ndistillation over baseline: {} (exact McNemar test on {} paired test examples: {} right only when distilled, {} only in the baseline)",
                    t.describe(),
                    t.n,
                    t.only_distilled,
                    t.only_baseline
                )),
                (None, Some(gain)) => notes.push_str(&format!(
                    "\ndistillation gain over baseline: {gain:+.2} pp test accuracy"
                )),
                (None, None) => {}
            }
            if let Some(gap) = c.gap_to_teacher_pp {
                notes.push_str(&format!(
                    "\ndistilled student is {gap:.2} pp below the teacher"
                ));
            }
            if let Some(closed) = c.gap_closed {
                notes.push_str(&format!(
                    "\ngap closed: {:.0}% of the teacher-baseline gap on test",
                    100.0 * closed
                ));
            }
        }
        out.push_str(&super::fit::wrap(&notes, width));
        out.push('\n');
        out
    }
}

/// What the latency columns shown measure: `latency b=1` one example at a time,
/// `latency/sample` each example of a batch, whose size is that of the test set when smaller
/// than 1024.
fn latency_note(results: &[&PhaseResult], batch1: bool, per_sample: bool) -> String {
    let mut batches: Vec<(usize, Vec<&str>)> = Vec::new();
    for r in results {
        match batches.iter_mut().find(|(b, _)| *b == r.latency.batch_size) {
            Some((_, phases)) => phases.push(r.phase.as_str()),
            None => batches.push((r.latency.batch_size, vec![r.phase.as_str()])),
        }
    }
    let sizes = match batches.as_slice() {
        [] => return String::new(),
        [(size, _)] => size.to_string(),
        _ => batches
            .iter()
            .map(|(size, phases)| format!("{size} ({})", phases.join(", ")))
            .collect::<Vec<_>>()
            .join(", "),
    };
    let b1 = "latency b=1: one example at a time".to_string();
    let per = format!("latency/sample: per sample at batch {sizes}");
    match (batch1, per_sample) {
        (true, true) => format!("\n{b1}; {per}"),
        (true, false) => format!("\n{b1}"),
        (false, true) => format!("\n{per}"),
        (false, false) => String::new(),
    }
}

pub fn human_bytes(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1 << 20) as f64),
        b if b >= 100 << 10 => format!("{:.0} KiB", b as f64 / 1024.0),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

#[cfg(test)]
#[path = "summary_tests.rs"]
mod tests;
