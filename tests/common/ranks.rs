//! Starting and finding the ranks of a data-parallel job (`kd-tui --nproc 2`).

use super::{kd_tui_on, ChildGuard};
use std::path::Path;
use std::process::Stdio;

/// Fails where this build has no Gloo backend (the test command installs its headers).
pub fn require_gloo() {
    assert!(
        kd_tui::collective::gloo_built(),
        "this build has no Gloo backend: install libgloo-dev (scripts/kd does) and rebuild"
    );
}

/// Starts `kd-tui --nproc 2 --batch ARGS --out DIR` (stderr to DIR.log).
pub fn start_ranks(dir: &Path, args: &[&str]) -> ChildGuard {
    let child = kd_tui_on(["--nproc", "2", "--batch"].iter().chain(args))
        .arg("--out")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.with_extension("log")).unwrap())
        .spawn()
        .unwrap();
    ChildGuard(child)
}

/// The launcher's child with `RANK=rank` in its environment.
pub fn rank_pid(launcher: u32, rank: usize) -> Option<u32> {
    let children =
        std::fs::read_to_string(format!("/proc/{launcher}/task/{launcher}/children")).ok()?;
    children.split_whitespace().find_map(|pid| {
        let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
        env.split(|&b| b == 0)
            .any(|v| v == format!("RANK={rank}").as_bytes())
            .then(|| pid.parse().ok())
            .flatten()
    })
}
