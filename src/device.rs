//! The `device` key: `auto`, `cpu`, `cuda` or `cuda:N`.

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
pub fn resolve(spec: DeviceSpec) -> Result<Device, String> {
    match spec {
        DeviceSpec::Auto => Ok(Device::cuda_if_available()),
        DeviceSpec::Cpu => Ok(Device::Cpu),
        DeviceSpec::Cuda(n) => {
            let count = tch::Cuda::device_count() as usize;
            if n < count {
                Ok(Device::Cuda(n))
            } else {
                Err(format!(
                    "cuda:{n} requested but {count} CUDA device(s) are visible"
                ))
            }
        }
    }
}

pub fn describe(device: Device) -> String {
    match device {
        // Threads are chosen per phase (`threads`); each phase's result records its own.
        Device::Cpu => "cpu".into(),
        Device::Cuda(n) => format!("cuda:{n}"),
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
