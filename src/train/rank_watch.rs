//! Each rank's heartbeat (`protocol::ranks`). The trainer notes its steps, samples, all-reduce
//! time and pauses in a shared `Beat` (a lock per step, never a wait); a thread of the rank's own
//! turns them into a `RankStatus` every `TICK` and writes it to the job's store through a
//! connection of its own. On rank 0 the same thread reads every rank's heartbeat and sends them
//! all as a droppable `Event::Ranks`: it runs while rank 0's trainer waits in an all-reduce for
//! a rank that is slow or gone, which is when the panel matters. A single-process run starts no
//! thread.

use super::Trainer;
use crate::collective::{Store, World};
use crate::protocol::ranks::{RankState, RankStatus};
use crate::protocol::{Event, GpuReading, Position, Stamped};
use serde::{Deserialize, Serialize};
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::mpsc as tokio_mpsc;

const TICK: Duration = Duration::from_secs(1);

/// Below this a rank in an all-reduce is not shown as waiting: every step passes through one.
const WAITING_AFTER: Duration = Duration::from_millis(500);

/// What the trainer notes for the heartbeat.
#[derive(Default)]
struct Beat {
    at: Position,
    stepped: bool,
    /// This rank's examples trained, and its time in all-reduces, since the run began.
    samples: u64,
    allreduce: Duration,
    /// When the all-reduce it is in began.
    in_allreduce: Option<Instant>,
    paused: bool,
}

/// What a rank writes to the store: `seq` changes with every heartbeat.
#[derive(Serialize, Deserialize)]
struct Heartbeat {
    seq: u64,
    status: RankStatus,
}

fn key(rank: usize) -> String {
    format!("beat/{rank}")
}

