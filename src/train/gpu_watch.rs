//! The run's GPUs, watched from a thread of their own: every `TICK` it reads them through NVML,
//! sends the reading to the front end as a droppable `Event::Gpus` (on the step channel, with
//! `try_send`) and adds it to the current phase's `GpuUse`, which the phase's result keeps. The
//! trainer only marks where phases begin and end, so watching never slows a step. A CPU run, or
//! one without an NVIDIA driver, starts no thread.

use super::Trainer;
use crate::device::nvml::{GpuReading, GpuUse, Nvml};
use crate::protocol::{Event, Phase, Position, Stamped};
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tch::Device;
use tokio::sync::mpsc as tokio_mpsc;

/// How often the GPUs are read: NVML's utilisation is itself an average over about a second.
const TICK: Duration = Duration::from_secs(1);

/// The phase being watched and what its GPUs have done so far.
#[derive(Default)]
struct Watched {
    phase: Option<Phase>,
    usage: GpuUse,
    /// The last reading of the run's GPU (a rank's heartbeat carries it).
    latest: Option<GpuReading>,
}

pub(super) struct GpuWatch {
    watched: Arc<Mutex<Watched>>,
    /// Dropped to stop the thread (its `recv_timeout` then returns at once).
    _stop: mpsc::Sender<()>,
}

impl GpuWatch {
    /// Watches the GPUs of `device` (this process's only), or `None` without any.
    pub(super) fn start(
        device: Device,
        steps: tokio_mpsc::Sender<Stamped>,
        started: Instant,
    ) -> Option<GpuWatch> {
        let Device::Cuda(n) = device else {
            return None;
        };
        let nvml = Nvml::watching(&[n])?;
        let watched = Arc::new(Mutex::new(Watched::default()));
        let (stop, stopped) = mpsc::channel::<()>();
        let shared = Arc::clone(&watched);
        std::thread::Builder::new()
            .name("gpu-watch".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(TICK) {
                    let gpus = nvml.read();
                    let phase = {
                        let mut w = shared.lock().unwrap_or_else(PoisonError::into_inner);
                        w.usage.add(&gpus);
                        w.latest = gpus.first().copied();
                        w.phase
                    };
                    let _ = steps.try_send(Stamped {
                        at: Position {
                            phase,
                            epoch: 0,
                            step: 0,
                        },
                        wall_time: started.elapsed().as_secs_f64(),
                        event: Event::Gpus { gpus },
                    });
                }
            })
            .ok()?;
        Some(GpuWatch {
            watched,
            _stop: stop,
        })
    }

    /// The last reading, from any thread.
    pub(super) fn latest(&self) -> super::rank_watch::GpuLatest {
        let watched = Arc::clone(&self.watched);
        Box::new(move || {
            watched
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .latest
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Watched) -> T) -> T {
        f(&mut self.watched.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Trainer {
    /// From now on readings count for `phase`.
    pub(super) fn gpu_phase_begins(&self, phase: Phase) {
        if let Some(watch) = &self.gpu_watch {
            watch.with(|w| {
                *w = Watched {
                    phase: Some(phase),
                    usage: GpuUse::default(),
                    latest: w.latest,
                }
            });
        }
    }

    /// What the GPUs did since the phase began (`None` without a watch or before a reading).
    pub(super) fn gpu_phase_use(&self) -> Option<GpuUse> {
        let usage = self.gpu_watch.as_ref()?.with(|w| w.usage);
        (usage.readings > 0).then_some(usage)
    }
}
