//! `metrics.jsonl` on a resume: what the stopped process recorded after its checkpoint is
//! trained again, so those records are cut, and the history holds every epoch once.

use crate::protocol::Phase;
use std::io::{self, BufRead, BufReader};
use std::path::Path;

/// The fields of a record that say where in the run it was made.
#[derive(serde::Deserialize)]
struct At {
    #[serde(rename = "type")]
    kind: String,
    phase: Option<Phase>,
    #[serde(default)]
    step: usize,
}

/// Cuts `metrics.jsonl` back to what a checkpoint holds (`covers(phase, step)`): in the
/// records since the last `run_started` (the stopped process's), from the first one made past
/// the checkpoint to the end. Returns how many records were cut.
pub fn cut_after(path: &Path, covers: impl Fn(Phase, usize) -> bool) -> io::Result<usize> {
    let file = std::fs::File::open(path)?;
    let (mut offset, mut started, mut cut_at, mut records) = (0u64, false, None, 0usize);
    for line in BufReader::new(file).split(b'\n') {
        let line = line?;
        match serde_json::from_slice::<At>(&line).ok() {
            // The stopped process's records begin here: only they can be past the checkpoint.
            Some(at) if at.kind == "run_started" => (started, cut_at, records) = (true, None, 0),
            Some(at)
                if started && cut_at.is_none() && at.phase.is_some_and(|p| !covers(p, at.step)) =>
            {
                cut_at = Some(offset);
            }
            _ => {}
        }
        if cut_at.is_some() {
            records += 1;
        }
        offset += line.len() as u64 + 1;
    }
    match cut_at {
        Some(at) => {
            std::fs::OpenOptions::new()
                .write(true)
                .open(path)?
                .set_len(at)?;
            Ok(records)
        }
        None => Ok(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: &str, phase: Option<&str>, step: usize) -> String {
        let phase = phase.map_or("null".into(), |p| format!("\"{p}\""));
        format!("{{\"type\":\"{kind}\",\"phase\":{phase},\"epoch\":1,\"step\":{step},\"wall_time\":0}}\n")
    }

    #[test]
    fn only_what_the_stopped_process_did_after_the_checkpoint_is_cut() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("metrics.jsonl");
        // A completed run, then an extension whose baseline was killed at step 60 after a
        // checkpoint at step 50: the old distilled records stay, the baseline's 55 and 60 go.
        let kept = [
            record("run_started", None, 0),
            record("step", Some("teacher"), 10),
            record("step", Some("baseline"), 40),
            record("step", Some("distilled"), 40),
            record("finished", None, 40),
            record("run_started", None, 0),
            record("step", Some("baseline"), 45),
            record("epoch", Some("baseline"), 50),
            record("checkpoint", Some("baseline"), 50),
        ]
        .concat();
        let cut = [
            record("step", Some("baseline"), 55),
            record("log", None, 55),
            record("step", Some("baseline"), 60),
        ]
        .concat();
        std::fs::write(&path, format!("{kept}{cut}")).unwrap();
        // The checkpoint holds the teacher, the baseline up to step 50, the distilled student as
        // it completed (step 40).
        let covers = |p: Phase, step: usize| match p {
            Phase::Teacher => true,
            Phase::Baseline => step <= 50,
            Phase::Distilled => step <= 40,
        };
        assert_eq!(cut_after(&path, covers).unwrap(), 3);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), kept);
        // Nothing after the point: nothing cut.
        assert_eq!(cut_after(&path, covers).unwrap(), 0);
        // A phase begun past the checkpoint is cut whole.
        let distilled = record("step", Some("distilled"), 51);
        std::fs::write(&path, format!("{kept}{distilled}")).unwrap();
        assert_eq!(cut_after(&path, covers).unwrap(), 1);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), kept);
    }
}
