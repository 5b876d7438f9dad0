//! Sweeps (`[sweep]` in a preset): a distilled student for every point of a grid (or a
//! list) of preset values, for each seed. Per seed the teacher is trained once and reused through
//! its checkpoint and the teacher-output cache, unless the sweep changes the teacher or the data;
//! the baseline likewise, at every point that sets the student as the seed's first point does.
//! The best point is chosen by mean
//! **validation** accuracy and reported on test. Writes `sweep.csv`, `sweep.json`, `sweep.svg`.

use crate::config::{self, Override, Preset, PresetError, SweepConfig};
use crate::exit::Failure;
use crate::protocol::fit;
use crate::protocol::summary::RunSummary;
use crate::protocol::Phase;
use crate::series::queue::{JobState, Queue};
use crate::series::seeds::Spread;
use crate::series::{self, Front, OneRun};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// One point: the value of each swept key.
pub type Point = BTreeMap<String, toml::Value>;

/// Every point of the sweep: the grid's combinations (keys in order, the last varying fastest)
/// or the listed points.
pub fn points(sweep: &SweepConfig) -> Vec<Point> {
    if !sweep.points.is_empty() {
        return sweep.points.clone();
    }
    sweep
        .grid
        .iter()
        .fold(vec![Point::new()], |acc, (key, values)| {
            acc.iter()
                .flat_map(|p| {
                    values.iter().map(move |v| {
                        let mut p = p.clone();
                        p.insert(key.clone(), v.clone());
                        p
                    })
                })
                .collect()
        })
}

/// The preset of one point (validated like `--set`), its sweep and seeds removed.
pub fn preset_of(
    base: &Preset,
    point: &Point,
    index: usize,
    extra: &[Override],
) -> Result<Preset, PresetError> {
    let plain = Preset {
        sweep: None,
        seeds: None,
        ..base.clone()
    };
    let overrides: Vec<Override> = point
        .iter()
        .map(|(key, value)| Override {
            key: key.clone(),
            value: value.to_string(),
        })
        .chain(extra.iter().cloned())
        .collect();
    let origin = format!("[sweep] point {index} ({})", describe(point));
    config::load(&plain.to_toml(), &origin, &overrides).map_err(|e| PresetError {
        origin: origin.clone(),
        line_col: None,
        ..e
    })
}

/// `distill.alpha = 0.5, distill.temperature = 2`
/// Whether two points set the student (`student.*`) alike, so that they have one baseline.
fn same_student(a: &Point, b: &Point) -> bool {
    fn student(p: &Point) -> Vec<(&String, &toml::Value)> {
        p.iter().filter(|(k, _)| k.starts_with("student")).collect()
    }
    student(a) == student(b)
}

