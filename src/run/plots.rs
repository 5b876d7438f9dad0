//! SVG plots of a run, drawn from its `metrics.jsonl`: training loss over steps and validation
//! accuracy over epochs, one line per phase. Reading the file (not the trainer's memory) means
//! any run folder can be plotted, including one that was stopped and resumed.

use crate::protocol::Phase;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

pub const LOSS_FILE: &str = "loss.svg";
pub const ACCURACY_FILE: &str = "accuracy.svg";

/// Same colours as the TUI's theme.
fn color(phase: Phase) -> RGBColor {
    match phase {
        Phase::Teacher => RGBColor(170, 0, 170),
        Phase::Baseline => RGBColor(0, 0, 200),
        Phase::Distilled => RGBColor(0, 150, 0),
    }
}

/// The range of the finite `values` with 5% headroom (at least 1e-3, so a flat series still
/// gets a visible range); `None` when there is none.
pub fn padded_bounds(values: impl Iterator<Item = f64>) -> Option<[f64; 2]> {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !lo.is_finite() {
        return None;
    }
    let pad = ((hi - lo) * 0.05).max(1e-3);
    Some([lo - pad, hi + pad])
}

/// One curve per phase, from the records of one type.
pub type Curves = Vec<(Phase, Vec<(f64, f64)>)>;

fn curves(
    records: &[serde_json::Value],
    kind: &str,
    x_key: &str,
    y: impl Fn(&serde_json::Value) -> Option<f64>,
) -> Curves {
    Phase::ALL
        .iter()
        .map(|&phase| {
            let points = records
                .iter()
                .filter(|r| r["type"] == kind && r["phase"] == phase.as_str())
                .filter_map(|r| Some((r[x_key].as_f64()?, y(r)?)))
                .filter(|(_, y)| y.is_finite())
                .collect();
            (phase, points)
        })
        .filter(|(_, points): &(Phase, Vec<(f64, f64)>)| !points.is_empty())
        .collect()
}

/// Draws `curves` into the SVG file `path`, written aside and renamed: a full disk leaves the
/// previous plot or none, never a truncated one. `labels`: the title and the axes' names.
pub fn draw(path: &Path, labels: [&str; 3], curves: &Curves) -> Result<(), String> {
    crate::run::replace_file(path, |tmp| {
        draw_at(tmp, labels, curves).map_err(std::io::Error::other)
    })
    .map_err(|e| format!("{}: {e}", path.display()))
}

fn draw_at(
    path: &Path,
    [title, x_label, y_label]: [&str; 3],
    curves: &Curves,
) -> Result<(), String> {
    let fail = |e: &dyn std::fmt::Display| e.to_string();
    let points = || curves.iter().flat_map(|(_, c)| c.iter());
    let x_max = points().map(|p| p.0).fold(1.0, f64::max);
    let [lo, hi] = padded_bounds(points().map(|p| p.1)).ok_or_else(|| fail(&"no finite values"))?;
    let root = SVGBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, lo..hi)
        .map_err(|e| fail(&e))?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .draw()
        .map_err(|e| fail(&e))?;
    for (phase, points) in curves {
        let c = color(*phase);
        chart
            .draw_series(LineSeries::new(points.iter().copied(), c.stroke_width(2)))
            .map_err(|e| fail(&e))?
            .label(phase.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))
}

/// Writes `loss.svg` and `accuracy.svg` into the run folder; returns the files written (none
/// before the first step).
pub fn write(run_dir: &Path) -> Plots {
    let metrics = run_dir.join("metrics.jsonl");
    let text = match std::fs::read_to_string(&metrics) {
        Ok(text) => text,
        Err(e) => {
            return Plots {
                written: Vec::new(),
                errors: vec![format!("{}: {e}", metrics.display())],
            }
        }
    };
    let records: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let loss = curves(&records, "step", "step", |r| r["loss"].as_f64());
    let accuracy = curves(&records, "epoch", "epoch", |r| {
        r["val_acc"].as_f64().map(|a| 100.0 * a)
    });
    let (mut written, mut failed) = (Vec::new(), Vec::new());
    for (file, title, x, y, curves) in [
        (LOSS_FILE, "training loss", "step", "loss", &loss),
        (
            ACCURACY_FILE,
            "validation accuracy",
            "epoch",
            "accuracy %",
            &accuracy,
        ),
    ] {
        if !curves.is_empty() {
            // Each plot on its own: one that cannot be written does not keep the other out.
            let path = run_dir.join(file);
            match draw(&path, [title, x, y], curves) {
                Ok(()) => written.push(path),
                Err(e) => failed.push(e),
            }
        }
    }
    Plots {
        written,
        errors: failed,
    }
}

/// The plots written, and why others were not.
#[derive(Debug, PartialEq)]
pub struct Plots {
    pub written: Vec<PathBuf>,
    pub errors: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plots_every_phase_from_the_metrics() {
        let dir = tempfile::tempdir().unwrap();
        let mut lines = Vec::new();
        for (phase, scale) in [("teacher", 1.0), ("distilled", 2.0)] {
            for step in 1..=10 {
                lines.push(format!(r#"{{"type":"step","phase":"{phase}","epoch":1,"step":{step},"wall_time":0.1,"loss":{}}}"#, scale / step as f64));
            }
            lines.push(format!(r#"{{"type":"epoch","phase":"{phase}","epoch":1,"step":10,"wall_time":0.2,"val_acc":0.9}}"#));
        }
        std::fs::write(dir.path().join("metrics.jsonl"), lines.join("\n")).unwrap();
        let plots = write(dir.path());
        assert_eq!(plots.errors, Vec::<String>::new());
        let written = plots.written;
        assert_eq!(
            written,
            vec![dir.path().join(LOSS_FILE), dir.path().join(ACCURACY_FILE)]
        );
        let svg = std::fs::read_to_string(&written[0]).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("training loss"));
        assert!(
            svg.contains("teacher") && svg.contains("distilled") && !svg.contains(">baseline<")
        );
        // A curve and a legend line in each plotted phase's colour; none in the baseline's.
        assert_eq!(svg.matches(r##"stroke="#AA00AA""##).count(), 2, "teacher");
        assert_eq!(svg.matches(r##"stroke="#009600""##).count(), 2, "distilled");
        assert_eq!(svg.matches(r##"stroke="#0000C8""##).count(), 0, "baseline");
    }

    #[test]
    fn nothing_to_plot_before_the_first_step() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("metrics.jsonl"),
            r#"{"type":"run_started","phase":null,"epoch":0,"step":0,"wall_time":0.0}"#,
        )
        .unwrap();
        assert_eq!(
            write(dir.path()),
            Plots {
                written: Vec::new(),
                errors: Vec::new()
            }
        );
    }
}
