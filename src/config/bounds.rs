//! Limits on what a preset may ask for, so that no value can make kd-tui allocate, spawn or
//! write more than a run could use: threads, seeds, the runs of a series, and CSV class lists.

use super::{Preset, SweepConfig, Threads};
use std::collections::HashMap;

/// At most this many seeds in `seeds = [..]` or `--seeds N`.
pub const MAX_SEEDS: usize = 1000;
/// At most this many points in a sweep, and runs (points times seeds) in a series.
pub const MAX_SERIES_RUNS: usize = 10_000;
/// The largest seed: TOML integers are i64, and every seed is written back to a preset.
pub const MAX_SEED: u64 = i64::MAX as u64;
/// Intra-op threads per CPU thread of the machine; more only contend (and thousands of OpenMP
/// threads overflow the trainer's stack).
pub const THREADS_PER_CPU: usize = 4;

/// The most `threads` may be on this machine.
pub fn max_threads() -> usize {
    THREADS_PER_CPU * cpus()
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// How class labels compare: as numbers where both are finite numbers (`1`, `1.0` and `1e0`
/// are one class), otherwise as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClassKey<'a> {
    /// The value's bits, `-0` made `0`.
    Number(u64),
    Text(&'a str),
}

pub fn class_key(label: &str) -> ClassKey<'_> {
    match label.parse::<f64>() {
        Ok(x) if x.is_finite() => ClassKey::Number((x + 0.0).to_bits()),
        _ => ClassKey::Text(label),
    }
}

/// The number of points of a sweep, `None` past `usize` (computed, never expanded).
pub fn sweep_points(sweep: &SweepConfig) -> Option<usize> {
    if sweep.grid.is_empty() {
        return Some(sweep.points.len());
    }
    sweep
        .grid
        .values()
        .try_fold(1usize, |n, values| n.checked_mul(values.len()))
}

type Refusal = (String, String);

impl Preset {
    /// Checks the limits above; returns the offending dotted key and why.
    pub(super) fn check_bounds(&self) -> Result<(), Refusal> {
        if let Threads::Count(n) = self.threads {
            if n > max_threads() {
                return Err((
                    "threads".into(),
                    format!(
                        "must be at most {} ({THREADS_PER_CPU} x the {} CPU threads of this \
                         machine; got {n})",
                        max_threads(),
                        cpus()
                    ),
                ));
            }
        }
        if self.seed > MAX_SEED {
            return Err(("seed".into(), format!("must be at most {MAX_SEED}")));
        }
        if let Some(seeds) = &self.seeds {
            if seeds.len() > MAX_SEEDS {
                return Err((
                    "seeds".into(),
                    format!("lists {} seeds; at most {MAX_SEEDS}", seeds.len()),
                ));
            }
            if let Some(s) = seeds.iter().find(|&&s| s > MAX_SEED) {
                return Err(("seeds".into(), format!("{s} is more than {MAX_SEED}")));
            }
        }
        self.check_series().map_err(|m| ("sweep".into(), m))?;
        if let Some(classes) = &self.data.classes {
            let mut seen = HashMap::new();
            for c in classes {
                if let Some(first) = seen.insert(class_key(c), c) {
                    let same = if first == c {
                        String::new()
                    } else {
                        format!(" (as `{first}`: equal numbers are one class)")
                    };
                    return Err((
                        "data.classes".into(),
                        format!("lists the class `{c}` twice{same}"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// A sweep's points, and its runs over the seeds, within `MAX_SERIES_RUNS`.
    fn check_series(&self) -> Result<(), String> {
        let Some(sweep) = &self.sweep else {
            return Ok(());
        };
        let counted = sweep_points(sweep);
        let Some(points) = counted.filter(|&p| p <= MAX_SERIES_RUNS) else {
            let count = counted.map_or("more than can be counted".into(), |p| p.to_string());
            let sizes: Vec<String> = sweep.grid.values().map(|v| v.len().to_string()).collect();
            let what = match sweep.grid.is_empty() {
                true => format!("lists {count} points"),
                false => format!("has {} = {count} points", sizes.join(" x ")),
            };
            return Err(format!("the sweep {what}; at most {MAX_SERIES_RUNS}"));
        };
        let seeds = self.seeds.as_ref().map_or(1, Vec::len);
        if points * seeds > MAX_SERIES_RUNS {
            return Err(format!(
                "{points} points for each of {seeds} seeds are {} runs; at most {MAX_SERIES_RUNS}",
                points * seeds
            ));
        }
        Ok(())
    }

    /// `--seeds N`: the preset's seed and the next N - 1 (every one a TOML integer), within the
    /// limits of a series. The message says what is wrong with N.
    pub fn repeat_seeds(&mut self, n: usize) -> Result<(), String> {
        if !(1..=MAX_SEEDS).contains(&n) {
            return Err(format!("must be within 1..={MAX_SEEDS} (got {n})"));
        }
        let last = self.seed.checked_add(n as u64 - 1);
        let Some(last) = last.filter(|&l| l <= MAX_SEED) else {
            return Err(format!(
                "seeds {} to {} + {} go past {MAX_SEED}, the largest seed a preset can hold",
                self.seed,
                self.seed,
                n - 1
            ));
        };
        self.seeds = Some((self.seed..=last).collect());
        self.check_series()
    }
}

#[cfg(test)]
mod tests;
