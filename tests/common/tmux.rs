//! A tmux session driving kd-tui in a real terminal; killed on drop. tmux is required
//! (`scripts/kd test` installs it).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// A tmux session running kd-tui; killed on drop.
pub struct Session {
    pub name: String,
    pub dir: tempfile::TempDir,
}

pub fn tmux(args: &[&str]) -> String {
    let out = Command::new("tmux")
        .args(args)
        .output()
        .expect("tmux is required for the TUI tests (scripts/kd test installs it)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Session {
    /// Runs `command` (a shell command line) in a new detached tmux session of the given size.
    /// `{dir}` in it stands for a temporary folder of the session's own.
    pub fn shell(tag: &str, width: u16, height: u16, command: &str) -> Session {
        let dir = tempfile::tempdir().unwrap();
        let name = format!("kd-tui-test-{tag}-{}", std::process::id());
        let command = command.replace("{dir}", &dir.path().display().to_string());
        let (w, h) = (width.to_string(), height.to_string());
        let status = Command::new("tmux")
            .args([
                "new-session",
                "-d",
                "-s",
                &name,
                "-x",
                &w,
                "-y",
                &h,
                &command,
            ])
            .env_remove("TMUX")
            .status()
            .expect("tmux is required for the TUI tests (scripts/kd test installs it)");
        assert!(status.success(), "tmux new-session failed");
        Session { name, dir }
    }

    /// Kills the session (its processes get SIGHUP, as when a terminal closes).
    pub fn kill(&self) {
        tmux(&["kill-session", "-t", &self.name]);
    }

    pub fn run_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    pub fn screen(&self) -> String {
        tmux(&["capture-pane", "-p", "-t", &self.name])
    }

    pub fn keys(&self, keys: &[&str]) {
        for k in keys {
            tmux(&["send-keys", "-t", &self.name, k]);
        }
    }

    pub fn type_text(&self, text: &str) {
        tmux(&["send-keys", "-t", &self.name, "-l", "--", text]);
    }

    pub fn pane(&self, format: &str) -> String {
        tmux(&["display-message", "-p", "-t", &self.name, format])
            .trim()
            .to_string()
    }

    pub fn exit_code(&self) -> Option<i32> {
        std::fs::read_to_string(self.dir.path().join("exit-code"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Waits until `check` passes on the screen, or fails with the last screen shown.
    pub fn wait_screen(&self, what: &str, check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let screen = self.screen();
            if check(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn wait_exit(&self) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(code) = self.exit_code() {
                return code;
            }
            assert!(
                Instant::now() < deadline,
                "kd-tui did not exit; screen:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        tmux(&["kill-session", "-t", &self.name]);
    }
}