pub(super) struct RankWatch {
    beat: Arc<Mutex<Beat>>,
    /// Dropped to stop the thread.
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for RankWatch {
    /// Stops the thread and waits for it: after the trainer, no store call is made (rank 0's
    /// store may be gone, and c10d would print its failure).
    fn drop(&mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The latest reading of this rank's GPU, when it has one.
pub(super) type GpuLatest = Box<dyn Fn() -> Option<GpuReading> + Send>;

impl RankWatch {
    /// Watches this rank of `world` (`None` when its store cannot be reached again, which the
    /// trainer's own calls then report).
    pub(super) fn start(
        world: &World,
        gpu: GpuLatest,
        steps: tokio_mpsc::Sender<Stamped>,
        started: Instant,
    ) -> Option<RankWatch> {
        let store = world.group.store().connect_again().ok()?;
        let beat = Arc::new(Mutex::new(Beat::default()));
        let (stop, stopped) = mpsc::channel::<()>();
        let mut beating = Beating {
            rank: world.rank,
            size: world.size,
            host: hostname(),
            store,
            beat: Arc::clone(&beat),
            gpu,
            last: (Instant::now(), 0, Duration::ZERO),
            seq: 0,
            heard: vec![None; world.size],
        };
        let thread = std::thread::Builder::new()
            .name("rank-watch".into())
            .spawn(move || loop {
                if !matches!(
                    stopped.recv_timeout(TICK),
                    Err(mpsc::RecvTimeoutError::Timeout)
                ) {
                    break;
                }
                let own = beating.own();
                let at = Position {
                    phase: own.phase,
                    epoch: own.epoch,
                    step: own.step,
                };
                let sent = match beating.rank {
                    0 => {
                        let ranks = beating.everyone(own);
                        let event = Event::Ranks { ranks };
                        let wall_time = started.elapsed().as_secs_f64();
                        let _ = steps.try_send(Stamped {
                            at,
                            wall_time,
                            event,
                        });
                        true
                    }
                    _ => beating.send(own),
                };
                if !sent {
                    break;
                }
            })
            .ok()?;
        Some(RankWatch {
            beat,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    fn with(&self, f: impl FnOnce(&mut Beat)) {
        f(&mut self.beat.lock().unwrap_or_else(PoisonError::into_inner));
    }
}

/// The heartbeat thread's state.
struct Beating {
    rank: usize,
    size: usize,
    host: String,
    store: Store,
    beat: Arc<Mutex<Beat>>,
    gpu: GpuLatest,
    /// The last heartbeat's time, samples and all-reduce total, for the rates.
    last: (Instant, u64, Duration),
    seq: u64,
    /// Rank 0: each rank's last heartbeat, its `seq` and when that last changed.
    heard: Vec<Option<(u64, Instant, RankStatus)>>,
}

impl Beating {
    /// This rank's status now.
    fn own(&mut self) -> RankStatus {
        let now = Instant::now();
        let (at, stepped, samples, mut allreduce, in_allreduce, paused) = {
            let b = self.beat.lock().unwrap_or_else(PoisonError::into_inner);
            (
                b.at,
                b.stepped,
                b.samples,
                b.allreduce,
                b.in_allreduce,
                b.paused,
            )
        };
        let waiting = in_allreduce.map(|since| now - since);
        // The all-reduce still going counts towards the interval's share.
        allreduce += waiting.unwrap_or_default();
        let (then, samples_then, allreduce_then) = self.last;
        let seconds = (now - then).as_secs_f64().max(1e-3);
        self.last = (now, samples, allreduce);
        let state = match (paused, waiting, stepped) {
            (true, ..) => RankState::Paused,
            (_, Some(w), _) if w >= WAITING_AFTER => RankState::Waiting,
            (.., true) => RankState::Training,
            _ => RankState::Starting,
        };
        RankStatus {
            rank: self.rank,
            host: self.host.clone(),
            phase: at.phase,
            epoch: at.epoch,
            step: at.step,
            samples_per_sec: (samples - samples_then) as f64 / seconds,
            allreduce_share: ((allreduce.saturating_sub(allreduce_then)).as_secs_f64() / seconds)
                .min(1.0),
            state,
            waiting_s: waiting.map_or(0.0, |w| w.as_secs_f64()),
            gpu: (self.gpu)(),
            silent_s: 0.0,
        }
    }

    /// Writes this rank's heartbeat; false once the store (rank 0) is gone.
    fn send(&mut self, status: RankStatus) -> bool {
        self.seq += 1;
        let beat = Heartbeat {
            seq: self.seq,
            status,
        };
        let bytes = serde_json::to_vec(&beat).expect("a heartbeat serialises");
        self.store.set(&key(self.rank), &bytes).is_ok()
    }

    /// Rank 0: its own status and the others' last heartbeats, with how long each has been
    /// silent.
    fn everyone(&mut self, own: RankStatus) -> Vec<RankStatus> {
        let now = Instant::now();
        let mut ranks = vec![own];
        for rank in 1..self.size {
            let read = self
                .store
                .has(&key(rank))
                .ok()
                .filter(|&set| set)
                .and_then(|_| self.store.get(&key(rank)).ok())
                .and_then(|bytes| serde_json::from_slice::<Heartbeat>(&bytes).ok());
            let heard = &mut self.heard[rank];
            match (read, heard.as_mut()) {
                (Some(beat), Some((seq, changed, status))) if beat.seq != *seq => {
                    (*seq, *changed, *status) = (beat.seq, now, beat.status);
                }
                (Some(beat), None) => *heard = Some((beat.seq, now, beat.status)),
                _ => {}
            }
            ranks.push(match heard {
                Some((_, changed, status)) => RankStatus {
                    silent_s: (now - *changed).as_secs_f64(),
                    ..status.clone()
                },
                None => RankStatus {
                    rank,
                    host: String::new(),
                    phase: None,
                    epoch: 0,
                    step: 0,
                    samples_per_sec: 0.0,
                    allreduce_share: 0.0,
                    state: RankState::Starting,
                    waiting_s: 0.0,
                    gpu: None,
                    silent_s: 0.0,
                },
            });
        }
        ranks
    }
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: a buffer of `len` bytes; gethostname NUL-terminates what fits.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match rc {
        0 => String::from_utf8_lossy(&buf[..end]).into_owned(),
        _ => "?".into(),
    }
}

impl Trainer {
    fn beat(&self, f: impl FnOnce(&mut Beat)) {
        if let Some(watch) = &self.rank_watch {
            watch.with(f);
        }
    }

    /// A step of `samples` examples (this rank's share) is done.
    pub(super) fn beat_step(&self, samples: usize) {
        let at = self.at;
        self.beat(|b| {
            b.at = at;
            b.stepped = true;
            b.samples += samples as u64;
        });
    }

    /// The gradient all-reduce begins.
    pub(super) fn beat_allreduce_begins(&self) {
        self.beat(|b| b.in_allreduce = Some(Instant::now()));
    }

    /// The gradient all-reduce ended after `took`.
    pub(super) fn beat_allreduce_ends(&self, took: Duration) {
        self.beat(|b| {
            b.in_allreduce = None;
            b.allreduce += took;
        });
    }

    pub(super) fn beat_paused(&self, paused: bool) {
        self.beat(|b| b.paused = paused);
    }
}
