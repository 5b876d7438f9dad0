//! Repeated seeds (`--seeds N` or `seeds = [..]`): the whole teacher -> baseline -> distilled run
//! once per seed, each in `<parent>/seed-<s>/`, then one aggregate: mean ± standard deviation per
//! model, the per-seed rows with their paired tests, a paired t-interval of the per-seed gains,
//! and the paired test pooled over the seeds. Written to `seeds.json` and `seeds.csv`.

use crate::config::Preset;
use crate::exit::Failure;
use crate::protocol::stats::PairedTest;
use crate::protocol::summary::{gap_closed, RunStatus, RunSummary};
use crate::protocol::Phase;
use crate::series::queue::{JobState, Queue};
use crate::series::{self, Front};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Mean and sample standard deviation of a figure over seeds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    pub mean: f64,
    pub sd: f64,
    pub n: usize,
}

impl Spread {
    pub fn of(values: &[f64]) -> Option<Spread> {
        let n = values.len();
        if n == 0 {
            return None;
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let var = if n > 1 {
            values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64
        } else {
            f64::NAN
        };
        Some(Spread {
            mean,
            sd: var.sqrt(),
            n,
        })
    }

    /// 95% Student-t interval of the mean (`None` for a single value).
    pub fn t_interval(&self) -> Option<[f64; 2]> {
        let half = t95(self.n.checked_sub(1)?)? * self.sd / (self.n as f64).sqrt();
        Some([self.mean - half, self.mean + half])
    }
}

/// Two-sided 95% quantile of Student's t with `df` degrees of freedom.
fn t95(df: usize) -> Option<f64> {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => None,
        1..=30 => Some(TABLE[df - 1]),
        // Beyond 30 the quantile is within 1% of its limit; step down to it.
        31..=60 => Some(2.000),
        61..=120 => Some(1.980),
        _ => Some(1.960),
    }
}

/// One seed's figures (test accuracies in %).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedRow {
    pub seed: u64,
    pub run_dir: String,
    pub status: RunStatus,
    pub teacher_acc: Option<f64>,
    pub baseline_acc: Option<f64>,
    pub distilled_acc: Option<f64>,
    pub paired: Option<PairedTest>,
}

impl SeedRow {
    pub fn of(seed: u64, run_dir: &Path, s: &RunSummary) -> SeedRow {
        SeedRow {
            seed,
            run_dir: run_dir.display().to_string(),
            status: s.status.clone(),
            teacher_acc: s.test_acc_pct(Phase::Teacher),
            baseline_acc: s.test_acc_pct(Phase::Baseline),
            distilled_acc: s.test_acc_pct(Phase::Distilled),
            paired: s.comparison.as_ref().and_then(|c| c.paired),
        }
    }
}

/// The aggregate over seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedsReport {
    /// Completed when every seed completed.
    pub status: RunStatus,
    pub rows: Vec<SeedRow>,
    pub teacher: Option<Spread>,
    pub baseline: Option<Spread>,
    pub distilled: Option<Spread>,
    /// Distilled minus baseline, pp, over the seeds that have both, with a 95% t-interval.
    pub gain: Option<Spread>,
    pub gain_ci_pp: Option<[f64; 2]>,
    /// The paired test over every seed's test examples together (discordant counts summed).
    /// Where the seeds share one test set (MNIST, CIFAR) its examples count once per seed, so
    /// this p-value is optimistic; the t-interval over seeds is the conservative figure.
    pub pooled: Option<PairedTest>,
    /// The share of the teacher-baseline gap closed, from the mean accuracies over the seeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gap_closed: Option<f64>,
}

impl SeedsReport {
    pub fn of(rows: Vec<SeedRow>, all_done: bool) -> SeedsReport {
        let column = |f: fn(&SeedRow) -> Option<f64>| rows.iter().filter_map(f).collect::<Vec<_>>();
        let gains: Vec<f64> = rows
            .iter()
            .filter_map(|r| Some(r.distilled_acc? - r.baseline_acc?))
            .collect();
        let gain = Spread::of(&gains);
        let tests: Vec<PairedTest> = rows.iter().filter_map(|r| r.paired).collect();
        let pooled = (!tests.is_empty()).then(|| {
            PairedTest::from_counts(
                tests.iter().map(|t| t.n).sum(),
                tests.iter().map(|t| t.only_baseline).sum(),
                tests.iter().map(|t| t.only_distilled).sum(),
            )
        });
        let (teacher, baseline, distilled) = (
            Spread::of(&column(|r| r.teacher_acc)),
            Spread::of(&column(|r| r.baseline_acc)),
            Spread::of(&column(|r| r.distilled_acc)),
        );
        SeedsReport {
            gap_closed: match (teacher, baseline, distilled) {
                (Some(t), Some(b), Some(d)) => gap_closed(t.mean, b.mean, d.mean),
                _ => None,
            },
            status: if all_done {
                RunStatus::Completed
            } else {
                RunStatus::Interrupted
            },
            teacher,
            baseline,
            distilled,
            gain_ci_pp: gain.and_then(|g| g.t_interval()),
            gain,
            pooled,
            rows,
        }
    }

