//! The job's side of the control socket: a hub between the trainer and the job's own front end.
//!
//! The hub forwards every trainer event to the front end as before and to each attached client,
//! and keeps the run's history for clients that attach later. It never waits on a client: each
//! has a bounded queue; a step that does not fit is dropped for that client, and a client that
//! falls so far behind that a run-level event does not fit is disconnected. Clients' commands go
//! to the trainer's command channel within their budgets (`limits`): no client, nor all of them
//! together, can keep the trainer from its steps.

use super::limits::{self, Budget};
use super::peer::{self, log, History, Registration};
use super::{Welcome, VERSION};
use crate::protocol::{Command, Event, Stamped};
use crate::train::TrainerHandle;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::net::UnixListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Events queued for one client before it counts as not reading.
const CLIENT_QUEUE: usize = 1024;
/// The socket's name while it is bound but not yet listening.
const STAGING: &str = ".bind.sock";
/// Time the clients get to read the run's last events before the job exits.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// A bound control socket, not yet serving.
pub struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
    run_dir: PathBuf,
}

impl ControlSocket {
    /// Binds `RUN_DIR/control.sock`, readable and writable by its owner only. The caller holds
    /// the run folder's job lock, so a socket already there is a crashed job's: it is replaced.
    /// The socket is bound and listening under a staging name first, then renamed into place:
    /// launchers and cockpits take the socket's file for a job that accepts, and a file bound
    /// but not yet listening refuses connections. Must be called within the runtime that will
    /// serve it.
    pub fn bind(run_dir: &Path) -> std::io::Result<ControlSocket> {
        let path = super::checked_socket_path(run_dir).map_err(std::io::Error::other)?;
        // No longer than the socket's own name, so that it fits wherever that does.
        let staging = path.with_file_name(STAGING);
        match std::fs::remove_file(&staging) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        // Created 0600 from the start (umask), not opened up then narrowed.
        let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o177));
        let bound = UnixListener::bind(&staging);
        rustix::process::umask(old);
        let listener = bound?;
        std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&staging, &path)?;
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
                history: Arc::new(history.into()),
                clients: Vec::new(),
                max_clients: limits::client_limit(),
                commands: handle.commands.clone(),
                budget: Arc::new(Mutex::new(Budget::new(
                    limits::JOB_BURST,
                    limits::JOB_PER_SECOND,
                    Instant::now(),
                ))),
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

async fn accept(listener: UnixListener, register: mpsc::UnboundedSender<Registration>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(peer::handshake(stream, register.clone()));
            }
            Err(e) => {
                log(format!("accept failed: {e}"));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

struct Client {
    events: mpsc::Sender<Stamped>,
    writer: JoinHandle<()>,
    reader: JoinHandle<()>,
}

struct Hub {
    history: History,
    clients: Vec<Client>,
    /// Clients attached at once, at most.
    max_clients: usize,
    commands: std_mpsc::Sender<Command>,
    /// Commands all clients together may still hand the trainer.
    budget: Arc<Mutex<Budget>>,
    welcome: Welcome,
}

impl Hub {
    fn attach(&mut self, r: Registration) {
        let (events, queue) = mpsc::channel(CLIENT_QUEUE);
        let (errors_tx, errors) = mpsc::channel(16);
        // Clients that hung up since the last event are not counted.
        self.clients.retain(|c| !c.events.is_closed());
        if self.clients.len() >= self.max_clients {
            let mut w = r.writer;
            let max = self.max_clients;
            log("client refused: too many clients");
            tokio::spawn(async move {
                let refusal = format!("too many clients: this job takes at most {max} at once");
                peer::reply_error(&mut w, refusal).await
            });
            return;
        }
        let welcome = Welcome {
            history: self
                .history
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .len(),
            ..self.welcome.clone()
        };
        let writer = tokio::spawn(peer::write_client(
            r.writer,
            welcome,
            self.history.clone(),
            queue,
            errors,
        ));
        let reader = tokio::spawn(peer::read_client(
            r.reader,
            self.commands.clone(),
            errors_tx,
            self.budget.clone(),
            writer.abort_handle(),
        ));
        self.clients.push(Client {
            events,
            writer,
            reader,
        });
    }

    /// Every client gets run-level events or is disconnected; steps are dropped for a client
    /// whose queue is full.
    fn broadcast(&mut self, event: &Stamped) {
        let droppable = matches!(event.event, Event::Step { .. }) || event.event.is_transient();
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

    fn remember(&self, event: Stamped) {
        let mut history = self.history.write().unwrap_or_else(PoisonError::into_inner);
        history.push(event);
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
                    hub.remember(e.clone());
                    let _ = front_events.send(e);
                }
                None => break,
            },
            Some(step) = steps.recv() => {
                hub.broadcast(&step);
                if !step.event.is_transient() {
                    hub.remember(step.clone());
                }
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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};

    /// A crashed job leaves its socket's file (and maybe a staging one): the next job's socket
    /// replaces both, accepts at once, is its owner's only, and leaves no staging file.
    #[test]
    fn a_bound_socket_replaces_a_crashed_jobs_and_accepts_under_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = super::super::socket_path(dir.path());
        for stale in [&path, &path.with_file_name(super::STAGING)] {
            drop(std::os::unix::net::UnixListener::bind(stale).unwrap());
            let refused = std::os::unix::net::UnixStream::connect(stale).unwrap_err();
            assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _context = runtime.enter();
        let socket = super::ControlSocket::bind(dir.path()).unwrap();
        std::os::unix::net::UnixStream::connect(&path).expect("the socket accepts");
        let meta = std::fs::metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [super::super::SOCKET]);
        drop(socket);
    }
}
