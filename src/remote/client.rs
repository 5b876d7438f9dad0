//! The cockpit's side of the control socket: connect, say hello, then turn the job's lines into
//! the same channels the in-process cockpit reads, and its commands into lines.

use super::{Hello, JobLine, Welcome};
use crate::protocol::{Command, Event, LogLevel, Position, Stamped};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;
use tokio::sync::mpsc;

/// A job's stream, as the cockpit reads it.
pub struct Attached {
    pub welcome: Welcome,
    pub commands: std_mpsc::Sender<Command>,
    /// Everything the job sends: its history first, then live events (steps included: the
    /// job has already thinned them for this client).
    pub events: mpsc::UnboundedReceiver<Stamped>,
    /// Stays empty; open for as long as the job's stream is.
    pub steps: mpsc::Receiver<Stamped>,
}

/// Why a client could not attach.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// No job serves this folder (none ever did, or it ended or died).
    #[error("no job serves {0}")]
    NotServed(String),
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

fn line_of(value: &impl serde::Serialize) -> Vec<u8> {
    let mut line = serde_json::to_vec(value).expect("serialisable");
    line.push(b'\n');
    line
}

/// Connects to the job serving `run_dir` and completes the handshake.
pub fn connect(run_dir: &Path) -> Result<Attached, AttachError> {
    let path = super::socket_path(run_dir);
    let mut stream = UnixStream::connect(&path)
        .map_err(|e| AttachError::NotServed(format!("{} ({e})", run_dir.display())))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(&line_of(&Hello::new()))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut first = String::new();
    reader.read_line(&mut first)?;
    let welcome = match serde_json::from_str::<JobLine>(&first) {
        Ok(JobLine::Welcome { welcome }) => welcome,
        Ok(JobLine::Error { error }) => return Err(AttachError::Refused(error)),
        _ => {
            return Err(AttachError::Refused(format!(
                "{} did not answer as a kd-tui job",
                path.display()
            )))
        }
    };
    stream.set_read_timeout(None)?;
    let (events_tx, events) = mpsc::unbounded_channel();
    let (steps_tx, steps) = mpsc::channel(1);
    std::thread::Builder::new()
        .name("attach-reader".into())
        .spawn(move || read_job(reader, events_tx, steps_tx))?;
    let (commands, command_rx) = std_mpsc::channel::<Command>();
    std::thread::Builder::new()
        .name("attach-writer".into())
        .spawn(move || {
            for command in command_rx {
                if stream.write_all(&line_of(&command)).is_err() {
                    break;
                }
            }
        })?;
    Ok(Attached {
        welcome,
        commands,
        events,
        steps,
    })
}

/// Until the job hangs up: its events into the channel, its refusals as warnings in the log.
fn read_job(
    reader: BufReader<UnixStream>,
    events: mpsc::UnboundedSender<Stamped>,
    _steps: mpsc::Sender<Stamped>,
) {
    let mut last = (
        Position {
            phase: None,
            epoch: 0,
            step: 0,
        },
        0.0,
    );
    for line in reader.lines() {
        let Ok(line) = line else { break };
        let stamped = match serde_json::from_str::<JobLine>(&line) {
            Ok(JobLine::Event(e)) => *e,
            Ok(JobLine::Error { error }) => Stamped {
                at: last.0,
                wall_time: last.1,
                event: Event::Log {
                    level: LogLevel::Warn,
                    message: format!("the job refused: {error}"),
                },
            },
            _ => continue,
        };
        last = (stamped.at, stamped.wall_time);
        if events.send(stamped).is_err() {
            break;
        }
    }
}

/// The records of a run's `metrics.jsonl` (a read-only cockpit's history), its last
/// `crate::run::files::HISTORY_BYTES` at most; unreadable lines (a killed job's last, half-written one) are
/// left out.
pub fn history(run_dir: &Path) -> std::io::Result<Vec<Stamped>> {
    crate::run::files::records(
        &run_dir.join("metrics.jsonl"),
        crate::run::files::HISTORY_BYTES,
    )
}