    pub fn csv(&self) -> String {
        let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.4}"));
        let mut out = String::from(
            "seed,status,teacher_acc,baseline_acc,distilled_acc,gain_pp,gain_ci_lo,gain_ci_hi,p_value,only_baseline,only_distilled,run_dir\n",
        );
        for r in &self.rows {
            let p = r.paired;
            out.push_str(&format!(
                "{},{},{},{},{},{},{},{},{},{},{},{}\n",
                r.seed,
                r.status,
                opt(r.teacher_acc),
                opt(r.baseline_acc),
                opt(r.distilled_acc),
                opt(p.map(|p| p.gain_pp)),
                opt(p.map(|p| p.ci_pp[0])),
                opt(p.map(|p| p.ci_pp[1])),
                p.map_or(String::new(), |p| format!("{:e}", p.p_value)),
                p.map_or(String::new(), |p| p.only_baseline.to_string()),
                p.map_or(String::new(), |p| p.only_distilled.to_string()),
                r.run_dir
            ));
        }
        out
    }

    /// The printed table: a row per seed, then mean ± sd, the gain's interval and the pooled
    /// test; within `width` columns (the paired test wraps in its cell, the notes between words).
    pub fn table(&self, width: Option<usize>) -> String {
        let pct = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}%"));
        let spread = |s: Option<Spread>| {
            s.map_or("-".into(), |s| {
                if s.n > 1 {
                    format!("{:.2} ± {:.2}%", s.mean, s.sd)
                } else {
                    format!("{:.2}%", s.mean)
                }
            })
        };
        let mut table = comfy_table::Table::new();
        table
            .load_preset(comfy_table::presets::UTF8_FULL_CONDENSED)
            .set_header([
                "seed",
                "teacher",
                "baseline",
                "distilled",
                "paired test of the gain",
            ]);
        for r in &self.rows {
            table.add_row([
                r.seed.to_string(),
                pct(r.teacher_acc),
                pct(r.baseline_acc),
                pct(r.distilled_acc),
                r.paired.map_or("-".into(), |p| p.describe()),
            ]);
        }
        table.add_row([
            format!("mean ± sd ({})", self.rows.len()),
            spread(self.teacher),
            spread(self.baseline),
            spread(self.distilled),
            String::new(),
        ]);
        let mut out = String::new();
        if let (Some(g), Some([lo, hi])) = (self.gain, self.gain_ci_pp) {
            out.push_str(&format!(
                "\ngain over seeds: {:+.2} pp, 95% t-interval [{lo:+.2}, {hi:+.2}] ({} seeds){}",
                g.mean,
                g.n,
                if lo > 0.0 || hi < 0.0 {
                    ""
                } else {
                    ": includes 0, not significant"
                }
            ));
        }
        if let Some(closed) = self.gap_closed {
            out.push_str(&format!(
                "\ngap closed: {:.0}% of the teacher-baseline gap (mean test accuracies)",
                100.0 * closed
            ));
        }
        if let Some(p) = self.pooled {
            out.push_str(&format!(
                "\npooled over the seeds' test examples: {} ({} right only when distilled, {} only in the baseline; optimistic where the seeds share a test set)",
                p.describe(),
                p.only_distilled,
                p.only_baseline,
            ));
        }
        let table = crate::protocol::fit::wrapped(table, width);
        format!("{table}{}\n", crate::protocol::fit::wrap(&out, width))
    }
}

