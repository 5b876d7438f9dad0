//! What the GPUs are doing, through NVML: `libnvidia-ml.so.1`, loaded at run time (by
//! `nvml-wrapper`) as the CUDA backend is, so that a binary without a driver runs the same and
//! pays nothing. Readings are of the whole GPU: other processes' work and memory count too.

use serde::{Deserialize, Serialize};

/// One GPU's use at one moment, named by its CUDA index (`cuda:N` as libtorch counts them).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GpuReading {
    pub cuda: usize,
    /// Percent of the last sample period in which a kernel ran (NVML's "GPU utilisation").
    pub util_percent: u32,
    pub memory_used_bytes: u64,
    pub memory_total_bytes: u64,
}

/// A phase's use of its GPUs, from readings taken while it ran.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct GpuUse {
    /// The most memory any of the run's GPUs held at one reading.
    pub peak_memory_bytes: u64,
    /// Utilisation averaged over the readings and the GPUs.
    pub mean_util_percent: f64,
    /// Readings taken (one per GPU per tick).
    pub readings: usize,
}

impl GpuUse {
    pub fn add(&mut self, readings: &[GpuReading]) {
        for r in readings {
            let n = self.readings as f64;
            self.mean_util_percent =
                (self.mean_util_percent * n + f64::from(r.util_percent)) / (n + 1.0);
            self.peak_memory_bytes = self.peak_memory_bytes.max(r.memory_used_bytes);
            self.readings += 1;
        }
    }
}

/// NVML, opened, and the NVML index of each CUDA device it watches.
pub struct Nvml {
    nvml: nvml_wrapper::Nvml,
    watched: Vec<(usize, u32)>,
}

impl Nvml {
    /// Opens NVML; the error says why not (no driver, or NVML refused).
    pub fn open() -> Result<Nvml, String> {
        let nvml = nvml_wrapper::Nvml::init().map_err(|e| format!("NVML unavailable: {e}"))?;
        Ok(Nvml {
            nvml,
            watched: Vec::new(),
        })
    }

    /// NVML for the CUDA devices `cuda` (libtorch's indices), or `None` where there is no
    /// driver or one of them is not found: then nothing is watched, and nothing is paid.
    pub fn watching(cuda: &[usize]) -> Option<Nvml> {
        let mut nvml = Nvml::open().ok()?;
        let matched = nvml.cuda_indices().ok()?;
        nvml.watched = (cuda.iter())
            .map(|&i| Some((i, matched.iter().find(|(_, c)| *c == Some(i))?.0)))
            .collect::<Option<_>>()?;
        Some(nvml)
    }

    /// Each NVML index with the CUDA index of the same GPU, matched by PCI address (NVML's
    /// order may differ from CUDA's, and `CUDA_VISIBLE_DEVICES` renumbers CUDA's); `None`
    /// where CUDA does not see it.
    fn cuda_indices(&self) -> Result<Vec<(u32, Option<usize>)>, String> {
        let cuda: Vec<_> = (super::cuda::driver().map(|d| d.gpus))
            .unwrap_or_default()
            .iter()
            .map(|g| pci_address(&g.pci_bus_id))
            .collect();
        let count = self.nvml.device_count().map_err(|e| e.to_string())?;
        (0..count)
            .map(|index| {
                let device = (self.nvml.device_by_index(index)).map_err(|e| e.to_string())?;
                let bus = device.pci_info().map_err(|e| e.to_string())?.bus_id;
                let at = pci_address(&bus).and_then(|a| cuda.iter().position(|c| *c == Some(a)));
                Ok((index, at))
            })
            .collect()
    }

    pub fn driver_version(&self) -> Result<String, String> {
        self.nvml.sys_driver_version().map_err(|e| e.to_string())
    }

    /// The watched GPUs now (those whose reading failed are left out).
    pub fn read(&self) -> Vec<GpuReading> {
        (self.watched.iter())
            .filter_map(|&(cuda, index)| self.reading(cuda, index).ok())
            .collect()
    }

    /// Every GPU NVML sees, in CUDA's order where CUDA sees it (NVML's index otherwise), for
    /// `kd-tui doctor`: `(name, reading)`.
    pub fn all(&self) -> Result<Vec<(String, GpuReading)>, String> {
        let mut all = (self.cuda_indices()?.into_iter())
            .map(|(index, cuda)| {
                let device = (self.nvml.device_by_index(index)).map_err(|e| e.to_string())?;
                let name = device.name().map_err(|e| e.to_string())?;
                Ok((name, self.reading(cuda.unwrap_or(index as usize), index)?))
            })
            .collect::<Result<Vec<_>, String>>()?;
        all.sort_by_key(|(_, r)| r.cuda);
        Ok(all)
    }

