//! Data-parallel training over PyTorch's own c10d: one process per rank, joined through a
//! TCPStore, gradients averaged by Gloo (CPU) or NCCL (GPU) between backward and the optimizer
//! step. Launched the torchrun way (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR`,
//! `MASTER_PORT`) or by `kd-tui --nproc N` (`launch.rs`), which sets those for N local ranks.
//!
//! Rank 0 is the job: it writes the run folder and serves the control socket. Every rank runs
//! the same trainer on its shard of each batch; commands reach all ranks through a log in the
//! store (`train/parallel.rs`), so they act at the same step everywhere.

mod group;

pub use group::{gloo_built, Group, GroupError, Store};

/// Whether this build has the NCCL backend (it needs the torch wheel's NCCL and CUDA headers).
pub fn nccl_built() -> bool {
    cfg!(kd_nccl)
}

use crate::config::{DistributedBackend, DistributedConfig};
use std::ops::Range;
use std::time::Duration;
use tch::{Device, Tensor};

/// The torchrun-style environment of one rank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Env {
    pub rank: usize,
    pub world_size: usize,
    /// Which of this machine's ranks it is: on GPUs, the device it takes (`cuda:LOCAL_RANK`).
    pub local_rank: usize,
    pub master_addr: String,
    pub master_port: u16,
}

impl Env {
    /// The rank's environment when `RANK` and `WORLD_SIZE` are set (torchrun's names), or else
    /// Slurm's `SLURM_PROCID` and `SLURM_NTASKS` of more than one task (a step started by `srun`);
    /// `None` for a plain run. `master_addr` (`--master-addr`) comes before `MASTER_ADDR`.
    pub fn from_env(master_addr: Option<&str>) -> Result<Option<Env>, String> {
        Env::from_vars(|name| match (name, master_addr) {
            ("MASTER_ADDR", Some(addr)) => Some(addr.to_string()),
            _ => std::env::var(name).ok(),
        })
    }

    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Env>, String> {
        let names = match (var("RANK"), var("WORLD_SIZE")) {
            (None, None) => {
                let tasks = var("SLURM_NTASKS").and_then(|n| n.trim().parse::<usize>().ok());
                match (var("SLURM_PROCID"), tasks) {
                    (Some(_), Some(n)) if n > 1 => SLURM,
                    _ => return Ok(None),
                }
            }
            (Some(_), Some(_)) => TORCHRUN,
            _ => return Ok(None),
        };
        let number = |name: &str, value: Option<String>| -> Result<usize, String> {
            let value = value.ok_or_else(|| {
                format!(
                    "{name} is not set ({} and {} are)",
                    names.rank, names.world_size
                )
            })?;
            value
                .trim()
                .parse()
                .map_err(|_| format!("{name}={value} is not a whole number"))
        };
        let rank = number(names.rank, var(names.rank))?;
        let world_size = number(names.world_size, var(names.world_size))?;
        if world_size == 0 || rank >= world_size {
            return Err(format!(
                "{}={rank} must be below {}={world_size}",
                names.rank, names.world_size
            ));
        }
        let local_rank = number(
            names.local_rank,
            var(names.local_rank).or(Some(rank.to_string())),
        )?;
        let master_addr = match var("MASTER_ADDR") {
            Some(addr) => addr,
            // Slurm's ranks are on other machines as a rule: loopback would be a guess.
            None if names.rank == SLURM.rank => {
                return Err(format!(
                    "under Slurm ({}={world_size}) the rendezvous address is needed: set \
                     MASTER_ADDR (e.g. to the first host of `scontrol show hostnames \
                     \"$SLURM_JOB_NODELIST\"`) or pass --master-addr",
                    names.world_size
                ))
            }
            None => "127.0.0.1".into(),
        };
        let port = var("MASTER_PORT").unwrap_or_else(|| "29500".into());
        let master_port = port
            .trim()
            .parse()
            .map_err(|_| format!("MASTER_PORT={port} is not a port number"))?;
        Ok(Some(Env {
            rank,
            world_size,
            local_rank,
            master_addr,
            master_port,
        }))
    }
}

/// The variables that say where a rank is, as one launcher names them.
struct RankNames {
    rank: &'static str,
    world_size: &'static str,
    local_rank: &'static str,
}

const TORCHRUN: RankNames = RankNames {
    rank: "RANK",
    world_size: "WORLD_SIZE",
    local_rank: "LOCAL_RANK",
};

const SLURM: RankNames = RankNames {
    rank: "SLURM_PROCID",
    world_size: "SLURM_NTASKS",
    local_rank: "SLURM_LOCALID",
};

/// This process's place in a joined group.
pub struct World {
    pub rank: usize,
    pub size: usize,
    /// `gloo` or `nccl`.
    pub backend: &'static str,
    pub group: Group,
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "rank {} of {} ({})", self.rank, self.size, self.backend)
    }
}

