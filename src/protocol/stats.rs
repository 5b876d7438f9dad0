//! Paired comparison of the baseline and the distilled student on the same test examples:
//! the discordant counts, McNemar's exact test and a 95% interval of the accuracy difference.

use serde::{Deserialize, Serialize};

/// Significance level for the "significant" / "not significant" verdict.
pub const ALPHA: f64 = 0.05;
/// The normal quantile for a two-sided 95% interval.
const Z95: f64 = 1.959_963_984_540_054;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PairedTest {
    /// Test examples both students were scored on.
    pub n: usize,
    /// Examples only the baseline gets right (b) and only the distilled student gets right (c).
    pub only_baseline: usize,
    pub only_distilled: usize,
    /// Distilled minus baseline accuracy, percentage points: `100 (c - b) / n`.
    pub gain_pp: f64,
    /// 95% confidence interval of the gain, percentage points (paired Wald interval).
    pub ci_pp: [f64; 2],
    /// Two-sided exact McNemar p-value: the binomial test of `c` in `b + c` trials at 1/2.
    pub p_value: f64,
}

impl PairedTest {
    /// From each test example's correctness under the two students (same examples, same order).
    pub fn of(baseline_correct: &[bool], distilled_correct: &[bool]) -> PairedTest {
        assert_eq!(
            baseline_correct.len(),
            distilled_correct.len(),
            "paired scores"
        );
        let count = |f: fn(bool, bool) -> bool| {
            baseline_correct
                .iter()
                .zip(distilled_correct)
                .filter(|(&b, &d)| f(b, d))
                .count()
        };
        PairedTest::from_counts(
            baseline_correct.len(),
            count(|b, d| b && !d),
            count(|b, d| !b && d),
        )
    }

    pub fn from_counts(n: usize, only_baseline: usize, only_distilled: usize) -> PairedTest {
        let (b, c) = (only_baseline as f64, only_distilled as f64);
        let nf = n.max(1) as f64;
        let diff = (c - b) / nf;
        // Var of the paired difference: (b + c - (c - b)^2 / n) / n^2.
        let se = (b + c - (c - b).powi(2) / nf).max(0.0).sqrt() / nf;
        PairedTest {
            n,
            only_baseline,
            only_distilled,
            gain_pp: 100.0 * diff,
            ci_pp: [100.0 * (diff - Z95 * se), 100.0 * (diff + Z95 * se)],
            p_value: mcnemar_exact(only_baseline, only_distilled),
        }
    }

    pub fn significant(&self) -> bool {
        self.p_value < ALPHA
    }

    /// `gain -0.84 pp [-2.6, +0.9], p = 0.45, not significant`
    pub fn describe(&self) -> String {
        format!(
            "gain {:+.2} pp [{:+.1}, {:+.1}], p = {}, {}",
            self.gain_pp,
            self.ci_pp[0],
            self.ci_pp[1],
            format_p(self.p_value),
            if self.significant() {
                "significant"
            } else {
                "not significant"
            }
        )
    }
}

/// Two decimals, or scientific notation below 0.01.
pub fn format_p(p: f64) -> String {
    if p >= 0.01 {
        format!("{p:.2}")
    } else {
        format!("{p:.1e}")
    }
}

/// Two-sided exact McNemar test: `p = min(1, 2 * P(X <= min(b, c)))`, `X ~ Binomial(b + c, 1/2)`.
/// Summed in log space, so thousands of discordant pairs do not underflow.
pub fn mcnemar_exact(b: usize, c: usize) -> f64 {
    let n = b + c;
    if n == 0 {
        return 1.0;
    }
    let k_max = b.min(c);
    // ln C(n, k) 2^-n, k = 0 ..= k_max, by the recurrence C(n, k+1) = C(n, k) (n - k) / (k + 1).
    let mut log_term = -(n as f64) * std::f64::consts::LN_2;
    let mut logs = Vec::with_capacity(k_max + 1);
    for k in 0..=k_max {
        logs.push(log_term);
        log_term += ((n - k) as f64).ln() - ((k + 1) as f64).ln();
    }
    let max = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let tail = max.exp() * logs.iter().map(|l| (l - max).exp()).sum::<f64>();
    (2.0 * tail).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) {
        assert!((a - b).abs() < tol, "{a} != {b}");
    }

    #[test]
    fn mcnemar_exact_matches_binomial_sums_by_hand() {
        // b = 2, c = 8: 2 * (C(10,0) + C(10,1) + C(10,2)) / 2^10 = 2 * 56 / 1024.
        close(mcnemar_exact(2, 8), 112.0 / 1024.0, 1e-12);
        assert_eq!(mcnemar_exact(8, 2), mcnemar_exact(2, 8), "symmetric");
        // b = 0, c = 5: 2 / 32.
        close(mcnemar_exact(0, 5), 0.0625, 1e-12);
        // Balanced counts can never be significant; no discordant pairs, nothing to test.
        assert_eq!(mcnemar_exact(5, 5), 1.0);
        assert_eq!(mcnemar_exact(0, 0), 1.0);
        // Large counts stay finite: 500 vs 600 discordant pairs.
        let p = mcnemar_exact(500, 600);
        assert!(p > 0.0 && p < 0.01, "{p}");
    }

    #[test]
    fn agresti_presidential_approval_interval() {
        // Agresti, Categorical Data Analysis (2002), Table 10.1: 1600 people, 150 approve then
        // disapprove, 86 the reverse; difference -0.04, 95% CI (-0.059, -0.021).
        let t = PairedTest::from_counts(1600, 150, 86);
        close(t.gain_pp, -4.0, 1e-9);
        close(t.ci_pp[0], -5.87, 0.01);
        close(t.ci_pp[1], -2.13, 0.01);
        assert!(t.significant());
    }

    #[test]
    fn from_scores_and_the_verdict_line() {
        // 359 test images, 3 more right without distillation: the digits case of issue 8.
        // Examples 0..5 only the baseline gets right, 5..7 only the distilled student.
        let base: Vec<bool> = (0..359).map(|i| !(5..7).contains(&i)).collect();
        let dist: Vec<bool> = (0..359).map(|i| i >= 5).collect();
        let t = PairedTest::of(&base, &dist);
        assert_eq!((t.n, t.only_baseline, t.only_distilled), (359, 5, 2));
        close(t.gain_pp, -300.0 / 359.0, 1e-9);
        // 2 * (1 + 7 + 21) / 128.
        close(t.p_value, 58.0 / 128.0, 1e-12);
        assert!(!t.significant());
        // SE = sqrt(7 - 9/359) / 359 = 0.007357; -0.836 +- 1.96 * 0.7357 pp.
        close(t.ci_pp[0], -2.278, 0.001);
        close(t.ci_pp[1], 0.606, 0.001);
        assert_eq!(
            t.describe(),
            "gain -0.84 pp [-2.3, +0.6], p = 0.45, not significant"
        );
    }
}
