//! One client of the control socket: its hello, its lines in (bounded: `limits`), the run's
//! history and live events out.

use super::limits::{self, Budget, Flood, Verdict};
use super::wire::{self, LineError};
use super::{JobLine, Welcome, MAX_LINE};
use crate::console;
use crate::protocol::{Command, Stamped};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

/// Time a client has to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// History records copied out of the shared history at a time.
const HISTORY_CHUNK: usize = 256;

/// The run's records so far, shared by the hub (which appends) and every client's writer.
pub type History = Arc<RwLock<Vec<Stamped>>>;

/// What the job logs about its clients (stderr: the job's log).
pub fn log(message: impl std::fmt::Display) {
    console::note(format_args!("kd-tui: control socket: {message}"));
}

/// A client past its hello.
pub struct Registration {
    pub reader: BufReader<OwnedReadHalf>,
    pub writer: OwnedWriteHalf,
}

/// Why reading a line ended.
enum Read {
    Line,
    Closed,
    Refused(LineError),
    Failed(std::io::Error),
}

/// Reads one line of at most `MAX_LINE` bytes (a longer one is refused unread).
async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(reader: &mut R, buf: &mut Vec<u8>) -> Read {
    buf.clear();
    match reader
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', buf)
        .await
    {
        Ok(0) => Read::Closed,
        Ok(_) if buf.len() > MAX_LINE => Read::Refused(LineError::TooLong),
        Ok(_) => Read::Line,
        Err(e) => Read::Failed(e),
    }
}

pub async fn reply_error(writer: &mut OwnedWriteHalf, error: String) {
    let mut line = serde_json::to_vec(&JobLine::Error { error }).expect("serialisable");
    line.push(b'\n');
    let _ = tokio::time::timeout(HELLO_TIMEOUT, writer.write_all(&line)).await;
}

pub async fn handshake(stream: UnixStream, register: mpsc::UnboundedSender<Registration>) {
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    let mut buf = Vec::new();
    let said = tokio::time::timeout(HELLO_TIMEOUT, read_line(&mut reader, &mut buf)).await;
    let refusal = match said {
        Err(_) => "no hello within 5 s".to_string(),
        Ok(Read::Closed) => return,
        Ok(Read::Failed(e)) => e.to_string(),
        Ok(Read::Refused(e)) => e.to_string(),
        Ok(Read::Line) => match wire::parse_hello(&buf) {
            Ok(_) => {
                let _ = register.send(Registration { reader, writer });
                return;
            }
            Err(e) => e.to_string(),
        },
    };
    log(format!("client refused: {refusal}"));
    reply_error(&mut writer, refusal).await;
}

fn line_of(line: JobLine) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(&line).expect("serialisable");
    bytes.push(b'\n');
    bytes
}

/// The welcome, the first `welcome.history` records, then live events and error lines.
pub async fn write_client(
    writer: OwnedWriteHalf,
    welcome: Welcome,
    history: History,
    mut queue: mpsc::Receiver<Stamped>,
    mut errors: mpsc::Receiver<String>,
) {
    let mut w = BufWriter::new(writer);
    let upto = welcome.history;
    let mut ok = w
        .write_all(&line_of(JobLine::Welcome { welcome }))
        .await
        .is_ok();
    // In chunks from the shared history: no client holds a copy of it all.
    let mut at = 0;
    while ok && at < upto {
        let chunk: Vec<Stamped> = {
            let h = history.read().unwrap_or_else(PoisonError::into_inner);
            h[at..upto.min(at + HISTORY_CHUNK).min(h.len())].to_vec()
        };
        if chunk.is_empty() {
            break;
        }
        at += chunk.len();
        for e in chunk {
            ok = ok
                && w.write_all(&line_of(JobLine::Event(Box::new(e))))
                    .await
                    .is_ok();
        }
    }
    while ok {
        ok = w.flush().await.is_ok();
        let line = tokio::select! {
            e = queue.recv() => match e {
                Some(e) => JobLine::Event(Box::new(e)),
                None => break,
            },
            // The client hung up, or was refused a line it cannot be read past.
            error = errors.recv() => match error {
                Some(error) => JobLine::Error { error },
                None => break,
            },
        };
        ok = ok && w.write_all(&line_of(line)).await.is_ok();
    }
    let _ = w.flush().await;
    let _ = w.shutdown().await;
}

/// A client's lines, each within its budget and the job's, as commands to the trainer.
pub async fn read_client(
    mut reader: BufReader<OwnedReadHalf>,
    commands: std_mpsc::Sender<Command>,
    errors: mpsc::Sender<String>,
    job: Arc<Mutex<Budget>>,
    writer: AbortHandle,
) {
    let mut buf = Vec::new();
    let mut flood = Flood::new(Instant::now());
    loop {
        let read = read_line(&mut reader, &mut buf).await;
        let now = Instant::now();
        match (read, flood.line(now)) {
            (Read::Closed, _) => return,
            (Read::Failed(e), _) => return log(format!("client disconnected: {e}")),
            (Read::Refused(e), _) => {
                log(format!("client disconnected: {e}"));
                let _ = errors.try_send(e.to_string());
                return;
            }
            (Read::Line, Verdict::Take) => {}
            (Read::Line, Verdict::Drop(tell)) => {
                if tell {
                    log("a client sends lines too fast; dropping them");
                    let _ = errors.try_send(limits::dropped_message());
                }
                continue;
            }
            (Read::Line, Verdict::CutOff) => {
                log("a client kept flooding; disconnected");
                let _ = errors.try_send(limits::dropped_message());
                drop(errors);
                // A moment to write the reason, then the connection goes.
                tokio::time::sleep(Duration::from_secs(1)).await;
                writer.abort();
                return;
            }
        }
        let refusal = match wire::parse_command(&buf) {
            Ok(None) => continue,
            Ok(Some(command)) => {
                // A stop ends the run: it never waits behind other clients' flood.
                let stop = matches!(command, Command::Stop { .. });
                let taken = stop || job.lock().unwrap_or_else(PoisonError::into_inner).take(now);
                if !taken {
                    if flood.tell(now) {
                        let _ = errors.try_send(format!(
                            "the job takes at most {} commands a second from all its clients; dropped",
                            limits::JOB_PER_SECOND
                        ));
                    }
                    continue;
                }
                match commands.send(command) {
                    Ok(()) => continue,
                    Err(_) => "the run has ended".to_string(),
                }
            }
            Err(e) => e.to_string(),
        };
        log(format!("client sent a line refused: {refusal}"));
        let _ = errors.try_send(refusal);
    }
}
