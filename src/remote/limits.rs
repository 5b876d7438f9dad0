//! How much the control socket takes: clients at once, and lines per client and per job. A
//! client that floods loses its lines, then its connection; the trainer sees a bounded trickle.

use std::time::{Duration, Instant};

/// Clients attached at once, at most (fewer where the file-descriptor limit is lower).
pub const MAX_CLIENTS: usize = 1024;
/// File descriptors kept for the job itself (data, checkpoints, libraries, pending hellos).
const RESERVED_FDS: u64 = 128;

/// Lines one client may send at once, then per second.
pub const CLIENT_BURST: u32 = 64;
pub const CLIENT_PER_SECOND: u32 = 32;
/// Commands all clients together may hand the trainer at once, then per second.
pub const JOB_BURST: u32 = 256;
pub const JOB_PER_SECOND: u32 = 128;
/// Lines of one client dropped over its budget before it is disconnected.
pub const MAX_DROPPED: u32 = 256;

/// A token bucket: `burst` at once, refilled at `per_second`.
#[derive(Debug, Clone)]
pub struct Budget {
    burst: f64,
    per_second: f64,
    tokens: f64,
    at: Instant,
}

impl Budget {
    pub fn new(burst: u32, per_second: u32, now: Instant) -> Budget {
        Budget {
            burst: burst.into(),
            per_second: per_second.into(),
            tokens: burst.into(),
            at: now,
        }
    }

    /// Takes one unit if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        let refill = now.saturating_duration_since(self.at).as_secs_f64() * self.per_second;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What one client's lines cost it: over budget they are dropped, with an error line at most
/// once a second, and after `MAX_DROPPED` the client is cut off.
#[derive(Debug)]
pub struct Flood {
    budget: Budget,
    dropped: u32,
    told: Option<Instant>,
}

/// What to do with a client's line.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    Take,
    /// Dropped; `true` when the client is to be told (once a second).
    Drop(bool),
    CutOff,
}

impl Flood {
    pub fn new(now: Instant) -> Flood {
        Flood {
            budget: Budget::new(CLIENT_BURST, CLIENT_PER_SECOND, now),
            dropped: 0,
            told: None,
        }
    }

    pub fn line(&mut self, now: Instant) -> Verdict {
        if self.budget.take(now) {
            return Verdict::Take;
        }
        self.dropped += 1;
        if self.dropped >= MAX_DROPPED {
            return Verdict::CutOff;
        }
        Verdict::Drop(self.tell(now))
    }

    /// Whether the client is to be told of a dropped line now: at most once a second.
    pub fn tell(&mut self, now: Instant) -> bool {
        let tell = self
            .told
            .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1));
        if tell {
            self.told = Some(now);
        }
        tell
    }
}

/// The error line of a dropped line.
pub fn dropped_message() -> String {
    format!(
        "too many lines: at most {CLIENT_PER_SECOND} a second ({CLIENT_BURST} at once) per client; \
         lines over it are dropped, and after {MAX_DROPPED} the client is disconnected"
    )
}

/// Clients this job takes at once: `MAX_CLIENTS`, or fewer if the process may not open enough
/// files. Raises the soft file limit towards the hard one first.
pub fn client_limit() -> usize {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    let want = MAX_CLIENTS as u64 + RESERVED_FDS;
    if limit.current.is_some_and(|soft| soft < want) {
        let raised = limit.maximum.map_or(want, |hard| hard.min(want));
        let mut new = limit;
        new.current = Some(raised);
        if setrlimit(Resource::Nofile, new).is_ok() {
            limit = getrlimit(Resource::Nofile);
        }
    }
    let fds = limit.current.unwrap_or(u64::MAX);
    (fds.saturating_sub(RESERVED_FDS) as usize).clamp(1, MAX_CLIENTS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_gives_its_burst_then_its_rate() {
        let t0 = Instant::now();
        let mut b = Budget::new(4, 2, t0);
        assert_eq!((0..10).filter(|_| b.take(t0)).count(), 4);
        let t1 = t0 + Duration::from_millis(1500);
        assert_eq!((0..10).filter(|_| b.take(t1)).count(), 3);
        let t2 = t1 + Duration::from_secs(100);
        assert_eq!(
            (0..10).filter(|_| b.take(t2)).count(),
            4,
            "no more than the burst"
        );
    }

    #[test]
    fn a_flooding_client_is_told_once_a_second_then_cut_off() {
        let t0 = Instant::now();
        let mut f = Flood::new(t0);
        let verdicts: Vec<Verdict> = (0..CLIENT_BURST + MAX_DROPPED)
            .map(|_| f.line(t0))
            .collect();
        let taken = verdicts.iter().filter(|v| **v == Verdict::Take).count();
        assert_eq!(taken, CLIENT_BURST as usize);
        let told = verdicts
            .iter()
            .filter(|v| **v == Verdict::Drop(true))
            .count();
        assert_eq!(told, 1);
        assert_eq!(verdicts.last(), Some(&Verdict::CutOff));
    }
}
