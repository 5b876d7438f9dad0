//! A tmux session driving kd-tui in a real terminal; killed on drop. tmux is required
//! (`scripts/kd test` installs it). Every session has a tmux server of its own (`-L`): on a
//! shared server, a test whose session ends last shuts the server down while another test's
//! `new-session` is connecting to it ("server exited unexpectedly").

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A tmux session running kd-tui, on its own tmux server; killed on drop.
pub struct Session {
    pub name: String,
    pub dir: tempfile::TempDir,
}

fn tmux_on(server: &str) -> Command {
    let mut command = Command::new("tmux");
    command
        .args(["-L", server, "-f", "/dev/null"])
        .env_remove("TMUX");
    command
}

impl Session {
    /// Runs `command` (a shell command line) in a new detached tmux session of the given size.
    /// `{dir}` in it stands for a temporary folder of the session's own.
    pub fn shell(tag: &str, width: u16, height: u16, command: &str) -> Session {
        let dir = tempfile::tempdir().unwrap();
        let name = format!("kd-tui-test-{tag}-{}", std::process::id());
        let command = command.replace("{dir}", &dir.path().display().to_string());
        let (w, h) = (width.to_string(), height.to_string());
        let status = tmux_on(&name)
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
            .status()
            .expect("tmux is required for the TUI tests (scripts/kd test installs it)");
        assert!(status.success(), "tmux new-session failed");
        Session { name, dir }
    }

    /// `kd-tui attach DIR` at 120x40; its exit code goes to the session's `exit-code` file.
    pub fn attach(tag: &str, dir: &Path) -> Session {
        Session::shell(
            tag,
            120,
            40,
            &format!(
                "{} attach {}; echo $? > {{dir}}/exit-code; sleep 600",
                env!("CARGO_BIN_EXE_kd-tui"),
                dir.display()
            ),
        )
    }

    /// `X`, then `y` at the question: stops the attached job; the cockpit's exit code.
    pub fn stop_job(&self) -> i32 {
        self.keys(&["X"]);
        self.wait_screen("the stop question", |screen| {
            screen.contains("Stop the job?")
        });
        self.keys(&["y"]);
        self.wait_exit()
    }

    /// Runs a tmux command on this session's server; returns its stdout.
    pub fn tmux(&self, args: &[&str]) -> String {
        let out = tmux_on(&self.name)
            .args(args)
            .output()
            .expect("tmux is required for the TUI tests (scripts/kd test installs it)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Kills the session (its processes get SIGHUP, as when a terminal closes).
    pub fn kill(&self) {
        self.tmux(&["kill-session", "-t", &self.name]);
    }

    pub fn run_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    pub fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", &self.name])
    }

    pub fn keys(&self, keys: &[&str]) {
        for k in keys {
            self.tmux(&["send-keys", "-t", &self.name, k]);
        }
    }

    /// Opens the editor on the row `down` rows below the first, replaces its 4-character value
    /// with `value` and applies it.
    pub fn edit_row(&self, down: usize, value: &str) {
        let mut keys = vec!["Down"; down];
        keys.push("Enter");
        self.keys(&keys);
        self.wait_screen("the editor", |screen| screen.contains("Enter apply"));
        self.keys(&["BSpace"; 4]);
        self.type_text(value);
        self.keys(&["Enter"]);
    }

    pub fn type_text(&self, text: &str) {
        self.tmux(&["send-keys", "-t", &self.name, "-l", "--", text]);
    }

    pub fn pane(&self, format: &str) -> String {
        self.tmux(&["display-message", "-p", "-t", &self.name, format])
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
                "timed out waiting for {what}; screen:\n{screen}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The end of every job's log under the session's folder: why a job the screen waited on
    /// is not there.
    fn logs(&self) -> String {
        let mut found = Vec::new();
        let mut folders = vec![self.dir.path().to_path_buf()];
        while let Some(folder) = folders.pop() {
            for entry in std::fs::read_dir(&folder).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    folders.push(path);
                } else if path.extension().is_some_and(|e| e == "log") {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    let start = text.len().saturating_sub(4000);
                    let tail = text.get(start..).unwrap_or(&text);
                    found.push(format!("{}:\n{tail}", path.display()));
                }
            }
        }
        found.join("\n")
    }

    pub fn wait_exit(&self) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(code) = self.exit_code() {
                return code;
            }
            assert!(
                Instant::now() < deadline,
                "kd-tui did not exit; screen:\n{}\n{}",
                self.screen(),
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.tmux(&["kill-server"]);
    }
}
