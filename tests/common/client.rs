//! A raw client of a job's control socket (newline-delimited JSON), as a test drives it.

use super::{kd_tui_on, wait_for, ChildGuard};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

pub const HELLO: &str = "{\"hello\":\"kd-tui\",\"version\":1}\n";

/// A raw client of a job's control socket.
pub struct Client {
    pub stream: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Client {
    /// Connects and sends `first` (a hello, or whatever a test wants to try).
    pub fn connect(dir: &Path, first: &str) -> Client {
        let mut stream = UnixStream::connect(dir.join("control.sock")).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        stream.write_all(first.as_bytes()).unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        Client { stream, reader }
    }

    /// The next line as JSON, `None` when the job hung up.
    pub fn line(&mut self) -> Option<Value> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(serde_json::from_str(&line).expect("the job sends JSON lines")),
        }
    }

    /// Reads until a line satisfies `want`; panics if the job hangs up first.
    pub fn until(&mut self, what: &str, want: impl Fn(&Value) -> bool) -> Value {
        loop {
            let line = self
                .line()
                .unwrap_or_else(|| panic!("the job hung up before {what}"));
            if want(&line) {
                return line;
            }
        }
    }

    pub fn send(&mut self, line: &str) {
        self.stream.write_all(line.as_bytes()).unwrap();
    }
}

/// A `--batch` job on digits whose teacher trains "forever", serving its socket; its stderr in
/// `<dir>.log`.
pub fn start_job(dir: &Path) -> ChildGuard {
    let child = kd_tui_on(["--batch", "--set", "teacher.epochs=100000"])
        .args(["--set", "student.epochs=2", "--out"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.with_extension("log")).unwrap())
        .spawn()
        .unwrap();
    let child = ChildGuard(child);
    wait_for("the control socket", || dir.join("control.sock").exists());
    child
}
