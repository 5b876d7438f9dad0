//! libtorch's CUDA backend and the NVIDIA driver, inspected without needing a GPU.
//!
//! Nothing in kd-tui calls into `libtorch_cuda.so`, so a plain link drops it (`--as-needed`) and
//! libtorch then has no CUDA backend: `device = "auto"` would silently train on the CPU of a GPU
//! box. Linking it unconditionally costs every CPU run about 0.3 s of start-up and 390 MB of
//! mapped libraries (cuBLAS, cuDNN, NCCL...), so the backend is loaded here instead, before the
//! first device query, when a run may use a GPU and an NVIDIA driver is present. Loading it runs
//! its static initialisers, which register the CUDA kernels and hooks with libtorch.

use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_NOW};
use std::ffi::{c_char, c_int, CStr};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The libtorch this process runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Libtorch {
    /// The folder holding `libtorch_cpu.so`.
    pub lib_dir: PathBuf,
    /// As the build says, e.g. `2.13.0+cu130`.
    pub version: Option<String>,
    /// The CUDA version it was built with; `None` for a CPU-only build.
    pub cuda: Option<String>,
}

/// Finds the loaded `libtorch_cpu.so` in this process's memory map and reads the version file
/// beside it: `../version.py` in a PyTorch wheel, `../build-version` in a libtorch archive.
pub fn libtorch() -> Option<Libtorch> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let lib = maps
        .lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .find(|path| path.ends_with("/libtorch_cpu.so"))?;
    let lib_dir = Path::new(lib).parent()?.to_path_buf();
    let root = lib_dir.parent()?;
    let (version, cuda) = match std::fs::read_to_string(root.join("version.py")) {
        Ok(text) => (
            python_string(&text, "__version__"),
            python_string(&text, "cuda"),
        ),
        Err(_) => {
            let version = std::fs::read_to_string(root.join("build-version"))
                .ok()
                .map(|v| v.trim().to_string());
            let cuda = version.as_deref().and_then(cuda_of_tag);
            (version, cuda)
        }
    };
    Some(Libtorch {
        lib_dir,
        version,
        cuda,
    })
}

/// `name = '...'` (or `name: Optional[str] = '...'`) in a version.py; `None` for `= None`.
fn python_string(text: &str, name: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (lhs, rhs) = line.split_once('=')?;
        let lhs = lhs.split(':').next()?.trim();
        (lhs == name).then_some(())?;
        let rhs = rhs.trim();
        rhs.strip_prefix('\'')
            .and_then(|r| r.strip_suffix('\''))
            .map(str::to_string)
    })
}

/// `12.8` from a `2.13.0+cu128` tag.
fn cuda_of_tag(version: &str) -> Option<String> {
    let digits = version.split_once("+cu")?.1;
    let (major, minor) = digits.split_at(digits.len().checked_sub(1)?);
    Some(format!("{major}.{minor}"))
}

/// Why libtorch's CUDA backend is not there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    #[error("libtorch_cpu.so is not in this process's memory map")]
    NoLibtorch,
    #[error("this libtorch is a CPU-only build (no libtorch_cuda.so in {0})")]
    CpuOnlyBuild(PathBuf),
    #[error("loading {0} failed: {1}")]
    LoadFailed(PathBuf, String),
}

/// Loads `libtorch_cuda.so` from beside the running libtorch (once; later calls return the
/// first outcome). Returns its path. It must come before any CUDA query (`Cuda::is_available`,
/// `manual_seed`...): libtorch keeps the first CUDA hooks it is asked for, the stub ones included.
pub fn load_backend() -> Result<PathBuf, BackendError> {
    static LOADED: OnceLock<Result<PathBuf, BackendError>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            let dir = libtorch().ok_or(BackendError::NoLibtorch)?.lib_dir;
            let path = dir.join("libtorch_cuda.so");
            if !path.exists() {
                return Err(BackendError::CpuOnlyBuild(dir));
            }
            // SAFETY: loading libtorch's own backend runs its initialisers, which only register
            // with the libtorch already loaded. It stays loaded for the life of the process.
            let library = unsafe { Library::open(Some(&path), RTLD_NOW | RTLD_GLOBAL) }
                .map_err(|e| BackendError::LoadFailed(path.clone(), loader_error(&e)))?;
            std::mem::forget(library);
            Ok(path)
        })
        .clone()
}

/// The dynamic loader's own words (libloading's Display says only "dlopen failed").
fn loader_error(e: &libloading::Error) -> String {
    use std::error::Error;
    e.source()
        .map_or_else(|| e.to_string(), ToString::to_string)
}

/// Whether libtorch has a CUDA backend registered (true once `libtorch_cuda.so` is loaded, with
/// or without a GPU).
pub fn backend_registered() -> bool {
    tch::utils::has_cudart()
}

/// One GPU as the driver reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Gpu {
    pub name: String,
    pub memory_bytes: u64,
    /// As `domain:bus:device.function` in hex, e.g. `0000:3b:00.0`: how NVML finds the same GPU
    /// (its own order may differ from CUDA's, and `CUDA_VISIBLE_DEVICES` renumbers CUDA's).
    pub pci_bus_id: String,
}

impl std::fmt::Display for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let gib = self.memory_bytes as f64 / (1u64 << 30) as f64;
        write!(f, "{}, {gib:.0} GiB", self.name)
    }
}

