//! The trainer's data-parallel side (`dist`): each rank's share of a batch, the gradient
//! all-reduce between backward and the optimizer step, and the command log that makes every
//! command act at the same step on every rank.
//!
//! Commands: rank 0 takes them from its consumer and appends them to a log in the store
//! (`cmd/<i>`). Each step's all-reduce also sums one extra number, the log's length on rank 0
//! (0 elsewhere), so after step k every rank knows which commands exist; all apply them at the
//! start of step k + 1, in log order. While paused no steps run: rank 0 applies each new command
//! as it logs it, and the other ranks wait on the store for it.

use super::control::Interrupt;
use super::{RunError, Trainer};
use crate::collective::World;
use crate::config::Precision;
use crate::protocol::summary::DistributedRun;
use crate::protocol::{Command, Phase};
use std::collections::BTreeMap;
use std::ops::Range;
use std::time::{Duration, Instant};
use tch::{Kind, Tensor};

/// Gradients are all-reduced in buckets of up to this many floats (16 MB): large enough for
/// few calls, small enough to bound the staging copy.
const BUCKET_FLOATS: i64 = 4 << 20;

/// A data-parallel trainer's group and where it stands in the command log.
pub struct Parallel {
    pub world: World,
    /// Rank 0's log (the other ranks read theirs from the store).
    logged: Vec<Command>,
    /// Log entries applied here.
    applied: usize,
    /// Log entries every rank knows of (from the last step's all-reduce, or while paused).
    agreed: usize,
    /// Time spent in the gradient all-reduce during the current phase, and in earlier ones.
    allreduce: Duration,
    allreduce_by_phase: BTreeMap<String, f64>,
}

impl Parallel {
    pub fn new(world: World) -> Parallel {
        Parallel {
            world,
            logged: Vec::new(),
            applied: 0,
            agreed: 0,
            allreduce: Duration::ZERO,
            allreduce_by_phase: BTreeMap::new(),
        }
    }
}

fn key(i: usize) -> String {
    format!("cmd/{i}")
}

fn failed(e: impl std::error::Error + Send + Sync + 'static) -> Interrupt {
    Interrupt::Fail(RunError::Distributed(Box::new(e)))
}

impl Trainer {
    /// The device as the header and summary show it, with the precision when it is not fp32
    /// and the ranks of a data-parallel run.
    pub(super) fn device_text(&self) -> String {
        let mut text = crate::device::describe(self.device);
        if self.preset.precision == Precision::Bf16 {
            text.push_str(", bf16 autocast");
        }
        if let Some(w) = self.world() {
            text.push_str(&format!(", {} ranks ({})", w.size, w.backend));
        }
        text
    }

    /// Books the finished phase's all-reduce time.
    pub(super) fn end_phase_allreduce(&mut self, phase: Phase) {
        if let Some(p) = self.parallel.as_mut() {
            let seconds = std::mem::take(&mut p.allreduce).as_secs_f64();
            p.allreduce_by_phase.insert(phase.as_str().into(), seconds);
        }
    }

    pub(super) fn distributed_summary(&self) -> Option<DistributedRun> {
        let p = self.parallel.as_ref()?;
        Some(DistributedRun {
            world_size: p.world.size,
            backend: p.world.backend.into(),
            global_batch: format!(
                "{} x batch_size (teacher {}, student {})",
                p.world.size,
                p.world.size * self.preset.teacher.batch_size,
                p.world.size * self.preset.student.batch_size
            ),
            batch_norm: "batch statistics per rank; running statistics averaged over the ranks \
                         before every evaluation"
                .into(),
            allreduce_seconds: p.allreduce_by_phase.clone(),
        })
    }

    /// Ranks training together (1 without a group).
    pub(super) fn world_size(&self) -> usize {
        self.parallel.as_ref().map_or(1, |p| p.world.size)
    }

    pub(super) fn world(&self) -> Option<&World> {
        self.parallel.as_ref().map(|p| &p.world)
    }

    /// This rank's rows of a global batch of `len` examples.
    pub(super) fn batch_share(&self, len: usize) -> Range<usize> {
        self.world().map_or(0..len, |w| w.shard(len))
    }