/// The backend `auto` means on `device`: NCCL on CUDA, Gloo on the CPU.
pub fn backend_for(cfg: DistributedBackend, device: Device) -> &'static str {
    match cfg {
        DistributedBackend::Gloo => "gloo",
        DistributedBackend::Nccl => "nccl",
        DistributedBackend::Auto if device.is_cuda() => "nccl",
        DistributedBackend::Auto => "gloo",
    }
}

/// What a whole rendezvous may take past `distributed.timeout_s`: Gloo's connections retry, and
/// a mismatched job (another WORLD_SIZE) waited several timeouts in a row.
const JOIN_SLACK: Duration = Duration::from_secs(2);

/// `f` on a thread of its own, for at most `limit`; `None` if it has not returned by then (it
/// is left behind: the process is about to end).
fn held_to<T: Send + 'static>(
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("rendezvous".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .ok()?;
    rx.recv_timeout(limit).ok()
}

impl World {
    /// Joins the job's group (waits for every rank, up to the timeout).
    pub fn join(env: &Env, cfg: &DistributedConfig, device: Device) -> Result<World, String> {
        let backend = backend_for(cfg.backend, device);
        let nccl = match backend {
            "gloo" if !gloo_built() => {
                return Err(
                    "this kd-tui was built without the Gloo backend (libgloo-dev's \
                            headers were missing at build time; scripts/kd installs them)"
                        .into(),
                )
            }
            "nccl" => Some(nccl_create()?),
            _ => None,
        };
        let timeout = Duration::from_secs_f64(cfg.timeout_s);
        let (addr, port, rank, size) = (
            env.master_addr.clone(),
            env.master_port,
            env.rank,
            env.world_size,
        );
        let joining = move |nccl| {
            Group::join(backend, &addr, port, rank, size, timeout, nccl)
                .map_err(|e| format!("joining the {backend} group as rank {rank}: {e}"))
        };
        let group = match nccl {
            // NCCL binds to the calling thread's device: it joins here.
            Some(create) => joining(Some(create))?,
            None => held_to(timeout + JOIN_SLACK, move || joining(None)).unwrap_or_else(|| {
                Err(format!(
                    "joining the {backend} group as rank {}: the ranks did not all meet within \
                     distributed.timeout_s ({} s; a rank is missing, stuck, or was started with \
                     another WORLD_SIZE, MASTER_ADDR or MASTER_PORT)",
                    env.rank, cfg.timeout_s
                ))
            })?,
        };
        Ok(World {
            rank: env.rank,
            size: env.world_size,
            backend,
            group,
        })
    }

    pub fn is_leader(&self) -> bool {
        self.rank == 0
    }

    /// This rank's contiguous share of `n` items (sizes differ by at most one).
    pub fn shard(&self, n: usize) -> Range<usize> {
        n * self.rank / self.size..n * (self.rank + 1) / self.size
    }

    /// `f` over `n` rows in chunks of at most `chunk` rows (`f(start, len)`), each rank taking
    /// its `shard` of the rows (`f` of an empty range when it has none), and every rank getting
    /// the whole result: each row is computed once in all. Without a group, simply `f` over all
    /// the rows in chunks. After each chunk, `done(rows, n)` tells this rank's share of its
    /// shard scaled to the whole (every rank moves at about the same pace).
    pub fn map_rows(
        world: Option<&World>,
        n: usize,
        chunk: i64,
        what: &str,
        mut f: impl FnMut(i64, i64) -> Tensor,
        done: &mut dyn FnMut(usize, usize),
    ) -> Tensor {
        let rows = world.map_or(0..n, |w| w.shard(n));
        let (start, len) = (rows.start as i64, rows.len() as i64);
        // Each chunk is copied into one tensor allocated up front and then freed: chunks kept
        // until a final `cat` pinned the heap between the passes' large, freed buffers (glibc
        // keeps freed memory: `malloc.rs`), and a pass over 25 views of MNIST grew the process
        // by gigabytes.
        let mut mine: Option<Tensor> = None;
        for at in (0..len).step_by(chunk as usize) {
            let part = f(start + at, chunk.min(len - at));
            let all = mine.get_or_insert_with(|| {
                let mut shape = part.size();
                shape[0] = len;
                Tensor::empty(&shape, (part.kind(), part.device()))
            });
            all.narrow(0, at, part.size()[0]).copy_(&part);
            let finished = (at + part.size()[0]) as usize;
            done(finished * n / rows.len().max(1), n);
        }
        let mine = mine.unwrap_or_else(|| f(start, 0));
        match world {
            // A failed collective panics here (tch-style); the trainer turns it into a failure.
            Some(w) => w.gather_rows(n, &mine).unwrap_or_else(|e| {
                panic!("rank {}: gathering {what} from the ranks: {e}", w.rank)
            }),
            None => mine,
        }
    }