/// The NVIDIA driver and the GPUs it sees.
#[derive(Debug, Clone, PartialEq)]
pub struct Driver {
    /// The CUDA version the driver supports, e.g. `13.0`.
    pub cuda: String,
    pub gpus: Vec<Gpu>,
}

/// Asks the NVIDIA driver (`libcuda.so.1`, through its C API) for its version and GPUs; the
/// error says why there is no usable driver.
pub fn driver() -> Result<Driver, String> {
    static DRIVER: OnceLock<Result<Driver, String>> = OnceLock::new();
    DRIVER.get_or_init(query_driver).clone()
}

fn query_driver() -> Result<Driver, String> {
    type Call0 = unsafe extern "C" fn(u32) -> c_int;
    type CallInt = unsafe extern "C" fn(*mut c_int) -> c_int;
    type DeviceGet = unsafe extern "C" fn(*mut c_int, c_int) -> c_int;
    type DeviceName = unsafe extern "C" fn(*mut c_char, c_int, c_int) -> c_int;
    type DeviceMem = unsafe extern "C" fn(*mut usize, c_int) -> c_int;
    type DeviceBusId = unsafe extern "C" fn(*mut c_char, c_int, c_int) -> c_int;
    // SAFETY: libcuda.so.1 is the driver's C library; the signatures are those of cuda.h
    // (CUresult is an int, CUdevice an int), and every out-pointer is valid for the call.
    unsafe {
        let lib = Library::open(Some("libcuda.so.1"), RTLD_NOW)
            .map_err(|e| format!("no NVIDIA driver ({})", loader_error(&e)))?;
        let symbol = |name: &str| format!("libcuda.so.1 lacks {name}");
        let init = lib
            .get::<Call0>(b"cuInit\0")
            .map_err(|_| symbol("cuInit"))?;
        let version = lib
            .get::<CallInt>(b"cuDriverGetVersion\0")
            .map_err(|_| symbol("cuDriverGetVersion"))?;
        let count = lib
            .get::<CallInt>(b"cuDeviceGetCount\0")
            .map_err(|_| symbol("cuDeviceGetCount"))?;
        let get = lib
            .get::<DeviceGet>(b"cuDeviceGet\0")
            .map_err(|_| symbol("cuDeviceGet"))?;
        let name = lib
            .get::<DeviceName>(b"cuDeviceGetName\0")
            .map_err(|_| symbol("cuDeviceGetName"))?;
        let memory = lib
            .get::<DeviceMem>(b"cuDeviceTotalMem_v2\0")
            .map_err(|_| symbol("cuDeviceTotalMem_v2"))?;
        let bus_id = lib
            .get::<DeviceBusId>(b"cuDeviceGetPCIBusId\0")
            .map_err(|_| symbol("cuDeviceGetPCIBusId"))?;
        let ok = |what: &str, code: c_int| match code {
            0 => Ok(()),
            code => Err(format!("the NVIDIA driver failed {what} (CUresult {code})")),
        };
        ok("cuInit", init(0))?;
        let mut v = 0;
        ok("cuDriverGetVersion", version(&mut v))?;
        let mut n = 0;
        ok("cuDeviceGetCount", count(&mut n))?;
        let gpus = (0..n)
            .map(|ordinal| {
                let mut device = 0;
                ok("cuDeviceGet", get(&mut device, ordinal))?;
                let mut buf = [0 as c_char; 256];
                ok(
                    "cuDeviceGetName",
                    name(buf.as_mut_ptr(), buf.len() as c_int, device),
                )?;
                let gpu_name = CStr::from_ptr(buf.as_ptr()).to_string_lossy().into_owned();
                let mut bytes = 0usize;
                ok("cuDeviceTotalMem", memory(&mut bytes, device))?;
                let mut bus = [0 as c_char; 64];
                ok(
                    "cuDeviceGetPCIBusId",
                    bus_id(bus.as_mut_ptr(), bus.len() as c_int, device),
                )?;
                Ok(Gpu {
                    name: gpu_name,
                    memory_bytes: bytes as u64,
                    pci_bus_id: CStr::from_ptr(bus.as_ptr()).to_string_lossy().into_owned(),
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(Driver {
            cuda: format!("{}.{}", v / 1000, (v % 1000) / 10),
            gpus,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_versions_a_build_records() {
        let wheel = "__version__ = '2.13.0+cu130'\ndebug = False\ncuda: Optional[str] = '13.0'\nhip: Optional[str] = None\n";
        assert_eq!(
            python_string(wheel, "__version__").as_deref(),
            Some("2.13.0+cu130")
        );
        assert_eq!(python_string(wheel, "cuda").as_deref(), Some("13.0"));
        assert_eq!(python_string(wheel, "hip"), None);
        assert_eq!(cuda_of_tag("2.13.0+cu128").as_deref(), Some("12.8"));
        assert_eq!(cuda_of_tag("2.13.0+cpu"), None);
    }

    #[test]
    fn finds_the_running_libtorch() {
        let found = libtorch().expect("libtorch_cpu.so is loaded by tch");
        assert!(found.lib_dir.join("libtorch_cpu.so").exists());
        assert!(found.version.is_some_and(|v| v.starts_with("2.13")));
    }
}
