//! How one run is driven to its end: headless behind its control socket, or in the cockpit
//! (with the offer to go on after a divergence); and how its end becomes the exit code.

use crate::console;
use crate::exit::Failure;
use crate::run::checkpoint::Checkpoint;
use crate::series::Front;
use crate::setup::setup_in;
use crate::train::{self, Ended, RunOutcome, TrainerSetup};
use std::path::Path;

/// Starts the trainer of a batch run behind its control socket, so that cockpits can attach.
pub(super) fn serve(
    setup: TrainerSetup,
    consumer: &crate::front::Consumer,
) -> train::TrainerHandle {
    let dir = setup.run.dir().to_path_buf();
    let history = resumed_history(&setup);
    crate::front::batch::serve(train::spawn(setup), &dir, history, consumer)
}

/// What a resumed run recorded before this process, for the screens that show it.
fn resumed_history(setup: &TrainerSetup) -> Vec<crate::protocol::Stamped> {
    crate::front::batch::resumed_history(setup.run.dir(), setup.resume.is_some())
}

/// One run in the cockpit; after a divergence, as often as the user takes the offer, the run
/// again from its last checkpoint with the lower lr (a failure to set that up ends it there).
pub(super) fn run_in_cockpit(
    cockpit: &mut crate::front::tui::Cockpit,
    setup: TrainerSetup,
) -> color_eyre::Result<crate::train::Ended> {
    let dir = setup.run.dir().to_path_buf();
    let history = resumed_history(&setup);
    let mut ended = cockpit.run(train::spawn(setup), None, history)?;
    while let Some(lower) = cockpit.take_retry() {
        let again = Checkpoint::read(&dir)
            .map_err(Failure::bad_input)
            .and_then(|ckpt| {
                let preset = ckpt
                    .live_preset(&dir, std::slice::from_ref(&lower))
                    .map_err(Failure::bad_input)?;
                setup_in(preset, &dir, Some(ckpt))
            });
        match again {
            Ok(setup) => {
                let history = resumed_history(&setup);
                ended = cockpit.run(train::spawn(setup), None, history)?
            }
            Err(e) => {
                cockpit.note(format!(
                    "kd-tui: cannot go on with {}={}: {e}",
                    lower.key, lower.value
                ));
                break;
            }
        }
    }
    Ok(ended)
}

/// Prints how a run ended: the table of the phases it finished on stdout, then its folder, its
/// outcome and, for a stopped run, the command that goes on with it (on stderr, so that a
/// pipe gets the table alone); `flags` go before `--resume` in that command (`--batch`).
/// Returns the exit code, or the run's failure.
pub(super) fn finish(ended: Ended, dir: &Path, flags: &str) -> Result<i32, Failure> {
    let width = crate::protocol::fit::stdout_columns();
    let folder = dir.display();
    match ended.outcome {
        RunOutcome::Completed(summary) => {
            console::say(summary.table(width));
            console::note(format_args!("kd-tui: completed; run folder {folder}"));
            Ok(0)
        }
        RunOutcome::Stopped { reason, summary } => {
            if summary.results().next().is_some() {
                console::say(format_args!("finished phases:\n{}", summary.table(width)));
            } else {
                console::say("no phase finished");
            }
            console::note(format_args!(
                "kd-tui: interrupted ({reason}); {}",
                resume_note(dir, flags)
            ));
            Ok(ended.signal.map_or(0, |s| 128 + s))
        }
        RunOutcome::Failed(error) => {
            console::note(format_args!("kd-tui: failed; run folder {folder}"));
            Err(error.into())
        }
    }
}

/// An interrupted run's folder and the command that goes on with it; `flags` go before
/// `--resume` in it (`--batch`, `--detach`).
pub(super) fn resume_note(dir: &Path, flags: &str) -> String {
    let folder = shell_word(&dir.display().to_string());
    let command = ["kd-tui", flags, "--resume", &folder]
        .into_iter()
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        "run folder {} (its checkpoint and a summary marked interrupted)\ngo on with: {command}",
        dir.display()
    )
}

/// `word` as a shell reads it back: quoted unless it is made of safe characters only.
pub(super) fn shell_word(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./:@%+=,".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn shell_words_read_back_as_given() {
        assert_eq!(super::shell_word("runs/digits-1"), "runs/digits-1");
        assert_eq!(super::shell_word("my runs/it's"), r"'my runs/it'\''s'");
        assert_eq!(super::shell_word(""), "''");
    }
}
