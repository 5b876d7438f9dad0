//! Jobs that outlive the terminal: a training job serves a control socket in its run folder
//! (`server`), cockpits in other processes attach to it (`client`), `--detach` starts a job that
//! belongs to no terminal (`detach`), and `kd-tui ls` lists runs with their state (`jobs`).
//!
//! The wire: newline-delimited JSON over a Unix domain socket (mode 0600: its owner only; remote
//! use is `ssh host kd-tui attach`). The client's first line is a `Hello`; the job answers a
//! `Welcome` (or an error, and hangs up), then every event of the run so far and the live ones,
//! each a `Stamped` exactly as `metrics.jsonl` holds it. After the hello the client sends
//! `Command`s; a line the job cannot take gets an `{"error": ...}` line back.

pub mod client;
pub mod jobs;
pub mod limits;
mod peer;
pub mod server;
pub mod wire;

use crate::protocol::Stamped;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The wire's version: a client and a job that differ refuse each other in the handshake.
pub const VERSION: u32 = 1;

/// The socket's file in the run folder.
pub const SOCKET: &str = "control.sock";

/// Longest line the job reads from a client; a longer one gets an error and a hang-up.
pub const MAX_LINE: usize = 64 * 1024;

/// Longest socket path a Unix socket takes (`sun_path` is 108 bytes on Linux, its last a NUL).
pub const MAX_SOCKET_PATH: usize = 107;

pub fn socket_path(run_dir: &Path) -> PathBuf {
    run_dir.join(SOCKET)
}

/// A run folder whose socket path is too long to bind or connect to.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("the control socket's path {path} is {len} bytes; a Unix socket's path takes at most {MAX_SOCKET_PATH} (pick a shorter --out)")]
pub struct PathTooLong {
    pub path: String,
    pub len: usize,
}

/// `run_dir`'s socket path, if a Unix socket can take it.
pub fn checked_socket_path(run_dir: &Path) -> Result<PathBuf, PathTooLong> {
    let path = socket_path(run_dir);
    let len = path.as_os_str().len();
    if len > MAX_SOCKET_PATH {
        return Err(PathTooLong {
            path: path.display().to_string(),
            len,
        });
    }
    Ok(path)
}

/// A client's first line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hello {
    /// Always "kd-tui".
    pub hello: String,
    pub version: u32,
}

impl Hello {
    pub fn new() -> Hello {
        Hello {
            hello: "kd-tui".into(),
            version: VERSION,
        }
    }
}

impl Default for Hello {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Welcome {
    pub version: u32,
    pub pid: u32,
    pub run_dir: String,
    /// Events of the run so far, sent right after this line.
    pub history: usize,
}

/// A line from the job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum JobLine {
    Welcome { welcome: Welcome },
    Error { error: String },
    Event(Box<Stamped>),
}
