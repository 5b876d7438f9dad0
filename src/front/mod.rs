//! What both front ends (TUI and batch) share: the consumer's runtime with its signal handlers
//! installed before any set-up, the signal stream, and how a run that a consumer drove ended.

pub mod batch;
pub mod tui;

use tokio::signal::unix::{signal, SignalKind};

/// The consumer side's event loop runtime, with the signal handlers already installed.
///
/// Made before any set-up so that a signal arriving while data loads is not lost: the consumer
/// sees it as soon as it runs and stops the run cleanly.
pub struct Consumer {
    pub runtime: tokio::runtime::Runtime,
    pub signals: Signals,
}

impl Consumer {
    pub fn new() -> std::io::Result<Consumer> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let signals = {
            let _context = runtime.enter();
            Signals::new()
        };
        Ok(Consumer { runtime, signals })
    }
}

pub fn signal_name(signo: i32) -> &'static str {
    match signo {
        1 => "SIGHUP",
        2 => "SIGINT",
        15 => "SIGTERM",
        _ => "signal",
    }
}

/// SIGINT, SIGTERM and SIGHUP as one stream of signal numbers.
pub struct Signals {
    streams: Vec<(i32, tokio::signal::unix::Signal)>,
}

impl Signals {
    pub fn new() -> Signals {
        let streams = [
            (2, SignalKind::interrupt()),
            (15, SignalKind::terminate()),
            (1, SignalKind::hangup()),
        ]
        .into_iter()
        .filter_map(|(n, kind)| signal(kind).ok().map(|s| (n, s)))
        .collect();
        Signals { streams }
    }

    /// The next signal's number.
    pub async fn next(&mut self) -> i32 {
        let waits = self.streams.iter_mut().map(|(n, s)| {
            let n = *n;
            Box::pin(async move {
                s.recv().await;
                n
            })
        });
        futures::future::select_all(waits).await.0
    }
}

impl Default for Signals {
    fn default() -> Self {
        Self::new()
    }
}