    fn reading(&self, cuda: usize, index: u32) -> Result<GpuReading, String> {
        let device = self
            .nvml
            .device_by_index(index)
            .map_err(|e| e.to_string())?;
        let util = device.utilization_rates().map_err(|e| e.to_string())?;
        let memory = device.memory_info().map_err(|e| e.to_string())?;
        Ok(GpuReading {
            cuda,
            util_percent: util.gpu,
            memory_used_bytes: memory.used,
            memory_total_bytes: memory.total,
        })
    }
}

/// `(domain, bus, device, function)` of a PCI address in hex, as CUDA (`0000:3b:00.0`) or NVML
/// (`00000000:3B:00.0`) writes it.
fn pci_address(s: &str) -> Option<(u32, u32, u32, u32)> {
    let (domain, rest) = s.trim().split_once(':')?;
    let (bus, rest) = rest.split_once(':')?;
    let (device, function) = rest.split_once('.')?;
    let hex = |x: &str| u32::from_str_radix(x, 16).ok();
    Some((hex(domain)?, hex(bus)?, hex(device)?, hex(function)?))
}

/// `cuda:0 87% 12.3/139.8 GiB`: one GPU's reading, as the header and `doctor` show it.
pub fn reading_text(r: &GpuReading) -> String {
    format!(
        "cuda:{} {}% {}",
        r.cuda,
        r.util_percent,
        memory_text(r.memory_used_bytes, r.memory_total_bytes)
    )
}

/// `12.3/139.8 GiB`.
pub fn memory_text(used: u64, total: u64) -> String {
    let gib = |b: u64| b as f64 / f64::from(1u32 << 30);
    format!("{:.1}/{:.1} GiB", gib(used), gib(total))
}

/// A phase's use for a summary line: `GPU 73% mean, 12.3 GiB peak`.
pub fn use_text(u: &GpuUse) -> String {
    let gib = u.peak_memory_bytes as f64 / f64::from(1u32 << 30);
    format!("GPU {:.0}% mean, {gib:.1} GiB peak", u.mean_util_percent)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn reading(cuda: usize, util: u32, used_gib: f64) -> GpuReading {
        GpuReading {
            cuda,
            util_percent: util,
            memory_used_bytes: (used_gib * GIB as f64) as u64,
            memory_total_bytes: 140 * GIB,
        }
    }

    #[test]
    fn readings_read_as_the_header_shows_them() {
        assert_eq!(
            reading_text(&reading(0, 87, 12.34)),
            "cuda:0 87% 12.3/140.0 GiB"
        );
        assert_eq!(memory_text(0, 80 * GIB), "0.0/80.0 GiB");
    }

    #[test]
    fn a_phase_keeps_the_peak_and_the_mean_over_gpus_and_ticks() {
        let mut u = GpuUse::default();
        u.add(&[reading(0, 100, 2.0), reading(1, 50, 6.0)]);
        u.add(&[reading(0, 0, 4.0)]);
        assert_eq!(u.readings, 3);
        assert_eq!(u.peak_memory_bytes, 6 * GIB);
        assert!((u.mean_util_percent - 50.0).abs() < 1e-9);
        assert_eq!(use_text(&u), "GPU 50% mean, 6.0 GiB peak");
        let json = serde_json::to_string(&u).unwrap();
        assert_eq!(serde_json::from_str::<GpuUse>(&json).unwrap(), u);
    }

    #[test]
    fn pci_addresses_match_across_cuda_and_nvml_spellings() {
        assert_eq!(pci_address("0000:3b:00.0"), Some((0, 0x3b, 0, 0)));
        assert_eq!(pci_address("00000000:3B:00.0"), pci_address("0000:3b:00.0"));
        assert_eq!(pci_address("3b:00.0"), None);
    }

    #[test]
    fn without_a_driver_nothing_is_watched() {
        // This machine has no NVIDIA driver; on one with a driver, cuda:0 must be found.
        match Nvml::open() {
            Err(why) => {
                assert!(why.starts_with("NVML unavailable"), "{why}");
                assert!(Nvml::watching(&[0]).is_none());
            }
            Ok(_) => assert!(Nvml::watching(&[0]).is_some_and(|n| n.read().len() == 1)),
        }
    }
}
