//! The `device` key: `auto`, `cpu`, `cuda` or `cuda:N`.

pub mod cuda;
pub mod nvml;

use tch::Device;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSpec {
    Auto,
    Cpu,
    Cuda(usize),
}

pub fn parse(s: &str) -> Result<DeviceSpec, String> {
    match s {
        "auto" => Ok(DeviceSpec::Auto),
        "cpu" => Ok(DeviceSpec::Cpu),
        "cuda" => Ok(DeviceSpec::Cuda(0)),
        _ => s
            .strip_prefix("cuda:")
            .and_then(|n| n.parse().ok())
            .map(DeviceSpec::Cuda)
            .ok_or_else(|| format!("must be auto, cpu, cuda or cuda:N (got `{s}`)")),
    }
}

/// Picks the tch device; asking for a GPU that is not there is an error, not a silent fallback.
/// A run that may use a GPU first loads libtorch's CUDA backend when a driver is present.
pub fn resolve(spec: DeviceSpec) -> Result<Device, String> {
    let n = match spec {
        DeviceSpec::Cpu => return Ok(Device::Cpu),
        DeviceSpec::Auto => {
            // Without a driver or a backend, auto is the CPU; doctor says why.
            let _ = cuda_usable();
            return Ok(Device::cuda_if_available());
        }
        DeviceSpec::Cuda(n) => n,
    };
    cuda_usable().map_err(|why| format!("cuda:{n} requested but CUDA is unusable: {why}"))?;
    let count = tch::Cuda::device_count() as usize;
    if n < count {
        Ok(Device::Cuda(n))
    } else {
        Err(format!(
            "cuda:{n} requested but {count} CUDA device(s) are visible"
        ))
    }
}

/// Loads libtorch's CUDA backend if an NVIDIA driver is present; the error says what is missing.
pub fn cuda_usable() -> Result<cuda::Driver, String> {
    let driver = cuda::driver()?;
    cuda::load_backend().map_err(|e| e.to_string())?;
    Ok(driver)
}

/// The device as the header and the summary name it: `cpu`, or `cuda:0 (NVIDIA H200, 140 GiB)`.
pub fn describe(device: Device) -> String {
    match device {
        // Threads are chosen per phase (`threads`); each phase's result records its own.
        Device::Cpu => "cpu".into(),
        Device::Cuda(n) => match cuda::driver().ok().and_then(|d| d.gpus.get(n).cloned()) {
            Some(gpu) => format!("cuda:{n} ({gpu})"),
            None => format!("cuda:{n}"),
        },
        other => format!("{other:?}").to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        assert_eq!(parse("auto"), Ok(DeviceSpec::Auto));
        assert_eq!(parse("cpu"), Ok(DeviceSpec::Cpu));
        assert_eq!(parse("cuda"), Ok(DeviceSpec::Cuda(0)));
        assert_eq!(parse("cuda:3"), Ok(DeviceSpec::Cuda(3)));
        assert!(parse("gpu").is_err());
        assert!(parse("cuda:x").is_err());
    }
}
