//! Where each rank of a data-parallel job stands: every rank sends a heartbeat through the job's
//! store about every second, and rank 0 publishes them all as `Event::Ranks`, from a thread of
//! its own, so that a rank that falls behind or dies shows while the others wait for it.

use super::{GpuReading, Phase};
use serde::{Deserialize, Serialize};

/// A rank whose heartbeat has not changed for this long is shown as silent: stuck, or gone.
pub const SILENT_AFTER_S: f64 = 3.0;

/// What a rank's trainer is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RankState {
    /// Joined, no step yet.
    #[default]
    Starting,
    Training,
    /// In the gradient all-reduce, waiting for the other ranks (for `RankStatus::waiting_s`).
    Waiting,
    Paused,
}

/// One rank's heartbeat, as rank 0 last received it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankStatus {
    pub rank: usize,
    pub host: String,
    pub phase: Option<Phase>,
    pub epoch: usize,
    /// Optimizer steps this rank has taken in the run.
    pub step: usize,
    /// This rank's own training examples per second (its share of each batch), over the last
    /// heartbeat interval.
    pub samples_per_sec: f64,
    /// The share of the last heartbeat interval spent in the gradient all-reduce, 0 to 1: high
    /// on the ranks that wait for a slower one.
    pub allreduce_share: f64,
    pub state: RankState,
    /// How long it has been in the current all-reduce (when `Waiting`).
    #[serde(default)]
    pub waiting_s: f64,
    /// Its GPU (NVML), when it trains on one.
    #[serde(default)]
    pub gpu: Option<GpuReading>,
    /// Seconds since its heartbeat last changed, on rank 0's clock (0 for rank 0).
    #[serde(default)]
    pub silent_s: f64,
}

impl RankStatus {
    pub fn is_silent(&self) -> bool {
        self.silent_s >= SILENT_AFTER_S
    }

    /// `training`, `waiting 4s`, `silent 12s`, ...
    pub fn state_text(&self) -> String {
        if self.is_silent() {
            return format!("silent {:.0}s", self.silent_s);
        }
        match self.state {
            RankState::Starting => "starting".into(),
            RankState::Training => "training".into(),
            RankState::Waiting if self.waiting_s >= 1.0 => {
                format!("waiting {:.0}s", self.waiting_s)
            }
            RankState::Waiting => "all-reduce".into(),
            RankState::Paused => "paused".into(),
        }
    }

    /// Whether this rank is the one holding the others back: it trains while they wait, or
    /// waits far less than they do.
    pub fn is_behind(&self, all: &[RankStatus]) -> bool {
        if all.len() < 2 || self.is_silent() {
            return false;
        }
        let others = all.iter().filter(|r| r.rank != self.rank);
        let (n, waited) = others.fold((0usize, 0.0), |(n, w), r| (n + 1, w + r.allreduce_share));
        let others_wait = waited / n as f64;
        others_wait > 0.5 && self.allreduce_share < others_wait / 3.0
    }
}

/// The line the event log gets when a rank turns silent, or speaks again.
pub fn silence_change(before: &[RankStatus], now: &[RankStatus]) -> Vec<String> {
    now.iter()
        .filter_map(|r| {
            let was = before
                .iter()
                .find(|b| b.rank == r.rank)
                .map(RankStatus::is_silent);
            match (was.unwrap_or(false), r.is_silent()) {
                (false, true) => Some(format!(
                    "rank {} ({}) has sent no heartbeat for {:.0} s: stuck or gone; the others \
                     wait for it up to distributed.timeout_s",
                    r.rank, r.host, r.silent_s
                )),
                (true, false) => Some(format!("rank {} ({}) is heard again", r.rank, r.host)),
                _ => None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rank(rank: usize, state: RankState, share: f64, silent_s: f64) -> RankStatus {
        RankStatus {
            rank,
            host: "box".into(),
            phase: Some(Phase::Teacher),
            epoch: 1,
            step: 10,
            samples_per_sec: 100.0,
            allreduce_share: share,
            state,
            waiting_s: 0.0,
            gpu: None,
            silent_s,
        }
    }

    #[test]
    fn silence_is_named_once_each_way() {
        let quiet = [
            rank(0, RankState::Training, 0.1, 0.0),
            rank(1, RankState::Training, 0.1, 1.0),
        ];
        let gone = [
            rank(0, RankState::Waiting, 0.9, 0.0),
            rank(1, RankState::Training, 0.1, 4.0),
        ];
        assert!(gone[1].is_silent() && !quiet[1].is_silent());
        assert_eq!(gone[1].state_text(), "silent 4s");
        let lines = silence_change(&quiet, &gone);
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0].starts_with("rank 1 (box) has sent no heartbeat for 4 s"),
            "{lines:?}"
        );
        assert!(silence_change(&gone, &gone).is_empty());
        assert_eq!(
            silence_change(&gone, &quiet),
            ["rank 1 (box) is heard again"]
        );
    }

    #[test]
    fn the_rank_the_others_wait_for_is_behind() {
        let slow = [
            rank(0, RankState::Waiting, 0.8, 0.0),
            rank(1, RankState::Training, 0.05, 0.0),
            rank(2, RankState::Waiting, 0.7, 0.0),
        ];
        let behind: Vec<bool> = slow.iter().map(|r| r.is_behind(&slow)).collect();
        assert_eq!(behind, [false, true, false]);
        // Balanced ranks, each waiting a little: nobody is behind.
        let even = [
            rank(0, RankState::Training, 0.2, 0.0),
            rank(1, RankState::Training, 0.25, 0.0),
        ];
        assert!(even.iter().all(|r| !r.is_behind(&even)));
        let mut waiting = rank(0, RankState::Waiting, 0.9, 0.0);
        waiting.waiting_s = 7.4;
        assert_eq!(waiting.state_text(), "waiting 7s");
    }
}