/// Runs (or, `resuming`, goes on with) every seed under `parent`; returns the exit code.
pub fn run(
    preset: Preset,
    parent: &Path,
    front: &mut dyn Front,
    resuming: bool,
) -> Result<i32, Failure> {
    if !resuming {
        series::create_parent(parent, &preset)?;
    }
    let seeds = preset.seeds.clone().unwrap_or_else(|| vec![preset.seed]);
    let mut queue = Queue::new("seeds", seeds.iter().map(|s| format!("seed {s}")));
    let mut rows = Vec::new();
    let mut tally = series::Tally::default();
    for (k, &seed) in seeds.iter().enumerate() {
        front.note(format!(
            "kd-tui: seed {seed} ({} of {})",
            k + 1,
            seeds.len()
        ));
        let dir = parent.join(format!("seed-{seed}"));
        let one = Preset {
            seed,
            seeds: None,
            ..preset.clone()
        };
        queue.set(k, JobState::Running, String::new());
        let outcome = series::run_job(one, &dir, front, &queue);
        rows.extend(outcome.summary().map(|s| SeedRow::of(seed, &dir, s)));
        let goes_on = tally.record(&mut queue, k, &outcome);
        let report = SeedsReport::of(rows.clone(), goes_on && k + 1 == seeds.len());
        tally.write(front, parent, "seeds", &report, report.csv());
        if !goes_on {
            break;
        }
    }
    let report = SeedsReport::of(rows, tally.complete);
    front.print(report.table(crate::protocol::fit::stdout_columns()));
    Ok(tally.exit_code())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_and_t_interval_by_hand() {
        // 1, 2, 3, 4, 5: mean 3, sd sqrt(2.5); t(4) = 2.776 -> 3 +- 2.776 * 1.5811 / sqrt(5).
        let s = Spread::of(&[1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
        assert_eq!((s.mean, s.n), (3.0, 5));
        assert!((s.sd - 2.5f64.sqrt()).abs() < 1e-12);
        let [lo, hi] = s.t_interval().unwrap();
        assert!((hi - 3.0 - 2.776 * 2.5f64.sqrt() / 5f64.sqrt()).abs() < 1e-9);
        assert!((3.0 - lo - (hi - 3.0)).abs() < 1e-12);
        assert!(Spread::of(&[7.0]).unwrap().t_interval().is_none());
        assert!(Spread::of(&[]).is_none());
    }

    fn row(seed: u64, base: f64, dist: f64, b: usize, c: usize) -> SeedRow {
        SeedRow {
            seed,
            run_dir: format!("seed-{seed}"),
            status: RunStatus::Completed,
            teacher_acc: Some(99.0),
            baseline_acc: Some(base),
            distilled_acc: Some(dist),
            paired: Some(PairedTest::from_counts(1000, b, c)),
        }
    }

    #[test]
    fn report_pools_the_discordant_counts_and_intervals_the_gains() {
        let report = SeedsReport::of(
            vec![row(1, 97.0, 98.0, 10, 20), row(2, 97.5, 97.9, 12, 16)],
            true,
        );
        let pooled = report.pooled.unwrap();
        assert_eq!(
            (pooled.n, pooled.only_baseline, pooled.only_distilled),
            (2000, 22, 36)
        );
        let gain = report.gain.unwrap();
        assert!((gain.mean - 0.7).abs() < 1e-9, "{gain:?}");
        // Two seeds: gains 1.0 and 0.4, sd 0.6 / sqrt 2; half-width t(1) * sd / sqrt 2 = 12.706 * 0.3.
        let [lo, hi] = report.gain_ci_pp.unwrap();
        assert!(
            (lo - (0.7 - 3.8118)).abs() < 1e-9 && (hi - (0.7 + 3.8118)).abs() < 1e-9,
            "{lo} {hi}"
        );
        // Means: teacher 99, baseline 97.25, distilled 97.95: 0.7 of 1.75 points, 40%.
        assert!((report.gap_closed.unwrap() - 0.4).abs() < 1e-9);
        let whole = report.table(None);
        assert!(whole.contains("gap closed: 40%"), "{whole}");
        assert!(whole.contains("includes 0, not significant"), "{whole}");
        // At 80 columns every line fits, and nothing is lost: the paired test wraps in its cell.
        let narrow = report.table(Some(80));
        assert!(narrow.lines().all(|l| l.chars().count() <= 80), "{narrow}");
        let words = |t: &str| {
            t.split_whitespace()
                .filter(|w| w.chars().all(|c| c.is_alphanumeric() || ".%+-".contains(c)))
                .map(String::from)
                .collect::<std::collections::BTreeSet<_>>()
        };
        assert_eq!(words(&whole), words(&narrow));
        let csv = report.csv();
        assert_eq!(csv.lines().count(), 3);
        assert!(csv
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("1,completed,99.0000,97.0000,98.0000,1.0000,"));
    }
}