    /// The whole `[n, ...]` tensor from each rank's rows of it (`rows`: this rank's `shard(n)`).
    pub fn gather_rows(&self, n: usize, rows: &Tensor) -> Result<Tensor, GroupError> {
        let mut shape = rows.size();
        shape[0] = n as i64;
        let mut full = Tensor::zeros(&shape, (rows.kind(), rows.device()));
        let range = self.shard(n);
        full.narrow(0, range.start as i64, range.len() as i64)
            .copy_(rows);
        self.group.all_reduce_sum(&mut full)?;
        Ok(full)
    }
}

/// The NCCL backend's constructor, from its library (`csrc/nccl.cpp`, embedded in the binary),
/// loaded after libtorch's CUDA backend, which it needs.
#[cfg(kd_nccl)]
pub fn nccl_create() -> Result<*mut std::ffi::c_void, String> {
    use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_NOW};
    use std::io::Write;
    use std::os::fd::AsRawFd;
    static SHIM: &[u8] = include_bytes!(env!("KD_NCCL_SHIM"));
    crate::device::cuda::load_backend().map_err(|e| format!("NCCL needs CUDA: {e}"))?;
    // Loaded from memory (a memfd), so no file is left behind.
    let fd = rustix::fs::memfd_create("kd-tui-nccl", rustix::fs::MemfdFlags::CLOEXEC)
        .map_err(|e| format!("memfd_create: {e}"))?;
    let mut file = std::fs::File::from(fd);
    file.write_all(SHIM)
        .map_err(|e| format!("writing the NCCL backend: {e}"))?;
    let path = format!("/proc/self/fd/{}", file.as_raw_fd());
    // SAFETY: our own library, built against this libtorch; it stays loaded (and its memfd
    // open) for the life of the process.
    let create = unsafe {
        let library = Library::open(Some(&path), RTLD_NOW | RTLD_GLOBAL)
            .map_err(|e| format!("loading the NCCL backend: {e}"))?;
        let create = *library
            .get::<*mut std::ffi::c_void>(b"kd_nccl_create\0")
            .map_err(|e| format!("loading the NCCL backend: {e}"))?;
        std::mem::forget(library);
        create
    };
    std::mem::forget(file);
    Ok(create)
}

#[cfg(not(kd_nccl))]
pub fn nccl_create() -> Result<*mut std::ffi::c_void, String> {
    Err(
        "this kd-tui was built without the NCCL backend (the torch wheel's NCCL and CUDA \
         headers were missing at build time)"
            .into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(vars: &[(&str, &str)]) -> Result<Option<Env>, String> {
        Env::from_vars(|name| {
            (vars.iter())
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn torchrun_names_come_first_and_slurm_fills_in_without_them() {
        assert_eq!(env_of(&[]), Ok(None));
        let torchrun = env_of(&[
            ("RANK", "1"),
            ("WORLD_SIZE", "2"),
            ("SLURM_PROCID", "5"),
            ("SLURM_NTASKS", "8"),
        ]);
        assert_eq!(
            torchrun,
            Ok(Some(Env {
                rank: 1,
                world_size: 2,
                local_rank: 1,
                master_addr: "127.0.0.1".into(),
                master_port: 29500,
            }))
        );
        let slurm = env_of(&[
            ("SLURM_PROCID", "5"),
            ("SLURM_NTASKS", "8"),
            ("SLURM_LOCALID", "1"),
            ("MASTER_ADDR", "10.0.0.1"),
            ("MASTER_PORT", "29400"),
        ]);
        assert_eq!(
            slurm,
            Ok(Some(Env {
                rank: 5,
                world_size: 8,
                local_rank: 1,
                master_addr: "10.0.0.1".into(),
                master_port: 29400,
            }))
        );
    }

    #[test]
    fn slurm_needs_several_tasks_and_a_rendezvous_address() {
        // One task (or a batch script's own step) is a plain run.
        assert_eq!(
            env_of(&[("SLURM_PROCID", "0"), ("SLURM_NTASKS", "1")]),
            Ok(None)
        );
        let no_addr = env_of(&[("SLURM_PROCID", "0"), ("SLURM_NTASKS", "4")]).unwrap_err();
        assert!(
            no_addr.contains("MASTER_ADDR") && no_addr.contains("--master-addr"),
            "{no_addr}"
        );
        let past = env_of(&[
            ("SLURM_PROCID", "4"),
            ("SLURM_NTASKS", "4"),
            ("MASTER_ADDR", "h1"),
        ]);
        assert_eq!(
            past,
            Err("SLURM_PROCID=4 must be below SLURM_NTASKS=4".into())
        );
        let from_flag = Env::from_env(Some("10.1.2.3"));
        // This test's own environment has no RANK or Slurm step: the flag alone is no job.
        assert_eq!(from_flag, Ok(None));
    }
}
