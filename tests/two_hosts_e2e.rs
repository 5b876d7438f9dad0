//! Two hosts, stood in for by two network namespaces that the test makes and joins with a veth
//! pair (10.77.0.1 and 10.77.0.2): one rank in each, the rendezvous on the first one's address,
//! Gloo bound to each side's veth (`GLOO_SOCKET_IFNAME`). The job must end with the weights of
//! the same job on loopback (`--nproc 2`). Traffic stays inside the namespaces. Where the
//! machine does not allow namespaces (no root, no `ip`), the test says so and skips.

mod common;

use common::ranks::{require_gloo, start_ranks};
use common::{wait_exit, weights, ChildGuard, DIGITS};
use std::path::Path;
use std::process::{Command, Stdio};

/// The two namespaces and their veth pair; deleted on drop (the veth goes with them).
struct Hosts {
    names: [String; 2],
}

const ADDRESSES: [&str; 2] = ["10.77.0.1", "10.77.0.2"];

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    match out.status.success() {
        true => Ok(()),
        false => Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

impl Hosts {
    fn make() -> Result<Hosts, String> {
        let tag = format!("kd{}", std::process::id());
        let names = [format!("{tag}a"), format!("{tag}b")];
        ip(&["netns", "add", &names[0]])?;
        let hosts = Hosts {
            names: names.clone(),
        };
        ip(&["netns", "add", &names[1]])?;
        // Each namespace's end of the pair is named like the namespace (under 16 bytes).
        ip(&[
            "link", "add", &names[0], "type", "veth", "peer", "name", &names[1],
        ])?;
        for (name, address) in names.iter().zip(ADDRESSES) {
            ip(&["link", "set", name, "netns", name])?;
            ip(&[
                "-n",
                name,
                "addr",
                "add",
                &format!("{address}/24"),
                "dev",
                name,
            ])?;
            ip(&["-n", name, "link", "set", name, "up"])?;
            ip(&["-n", name, "link", "set", "lo", "up"])?;
        }
        Ok(hosts)
    }

    /// Rank `rank` of two in its namespace, the rendezvous on the first's address.
    fn rank(&self, rank: usize, dir: &Path, args: &[&str]) -> ChildGuard {
        let ns = &self.names[rank];
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(env!("CARGO_BIN_EXE_kd-tui"))
            .args(["--batch", DIGITS, "--out"])
            .arg(dir)
            .args(args)
            .env("KD_TUI_CACHE", dir.with_extension(format!("cache-{rank}")))
            .env("RANK", rank.to_string())
            .env("WORLD_SIZE", "2")
            .env("MASTER_ADDR", ADDRESSES[0])
            .env("MASTER_PORT", "29500")
            .env("GLOO_SOCKET_IFNAME", ns)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.with_extension(format!("rank-{rank}.log"))).unwrap())
            .spawn()
            .unwrap();
        ChildGuard(child)
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = ip(&["netns", "del", name]);
        }
    }
}

#[test]
fn two_ranks_on_two_hosts_end_with_the_weights_of_the_loopback_job() {
    require_gloo();
    let hosts = match Hosts::make() {
        Ok(hosts) => hosts,
        Err(why) => {
            common::say(format_args!(
                "SKIPPED: this machine does not allow network namespaces here: {why}"
            ));
            return;
        }
    };
    common::say(format_args!(
        "network namespaces {} and {}",
        hosts.names[0], hosts.names[1]
    ));
    let tmp = tempfile::tempdir().unwrap();
    let args = ["--set", "teacher.epochs=2", "--set", "student.epochs=2"];
    let (apart, loopback) = (tmp.path().join("apart"), tmp.path().join("loopback"));
    let mut ranks = [hosts.rank(0, &apart, &args), hosts.rank(1, &apart, &args)];
    for (rank, job) in ranks.iter_mut().enumerate() {
        let log = apart.with_extension(format!("rank-{rank}.log"));
        let code = wait_exit(job);
        assert_eq!(
            code,
            0,
            "rank {rank}: {}",
            std::fs::read_to_string(log).unwrap()
        );
    }
    let mut job = start_ranks(&loopback, &args);
    assert_eq!(wait_exit(&mut job), 0);
    for model in ["teacher", "baseline", "distilled"] {
        let file = format!("{model}.safetensors");
        let (a, b) = (weights(&apart.join(&file)), weights(&loopback.join(&file)));
        assert_eq!(
            a, b,
            "{model}: the two-host job and the loopback job differ"
        );
    }
    let summary = common::read_summary(&apart);
    let dist = summary.distributed.expect("a data-parallel run says so");
    assert_eq!((dist.world_size, dist.backend.as_str()), (2, "gloo"));
}