fn describe(point: &Point) -> String {
    point
        .iter()
        .map(|(k, v)| format!("{k} = {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One point at one seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepRow {
    pub point: usize,
    pub seed: u64,
    pub values: Point,
    pub run_dir: String,
    /// Accuracies in %; the baseline is the seed's reference run's where it is not retrained.
    pub distilled_val_acc: Option<f64>,
    pub distilled_test_acc: Option<f64>,
    pub baseline_test_acc: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepReport {
    pub completed: bool,
    pub rows: Vec<SweepRow>,
    /// The point with the best mean validation accuracy of the distilled student.
    pub best_point: Option<usize>,
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    Spread::of(&values.collect::<Vec<_>>()).map(|s| s.mean)
}

impl SweepReport {
    pub fn of(rows: Vec<SweepRow>, completed: bool) -> SweepReport {
        let best_point = (0..=rows.iter().map(|r| r.point).max().unwrap_or(0))
            .filter_map(|p| {
                Some((
                    p,
                    mean(
                        rows.iter()
                            .filter(|r| r.point == p)
                            .filter_map(|r| r.distilled_val_acc),
                    )?,
                ))
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(p, _)| p);
        SweepReport {
            completed,
            rows,
            best_point,
        }
    }

    /// Mean over seeds of a point's figure.
    fn point_mean(&self, point: usize, f: fn(&SweepRow) -> Option<f64>) -> Option<f64> {
        mean(self.rows.iter().filter(|r| r.point == point).filter_map(f))
    }

    fn point_count(&self) -> usize {
        self.rows.iter().map(|r| r.point + 1).max().unwrap_or(0)
    }

    /// A row per point and seed, a column per key that any point sets (listed points may set
    /// different keys; a point that leaves one out has it empty).
    pub fn csv(&self) -> String {
        let keys: std::collections::BTreeSet<&String> =
            self.rows.iter().flat_map(|r| r.values.keys()).collect();
        let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.4}"));
        let mut out = format!(
            "point,seed,{}distilled_val_acc,distilled_test_acc,baseline_test_acc,run_dir\n",
            keys.iter().map(|k| format!("{k},")).collect::<String>()
        );
        for r in &self.rows {
            let values: String = keys
                .iter()
                .map(|k| {
                    format!(
                        "\"{}\",",
                        r.values
                            .get(*k)
                            .map_or(String::new(), |v| v.to_string().replace('"', "'"))
                    )
                })
                .collect();
            out.push_str(&format!(
                "{},{},{values}{},{},{},{}\n",
                r.point,
                r.seed,
                opt(r.distilled_val_acc),
                opt(r.distilled_test_acc),
                opt(r.baseline_test_acc),
                r.run_dir
            ));
        }
        out
    }

    /// The printed table, within `width` columns (cells wrap where the columns do not fit).
    pub fn table(&self, width: Option<usize>) -> String {
        let pct = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}%"));
        let mut table = comfy_table::Table::new();
        table
            .load_preset(comfy_table::presets::UTF8_FULL_CONDENSED)
            .set_header([
                "point",
                "values",
                "distilled val acc",
                "distilled test acc",
                "baseline test acc",
            ]);
        for p in 0..self.point_count() {
            let values = self
                .rows
                .iter()
                .find(|r| r.point == p)
                .map(|r| describe(&r.values))
                .unwrap_or_default();
            let mark = if self.best_point == Some(p) {
                " (best by val)"
            } else {
                ""
            };
            table.add_row([
                format!("{p}{mark}"),
                values,
                pct(self.point_mean(p, |r| r.distilled_val_acc)),
                pct(self.point_mean(p, |r| r.distilled_test_acc)),
                pct(self.point_mean(p, |r| r.baseline_test_acc)),
            ]);
        }
        let seeds = self
            .rows
            .iter()
            .map(|r| r.seed)
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        let note = format!("means over {seeds} seed(s); the best point is chosen on validation, its test accuracy is the one to report");
        let (table, note) = (fit::wrapped(table, width), fit::wrap(&note, width));
        format!("{table}\n{note}\n")
    }

    /// `sweep.svg`: the distilled student's mean test accuracy at each point, with the baseline.
    pub fn plot(&self, path: &Path) -> Result<(), String> {
        let n = self.point_count();
        let distilled: Vec<(f64, f64)> = (0..n)
            .filter_map(|p| Some((p as f64, self.point_mean(p, |r| r.distilled_test_acc)?)))
            .collect();
        let baseline = mean(self.rows.iter().filter_map(|r| r.baseline_test_acc));
        let mut curves = vec![(Phase::Distilled, distilled)];
        if let Some(b) = baseline {
            curves.push((Phase::Baseline, vec![(0.0, b), ((n.max(2) - 1) as f64, b)]));
        }
        let labels = [
            "sweep: test accuracy by point",
            "sweep point",
            "test accuracy %",
        ];
        crate::run::plots::draw(path, labels, &curves)
    }
}

/// What a point's run of one seed gives the report.
fn row(
    point: usize,
    seed: u64,
    values: &Point,
    dir: &Path,
    s: &RunSummary,
    reference: Option<f64>,
) -> SweepRow {
    SweepRow {
        point,
        seed,
        values: values.clone(),
        run_dir: dir.display().to_string(),
        distilled_val_acc: s.distilled.as_ref().map(|d| 100.0 * d.best_val_acc),
        distilled_test_acc: s.test_acc_pct(Phase::Distilled),
        baseline_test_acc: s.test_acc_pct(Phase::Baseline).or(reference),
    }
}

/// Runs (or, `resuming`, goes on with) the sweep under `parent`; returns the exit code.
pub fn run(
    base: Preset,
    parent: &Path,
    front: &mut dyn Front,
    resuming: bool,
) -> Result<i32, Failure> {
    let sweep = base.sweep.clone().expect("a preset with a sweep");
    let points = points(&sweep);
    // Every point is checked before anything trains: its keys, then its models on its data.
    let mut presets = Vec::with_capacity(points.len());
    for (i, p) in points.iter().enumerate() {
        let preset = preset_of(&base, p, i, &[]).map_err(Failure::bad_input)?;
        presets.push((format!("[sweep] point {i} ({})", describe(p)), preset));
    }
    crate::setup::check_all(&presets)?;
    if !resuming {
        series::create_parent(parent, &base)?;
    }
    let keys: Vec<&String> = points.iter().flat_map(|p| p.keys()).collect();
    let reuse_teacher = !keys
        .iter()
        .any(|k| k.starts_with("teacher") || k.starts_with("data") || *k == "device");
    let seeds = base.seeds.clone().unwrap_or_else(|| vec![base.seed]);
    let jobs: Vec<(u64, usize)> = seeds
        .iter()
        .flat_map(|&seed| (0..points.len()).map(move |i| (seed, i)))
        .collect();
    let mut queue = Queue::new(
        "sweep",
        jobs.iter()
            .map(|&(seed, i)| format!("seed {seed} · point {i}: {}", describe(&points[i]))),
    );
    let mut rows = Vec::new();
    let mut tally = series::Tally::default();
    let mut reference: Option<(String, Option<f64>)> = None;
    for (k, &(seed, i)) in jobs.iter().enumerate() {
        if i == 0 {
            reference = None;
        }
        front.note(format!(
            "kd-tui: sweep point {i} of {}, seed {seed}",
            points.len()
        ));
        let mut extra = vec![Override {
            key: "seed".into(),
            value: seed.to_string(),
        }];
        if let Some((teacher, _)) = &reference {
            extra.push(Override {
                key: "teacher.checkpoint".into(),
                value: toml::Value::String(teacher.clone()).to_string(),
            });
            if same_student(&points[i], &points[0]) {
                extra.push(Override {
                    key: "student.baseline".into(),
                    value: "false".into(),
                });
            }
        }
        let preset = preset_of(&base, &points[i], i, &extra).expect("checked before training");
        let dir = parent
            .join(format!("seed-{seed}"))
            .join(format!("point-{i}"));
        queue.set(k, JobState::Running, String::new());
        let outcome = series::run_job(preset, &dir, front, &queue);
        let baseline = reference.as_ref().and_then(|r| r.1);
        let row = outcome
            .summary()
            .map(|s| row(i, seed, &points[i], &dir, s, baseline));
        let goes_on = tally.record(&mut queue, k, &outcome);
        if let (None, true, OneRun::Completed(summary)) = (&reference, reuse_teacher, &outcome) {
            let teacher = dir.join("teacher.safetensors").display().to_string();
            let baseline = summary.baseline.as_ref().map(|b| 100.0 * b.test_acc);
            reference = Some((teacher, baseline));
        }
        rows.extend(row);
        let report = SweepReport::of(rows.clone(), goes_on && k + 1 == jobs.len());
        tally.write(front, parent, "sweep", &report, report.csv());
        if !goes_on {
            break;
        }
    }
    let report = SweepReport::of(rows, tally.complete);
    if let Err(e) = report.plot(&parent.join("sweep.svg")) {
        front.note(format!("kd-tui: sweep.svg not written: {e}"));
    }
    front.print(report.table(fit::stdout_columns()));
    Ok(tally.exit_code())
}

#[cfg(test)]
mod tests;
