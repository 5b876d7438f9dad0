//! Where runs live when no folder is named, the same for new runs, `ls` and `attach`:
//! `$KD_TUI_RUNS`, else `./runs` where it exists (a project's own runs), else the user's data
//! folder (`$XDG_DATA_HOME/kd-tui/runs`, `~/.local/share/kd-tui/runs`), so that `kd-tui ls`
//! finds them from any directory.

use crate::user_dirs::{from_env, xdg};
use std::path::PathBuf;

/// The variable that names the runs folder.
pub const RUNS_ENV: &str = "KD_TUI_RUNS";

/// The default runs folder and why it is that one (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunsRoot {
    pub dir: PathBuf,
    pub why: &'static str,
}

impl RunsRoot {
    pub fn find() -> RunsRoot {
        let here = PathBuf::from("runs");
        if let Some(dir) = from_env(RUNS_ENV) {
            return RunsRoot {
                dir,
                why: "from KD_TUI_RUNS",
            };
        }
        if here.is_dir() {
            return RunsRoot {
                dir: here,
                why: "./runs exists here; KD_TUI_RUNS is unset",
            };
        }
        match xdg("XDG_DATA_HOME", ".local/share") {
            Some(data) => RunsRoot {
                dir: data.join("runs"),
                why: "the per-user default: KD_TUI_RUNS is unset and there is no ./runs here",
            },
            None => RunsRoot {
                dir: here,
                why: "KD_TUI_RUNS, XDG_DATA_HOME and HOME are all unset",
            },
        }
    }

    /// `DIR (why)`, for messages that say where kd-tui looked.
    pub fn describe(&self) -> String {
        format!("{} ({})", self.dir.display(), self.why)
    }
}
