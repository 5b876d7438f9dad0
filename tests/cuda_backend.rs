//! libtorch's CUDA backend, checked without a GPU: the binary loads `libtorch_cuda.so` when a
//! GPU may be used (its own process here, so nothing else loaded it first), and `kd-tui doctor`
//! reports what it found.

mod common;

use kd_tui::device::cuda;

#[test]
fn the_cuda_backend_registers_when_loaded() {
    // No CUDA query before loading: libtorch keeps the first CUDA hooks it is asked for.
    let lib = cuda::libtorch().expect("libtorch_cpu.so is loaded");
    match cuda::load_backend() {
        Ok(path) => {
            assert_eq!(path, lib.lib_dir.join("libtorch_cuda.so"));
            assert!(
                lib.cuda.is_some(),
                "a CUDA backend in a CPU-only build: {lib:?}"
            );
            assert!(
                cuda::backend_registered(),
                "loaded but libtorch has no CUDA hooks"
            );
        }
        Err(cuda::BackendError::CpuOnlyBuild(dir)) => {
            assert_eq!(dir, lib.lib_dir);
            assert_eq!(lib.cuda, None, "a CUDA build without libtorch_cuda.so");
            assert!(!cuda::backend_registered());
        }
        Err(e) => panic!("loading the CUDA backend: {e}"),
    }
}

#[test]
fn doctor_reports_libtorch_its_cuda_backend_and_the_driver() {
    let out = common::kd_tui().arg("doctor").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let value = |key: &str| {
        text.lines()
            .find(|l| l.get(..14).is_some_and(|k| k.trim() == key))
            .map(|l| l[14..].trim())
            .unwrap_or_else(|| panic!("no `{key}` line in:\n{text}"))
            .to_string()
    };
    assert!(value("libtorch").starts_with("2.13"), "{text}");
    let lib_dir = std::path::PathBuf::from(value("found at"));
    assert!(lib_dir.join("libtorch_cpu.so").exists(), "{text}");
    // The binary itself links only libtorch's CPU part: CPU runs do not map CUDA's libraries.
    let ldd = std::process::Command::new("ldd")
        .arg(env!("CARGO_BIN_EXE_kd-tui"))
        .output()
        .unwrap();
    let linked = String::from_utf8_lossy(&ldd.stdout);
    assert!(
        linked.contains(&format!("{}/libtorch_cpu.so", lib_dir.display())),
        "{linked}"
    );
    assert!(!linked.contains("libtorch_cuda.so"), "{linked}");
    let backend = value("CUDA backend");
    if lib_dir.join("libtorch_cuda.so").exists() {
        assert!(backend.starts_with("registered (cudart "), "{text}");
    } else {
        assert!(backend.contains("CPU-only build"), "{text}");
    }
    // This process's cgroup, as /proc names it, bounds the memory a run may take.
    let memory = value("memory");
    let own = kd_tui::memory::own_memory_cgroup()
        .map_or("no memory cgroup".into(), |c| c.dir.display().to_string());
    assert!(
        memory.contains(" GiB available; cgroup ") && memory.contains(&own),
        "{text}"
    );
    let driver = value("NVIDIA driver");
    let cuda = value("CUDA");
    match std::path::Path::new("/dev/nvidiactl").exists() {
        true => assert!(driver.starts_with("supports CUDA "), "{text}"),
        false => {
            assert!(driver.starts_with("no NVIDIA driver"), "{text}");
            assert!(cuda.starts_with("unusable: no NVIDIA driver"), "{text}");
            assert_eq!(value("device auto"), "cpu");
        }
    }
    assert!(
        value("CPU threads").starts_with("libtorch intra-op "),
        "{text}"
    );
}