    /// The next command to apply: `None` when there is none now (or, `blocking`, when nobody
    /// can send one any more).
    pub(super) fn next_command(&mut self, blocking: bool) -> Result<Option<Command>, Interrupt> {
        let Some(p) = self.parallel.as_mut() else {
            return Ok(match blocking {
                true => self.commands.recv().ok(),
                false => self.commands.try_recv().ok(),
            });
        };
        if p.applied < p.agreed {
            let command = match p.world.is_leader() {
                true => p.logged[p.applied].clone(),
                false => {
                    let bytes = p.world.group.store().get(&key(p.applied)).map_err(failed)?;
                    serde_json::from_slice(&bytes).map_err(failed)?
                }
            };
            p.applied += 1;
            return Ok(Some(command));
        }
        if !p.world.is_leader() {
            if !blocking {
                return Ok(None);
            }
            // Paused: the next command comes when rank 0 logs it.
            while !p.world.group.store().has(&key(p.applied)).map_err(failed)? {
                std::thread::sleep(Duration::from_millis(20));
            }
            p.agreed = p.applied + 1;
            return self.next_command(false);
        }
        if blocking {
            let command = self.commands.recv().unwrap_or(Command::Stop {
                reason: "the controlling side went away".into(),
            });
            self.log_command(command)?;
            let p = self.parallel.as_mut().expect("parallel");
            p.agreed = p.logged.len();
            return self.next_command(false);
        }
        // Logged now, applied after this step's all-reduce has told every rank.
        while let Ok(command) = self.commands.try_recv() {
            self.log_command(command)?;
        }
        Ok(None)
    }

    fn log_command(&mut self, command: Command) -> Result<(), Interrupt> {
        let p = self.parallel.as_mut().expect("only rank 0 logs commands");
        let bytes = serde_json::to_vec(&command).expect("commands serialise");
        p.world
            .group
            .store()
            .set(&key(p.logged.len()), &bytes)
            .map_err(failed)?;
        p.logged.push(command);
        Ok(())
    }

    /// Sums the ranks' gradients (each rank's loss was already weighted by its share of the
    /// global batch) and `extras` (step losses), in buckets; returns the summed extras. Also
    /// learns how long the command log is on rank 0.
    pub(super) fn all_reduce_step(
        &mut self,
        grads: &[Tensor],
        extras: &[f64],
    ) -> Result<Vec<f64>, Interrupt> {
        self.beat_allreduce_begins();
        let p = self.parallel.as_mut().expect("all-reduce needs a group");
        let started = Instant::now();
        let log_len = if p.world.is_leader() {
            p.logged.len()
        } else {
            0
        };
        let tail: Vec<f32> = extras
            .iter()
            .map(|&v| v as f32)
            .chain(std::iter::once(log_len as f32))
            .collect();
        let device = grads.first().map_or(tch::Device::Cpu, Tensor::device);
        let tail = Tensor::from_slice(&tail).to_device(device);
        let mut buckets: Vec<Vec<&Tensor>> = vec![Vec::new()];
        let mut filled = 0;
        for g in grads {
            if filled > 0 && filled + g.numel() as i64 > BUCKET_FLOATS {
                buckets.push(Vec::new());
                filled = 0;
            }
            filled += g.numel() as i64;
            buckets.last_mut().expect("a bucket").push(g);
        }
        let last = buckets.len() - 1;
        let mut summed = Vec::new();
        for (b, bucket) in buckets.iter().enumerate() {
            let mut pieces: Vec<Tensor> = bucket.iter().map(|g| g.reshape([-1])).collect();
            if b == last {
                pieces.push(tail.shallow_clone());
            }
            let mut flat = Tensor::cat(&pieces, 0);
            p.world.group.all_reduce_sum(&mut flat).map_err(failed)?;
            let mut offset = 0;
            for g in bucket {
                let n = g.numel() as i64;
                g.shallow_clone()
                    .copy_(&flat.narrow(0, offset, n).view_as(g));
                offset += n;
            }
            if b == last {
                summed = Vec::<f64>::try_from(
                    flat.narrow(0, offset, tail.numel() as i64)
                        .to_kind(Kind::Double),
                )
                .map_err(failed)?;
            }
        }
        let took = started.elapsed();
        p.allreduce += took;
        let log_len = summed.pop().unwrap_or(0.0).round() as usize;
        p.agreed = p.agreed.max(log_len);
        self.beat_allreduce_ends(took);
        Ok(summed)
    }

    /// Averages the batch-norm running statistics (float buffers that are not trained) over the
    /// ranks, so that every rank evaluates the same model.
    pub(super) fn sync_buffers(&self, vs: &tch::nn::VarStore) -> Result<(), RunError> {
        let Some(world) = self.world() else {
            return Ok(());
        };
        // In the order of their names: a `VarStore` lists its variables in a hash map's order,
        // which differs between processes, and each rank must add up the same buffers.
        let mut named: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| !t.requires_grad() && t.is_floating_point())
            .collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let mut buffers: Vec<Tensor> = named.into_iter().map(|(_, t)| t).collect();
        if buffers.is_empty() {
            return Ok(());
        }
        let mut flat = Tensor::cat(
            &buffers.iter().map(|t| t.reshape([-1])).collect::<Vec<_>>(),
            0,
        );
        world
            .group
            .all_reduce_sum(&mut flat)
            .map_err(|e| RunError::Distributed(Box::new(e)))?;
        let flat = flat / world.size as f64;
        let mut offset = 0;
        for t in &mut buffers {
            let n = t.numel() as i64;
            tch::no_grad(|| t.copy_(&flat.narrow(0, offset, n).view_as(t)));
            offset += n;
        }
        Ok(())
    }
}
