//! Data-parallel training over PyTorch's own c10d: one process per rank, joined through a
//! TCPStore, gradients averaged by Gloo (CPU) or NCCL (GPU) between backward and the optimizer
//! step. Launched the torchrun way (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR`,
//! `MASTER_PORT`) or by `kd-tui --nproc N` (`launch.rs`), which sets those for N local ranks.
//!
//! Rank 0 is the job: it writes the run folder and serves the control socket. Every rank runs
//! the same trainer on its shard of each batch; commands reach all ranks through a log in the
//! store (`train/parallel.rs`), so they act at the same step everywhere.

mod group;

pub use group::{gloo_built, Group, GroupError};

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
    /// The rank's environment when `RANK` and `WORLD_SIZE` are set; `None` for a plain run.
    pub fn from_env() -> Result<Option<Env>, String> {
        Env::from_vars(|name| std::env::var(name).ok())
    }

    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Env>, String> {
        let (Some(rank), Some(size)) = (var("RANK"), var("WORLD_SIZE")) else {
            return Ok(None);
        };
        let number = |name: &str, value: Option<String>| -> Result<usize, String> {
            let value =
                value.ok_or_else(|| format!("{name} is not set (RANK and WORLD_SIZE are)"))?;
            value
                .trim()
                .parse()
                .map_err(|_| format!("{name}={value} is not a whole number"))
        };
        let rank = number("RANK", Some(rank))?;
        let world_size = number("WORLD_SIZE", Some(size))?;
        if world_size == 0 || rank >= world_size {
            return Err(format!("RANK={rank} must be below WORLD_SIZE={world_size}"));
        }
        let local_rank = number("LOCAL_RANK", var("LOCAL_RANK").or(Some(rank.to_string())))?;
        let master_addr = var("MASTER_ADDR").unwrap_or_else(|| "127.0.0.1".into());
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
    /// the rows in chunks.
    pub fn map_rows(
        world: Option<&World>,
        n: usize,
        chunk: i64,
        what: &str,
        mut f: impl FnMut(i64, i64) -> Tensor,
    ) -> Tensor {
        let rows = world.map_or(0..n, |w| w.shard(n));
        let (start, len) = (rows.start as i64, rows.len() as i64);
        let mut chunks: Vec<Tensor> = (0..len)
            .step_by(chunk as usize)
            .map(|at| f(start + at, chunk.min(len - at)))
            .collect();
        if chunks.is_empty() {
            chunks.push(f(start, 0));
        }
        let mine = Tensor::cat(&chunks, 0);
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
