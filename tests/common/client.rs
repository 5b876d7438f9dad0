//! A raw client of a job's control socket (newline-delimited JSON), as a test drives it.

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
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
