//! The job's side of the control socket: a hub between the trainer and the job's own front end.
//!
//! The hub forwards every trainer event to the front end as before and to each attached client,
//! and keeps the run's history for clients that attach later. It never waits on a client: each
//! has a bounded queue; a step that does not fit is dropped for that client, and a client that
//! falls so far behind that a run-level event does not fit is disconnected. Clients' commands go
//! straight to the trainer's command channel.

use super::{Hello, JobLine, Welcome, MAX_LINE, VERSION};
use crate::protocol::{Command, Event, Stamped};
use crate::train::TrainerHandle;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Events queued for one client before it counts as not reading.
const CLIENT_QUEUE: usize = 1024;
/// Clients attached at once.
const MAX_CLIENTS: usize = 64;
/// Time a client has to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// Time the clients get to read the run's last events before the job exits.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// A bound control socket, not yet serving.
pub struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
    run_dir: PathBuf,
}

/// What the job logs about its clients (stderr: the job's log).
fn log(message: impl std::fmt::Display) {
    eprintln!("kd-tui: control socket: {message}");
}

impl ControlSocket {
    /// Binds `RUN_DIR/control.sock`, readable and writable by its owner only. The caller holds
    /// the run folder's job lock, so a socket already there is a crashed job's: it is replaced.
    /// Must be called within the runtime that will serve it.
    pub fn bind(run_dir: &Path) -> std::io::Result<ControlSocket> {
        let path = super::checked_socket_path(run_dir).map_err(std::io::Error::other)?;
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        // Created 0600 from the start (umask), not opened up then narrowed.
        let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o177));
        let bound = UnixListener::bind(&path);
        rustix::process::umask(old);
        let listener = bound?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        Ok(ControlSocket {
            listener,
            path,
            run_dir: run_dir.to_path_buf(),
        })
    }

    /// Puts the hub between the trainer and the front end; the handle returned gives the front
    /// end the same events. `history`: the run's earlier records (a resumed run's).
    pub fn serve(
        self,
        handle: TrainerHandle,
        history: Vec<Stamped>,
        runtime: &tokio::runtime::Runtime,
    ) -> TrainerHandle {
        let (front_events, events) = mpsc::unbounded_channel();
        let (front_steps, steps) = mpsc::channel(crate::train::STEP_CHANNEL_CAPACITY);
        let (register, registrations) = mpsc::unbounded_channel();
        let welcome = Welcome {
            version: VERSION,
            pid: std::process::id(),
            run_dir: self.run_dir.display().to_string(),
            history: 0,
        };
        let accepting = runtime.spawn(accept(self.listener, register));
        runtime.spawn(hub(
            Hub {
                history,
                clients: Vec::new(),
                commands: handle.commands.clone(),
                welcome,
            },
            handle.events,
            handle.steps,
            front_events,
            front_steps,
            registrations,
            (accepting, self.path),
        ));
        TrainerHandle {
            commands: handle.commands,
            events,
            steps,
            thread: handle.thread,
        }
    }
}

/// A client past its hello.
struct Registration {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

async fn accept(listener: UnixListener, register: mpsc::UnboundedSender<Registration>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(handshake(stream, register.clone()));
            }
            Err(e) => {
                log(format!("accept failed: {e}"));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Reads one line of at most `MAX_LINE` bytes; `Err` with the reason to give the client.
async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
) -> Result<bool, String> {
    buf.clear();
    let n = reader
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', buf)
        .await
        .map_err(|e| e.to_string())?;
    if n == 0 {
        return Ok(false);
    }
    if buf.len() > MAX_LINE {
        return Err(format!("line longer than {MAX_LINE} bytes"));
    }
    Ok(true)
}

async fn reply_error(writer: &mut OwnedWriteHalf, error: String) {
    let mut line = serde_json::to_vec(&JobLine::Error { error }).expect("serialisable");
    line.push(b'\n');
    let _ = tokio::time::timeout(HELLO_TIMEOUT, writer.write_all(&line)).await;
}

async fn handshake(stream: UnixStream, register: mpsc::UnboundedSender<Registration>) {
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    let mut buf = Vec::new();
    let said = tokio::time::timeout(HELLO_TIMEOUT, read_line(&mut reader, &mut buf)).await;
    let refusal = match said {
        Err(_) => "no hello within 5 s".to_string(),
        Ok(Ok(false)) => return,
        Ok(Err(e)) => e,
        Ok(Ok(true)) => match serde_json::from_slice::<Hello>(&buf) {
            Ok(h) if h.hello == "kd-tui" && h.version == VERSION => {
                let _ = register.send(Registration { reader, writer });
                return;
            }
            Ok(h) => format!(
                "this job speaks version {VERSION}; the client speaks {} (same kd-tui on both sides?)",
                h.version
            ),
            Err(e) => format!("expected a hello line first: {e}"),
        },
    };
    log(format!("client refused: {refusal}"));
    reply_error(&mut writer, refusal).await;
}

struct Client {
    events: mpsc::Sender<Stamped>,
    writer: JoinHandle<()>,
    reader: JoinHandle<()>,
}

struct Hub {
    history: Vec<Stamped>,
    clients: Vec<Client>,
    commands: std_mpsc::Sender<Command>,
    welcome: Welcome,
}

impl Hub {
    fn attach(&mut self, r: Registration) {
        let (events, queue) = mpsc::channel(CLIENT_QUEUE);
        let (errors_tx, errors) = mpsc::channel(16);
        if self.clients.len() >= MAX_CLIENTS {
            let mut w = r.writer;
            log("client refused: too many clients");
            tokio::spawn(async move {
                reply_error(&mut w, format!("too many clients (at most {MAX_CLIENTS})")).await
            });
            return;
        }
        let welcome = Welcome {
            history: self.history.len(),
            ..self.welcome.clone()
        };
        let writer = tokio::spawn(write_client(
            r.writer,
            welcome,
            self.history.clone(),
            queue,
            errors,
        ));
        let reader = tokio::spawn(read_client(r.reader, self.commands.clone(), errors_tx));
        self.clients.push(Client {
            events,
            writer,
            reader,
        });
    }

