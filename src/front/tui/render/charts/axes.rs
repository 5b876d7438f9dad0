//! Axis ticks at round numbers. ratatui spaces an axis's labels evenly between its bounds, so
//! the bounds are made the first and last tick, and every label is a tick.

use ratatui::layout::Rect;
use ratatui::text::Line;

/// An axis's bounds and its labels, evenly spaced between them.
#[derive(Debug, Clone, PartialEq)]
pub struct Ticks {
    pub bounds: [f64; 2],
    pub labels: Vec<String>,
}

impl Ticks {
    pub fn lines(&self) -> Vec<Line<'static>> {
        self.labels.iter().cloned().map(Line::from).collect()
    }
}

/// Most y labels a chart drawn in `area` (with its border and x axis) has room for, a blank
/// row between two labels.
pub fn y_label_room(area: Rect) -> usize {
    let plot_rows = usize::from(area.height.saturating_sub(4));
    plot_rows.div_ceil(2).clamp(2, 6)
}

/// `[lo, hi]` widened to at least `min_span` about its middle, then by 5% on each side so that
/// no curve runs along the chart's edge.
pub fn padded(lo: f64, hi: f64, min_span: f64) -> [f64; 2] {
    let widen = (min_span - (hi - lo)).max(0.0) / 2.0;
    let (lo, hi) = (lo - widen, hi + widen);
    let pad = 0.05 * (hi - lo);
    [lo - pad, hi + pad]
}

/// Round ticks (1, 2 or 5 times a power of ten) that cover `[lo, hi]`, at most `max_labels`.
pub fn linear([lo, hi]: [f64; 2], max_labels: usize) -> Ticks {
    let intervals = max_labels.max(2) - 1;
    let span = (hi - lo).max(1e-9);
    let mut power = 10f64.powf((span / intervals as f64).log10().floor());
    loop {
        for step in [power, 2.0 * power, 5.0 * power] {
            // A hair of slack, so that a bound already on a tick stays there.
            let first = (lo / step + 1e-9).floor();
            let last = (hi / step - 1e-9).ceil().max(first + 1.0);
            if (last - first) as usize <= intervals {
                let decimals = (-step.log10().floor()).max(0.0) as usize;
                return Ticks {
                    bounds: [first * step, last * step],
                    labels: (first as i64..=last as i64)
                        .map(|k| format!("{:.*}", decimals, k as f64 * step))
                        .collect(),
                };
            }
        }
        power *= 10.0;
    }
}

/// Ticks at powers of ten for values already in log10: `[log10 lo, log10 hi]`. Labels read as
/// the values (`0.01 0.1 1 10`); where the decades outnumber the labels, every k-th is one.
pub fn decades([lo, hi]: [f64; 2], max_labels: usize) -> Ticks {
    let intervals = max_labels.max(2) as u32 - 1;
    let first = (lo + 1e-9).floor() as i32;
    let span = ((hi - 1e-9).ceil() as i32 - first).max(1).unsigned_abs();
    let every = span.div_ceil(intervals);
    let last = first + (span.div_ceil(every) * every) as i32;
    Ticks {
        bounds: [f64::from(first), f64::from(last)],
        labels: (first..=last)
            .step_by(every as usize)
            .map(power_of_ten)
            .collect(),
    }
}

fn power_of_ten(exponent: i32) -> String {
    match exponent {
        -4..=-1 => format!(
            "{:.*}",
            exponent.unsigned_abs() as usize,
            10f64.powi(exponent)
        ),
        0..=5 => 10u32.pow(exponent as u32).to_string(),
        _ => format!("1e{exponent}"),
    }
}

/// Labels for a count axis (steps, epochs) over exactly `[lo, hi]`: both ends, and the middle
/// where it is a whole number or too wide a range for half a unit to show. Never a label twice.
pub fn count_labels([lo, hi]: [f64; 2]) -> Vec<String> {
    let (lo, hi) = (lo.round(), hi.round());
    let mid = (lo + hi) / 2.0;
    let mut labels = vec![lo];
    if hi - lo >= 2.0 && (mid.fract() == 0.0 || hi - lo >= 20.0) {
        labels.push(mid.round());
    }
    labels.push(hi);
    labels.dedup();
    labels.into_iter().map(|v| format!("{v:.0}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_ticks_are_round_distinct_and_bound_the_axis() {
        let t = linear([0.0, 1.7], 4);
        assert_eq!(t.labels, ["0", "1", "2"]);
        assert_eq!(t.bounds, [0.0, 2.0]);
        let t = linear([0.0, 1.7], 6);
        assert_eq!(t.labels, ["0.0", "0.5", "1.0", "1.5", "2.0"]);
        // One epoch of one phase: a single value, widened to a readable range.
        let t = linear(padded(98.4, 98.4, 1.0), 3);
        assert_eq!(t.labels, ["97", "98", "99"]);
        let t = linear(padded(98.4, 98.4, 1.0), 6);
        assert_eq!(t.labels, ["97.5", "98.0", "98.5", "99.0"]);
        assert_eq!(t.bounds, [97.5, 99.0]);
    }

    #[test]
    fn log_ticks_are_powers_of_ten() {
        let t = decades([0.014f64.log10(), 17.467f64.log10()], 6);
        assert_eq!(t.labels, ["0.01", "0.1", "1", "10", "100"]);
        assert_eq!(t.bounds, [-2.0, 2.0]);
        // Too many decades for the room: every other one, the bounds on labels.
        let t = decades([-3.5, 1.2], 3);
        assert_eq!(t.labels, ["0.0001", "0.1", "100"]);
        assert_eq!(t.bounds, [-4.0, 2.0]);
        assert_eq!(decades([0.2, 0.4], 4).labels, ["1", "10"]);
    }

    #[test]
    fn count_labels_never_repeat() {
        assert_eq!(count_labels([1.0, 2.0]), ["1", "2"]);
        assert_eq!(count_labels([1.0, 6.0]), ["1", "6"]);
        assert_eq!(count_labels([1.0, 7.0]), ["1", "4", "7"]);
        assert_eq!(count_labels([0.0, 311.0]), ["0", "156", "311"]);
        assert_eq!(count_labels([5.0, 5.0]), ["5"]);
    }
}