    /// Every client gets run-level events or is disconnected; steps are dropped for a client
    /// whose queue is full.
    fn broadcast(&mut self, event: &Stamped) {
        let droppable = matches!(event.event, Event::Step { .. });
        self.clients
            .retain(|c| match c.events.try_send(event.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) if droppable => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    log("a client stopped reading; disconnected");
                    c.writer.abort();
                    c.reader.abort();
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    c.reader.abort();
                    false
                }
            });
    }

    /// The run is over: the clients get a moment to read its end, then the socket goes.
    async fn close(self, accepting: JoinHandle<()>, socket: &Path) {
        accepting.abort();
        let _ = std::fs::remove_file(socket);
        let mut writers = Vec::new();
        for c in self.clients {
            c.reader.abort();
            drop(c.events);
            writers.push(c.writer);
        }
        let aborts: Vec<_> = writers.iter().map(|w| w.abort_handle()).collect();
        if tokio::time::timeout(DRAIN_TIMEOUT, futures::future::join_all(writers))
            .await
            .is_err()
        {
            aborts.iter().for_each(|a| a.abort());
        }
    }
}

async fn hub(
    mut hub: Hub,
    mut events: mpsc::UnboundedReceiver<Stamped>,
    mut steps: mpsc::Receiver<Stamped>,
    front_events: mpsc::UnboundedSender<Stamped>,
    front_steps: mpsc::Sender<Stamped>,
    mut registrations: mpsc::UnboundedReceiver<Registration>,
    (accepting, socket): (JoinHandle<()>, PathBuf),
) {
    loop {
        tokio::select! {
            biased;
            event = events.recv() => match event {
                Some(e) => {
                    hub.broadcast(&e);
                    hub.history.push(e.clone());
                    let _ = front_events.send(e);
                }
                None => break,
            },
            Some(step) = steps.recv() => {
                hub.broadcast(&step);
                hub.history.push(step.clone());
                let _ = front_steps.try_send(step);
            }
            Some(r) = registrations.recv() => hub.attach(r),
        }
    }
    // Steps still queued belong before the end.
    while let Ok(step) = steps.try_recv() {
        let _ = front_steps.try_send(step);
    }
    hub.close(accepting, &socket).await;
}

async fn write_client(
    writer: OwnedWriteHalf,
    welcome: Welcome,
    history: Vec<Stamped>,
    mut queue: mpsc::Receiver<Stamped>,
    mut errors: mpsc::Receiver<String>,
) {
    let mut w = BufWriter::new(writer);
    let send = |line: JobLine| {
        let mut bytes = serde_json::to_vec(&line).expect("serialisable");
        bytes.push(b'\n');
        bytes
    };
    let mut ok = w
        .write_all(&send(JobLine::Welcome { welcome }))
        .await
        .is_ok();
    for e in history {
        ok = ok
            && w.write_all(&send(JobLine::Event(Box::new(e))))
                .await
                .is_ok();
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
        ok = ok && w.write_all(&send(line)).await.is_ok();
    }
    let _ = w.flush().await;
    let _ = w.shutdown().await;
}

async fn read_client(
    mut reader: BufReader<OwnedReadHalf>,
    commands: std_mpsc::Sender<Command>,
    errors: mpsc::Sender<String>,
) {
    let mut buf = Vec::new();
    loop {
        let refusal = match read_line(&mut reader, &mut buf).await {
            Ok(false) => return,
            Err(e) => {
                log(format!("client disconnected: {e}"));
                let _ = errors.try_send(e);
                return;
            }
            Ok(true) if buf.trim_ascii().is_empty() => continue,
            Ok(true) => match serde_json::from_slice::<Command>(buf.trim_ascii()) {
                Ok(command) => match commands.send(command) {
                    Ok(()) => continue,
                    Err(_) => "the run has ended".to_string(),
                },
                Err(e) => format!("not a command: {e}"),
            },
        };
        log(format!("client sent a line refused: {refusal}"));
        let _ = errors.try_send(refusal);
    }
}
