//! The memory this process may still take: the machine's available memory, and the room left
//! under every memory cgroup the process is in (a Slurm job's, a container's, a systemd unit's),
//! cgroup v2 or v1, its own and each ancestor's up to the hierarchy's mount.

use std::path::{Path, PathBuf};

/// Memory this process may still take: the least of the machine's available memory and the room
/// under each of its cgroups' limits; `None` where neither can be read.
pub fn available_memory() -> Option<u128> {
    let room = own_memory_cgroup().and_then(|cgroup| cgroup.room(read));
    least(machine_available(), room)
}

/// For `kd-tui doctor`: what this process may still take, and the cgroup that bounds it.
pub fn describe() -> String {
    let gib = |b: u128| format!("{:.1} GiB", b as f64 / f64::from(1u32 << 30));
    let cgroup = own_memory_cgroup();
    let room = cgroup.as_ref().and_then(|cgroup| cgroup.room(read));
    let available = least(machine_available(), room).map_or("unknown".into(), gib);
    let cgroup = match (cgroup, room) {
        (Some(cgroup), Some(room)) => format!("{} leaves {}", cgroup.dir.display(), gib(room)),
        (Some(cgroup), None) => format!("{} sets no limit", cgroup.dir.display()),
        (None, _) => "no memory cgroup".into(),
    };
    format!("{available} available; cgroup {cgroup}")
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// The machine's available memory (`MemAvailable`).
fn machine_available() -> Option<u128> {
    let meminfo = read(Path::new("/proc/meminfo"))?;
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u128 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The lesser of two bounds, either of which may be unknown.
fn least(a: Option<u128>, b: Option<u128>) -> Option<u128> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Limits from here up are no limit (v1's is `PAGE_COUNTER_MAX` pages, about 2^63 bytes).
const NO_LIMIT: u128 = 1 << 62;

/// Which cgroup interface a hierarchy speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    V1,
    V2,
}

/// The memory cgroup of this process: its folder under the hierarchy's mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryCgroup {
    pub version: CgroupVersion,
    /// The hierarchy's mount point: the walk up stops there.
    pub mount: PathBuf,
    /// This process's own cgroup, under `mount`.
    pub dir: PathBuf,
}

/// This process's memory cgroup, from `/proc/self/cgroup` and `/proc/self/mountinfo`.
pub fn own_memory_cgroup() -> Option<MemoryCgroup> {
    let cgroups = read(Path::new("/proc/self/cgroup"))?;
    let mounts = read(Path::new("/proc/self/mountinfo"))?;
    memory_cgroup(&cgroups, &mounts)
}

/// The memory cgroup named in `cgroups` (`/proc/PID/cgroup`), located through `mounts`
/// (`/proc/PID/mountinfo`): the v1 hierarchy with the memory controller if one is mounted (a
/// machine with both keeps memory there), else the unified (v2) hierarchy.
pub fn memory_cgroup(cgroups: &str, mounts: &str) -> Option<MemoryCgroup> {
    // `ID:controllers:path`; the path may itself hold colons.
    let entries: Vec<(&str, &str)> = cgroups
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            Some((controllers, path))
        })
        .collect();
    // `ID parent major:minor root mount-point options [optional...] - fstype source super-options`
    let mount_of = |want: CgroupVersion| {
        mounts.lines().find_map(|line| {
            let (fields, fs) = line.split_once(" - ")?;
            let fields: Vec<&str> = fields.split(' ').collect();
            let fs: Vec<&str> = fs.split(' ').collect();
            let matches = match want {
                CgroupVersion::V2 => fs.first() == Some(&"cgroup2"),
                CgroupVersion::V1 => {
                    fs.first() == Some(&"cgroup")
                        && fs
                            .get(2)
                            .is_some_and(|o| o.split(',').any(|o| o == "memory"))
                }
            };
            matches.then(|| (fields.get(3).copied(), fields.get(4).copied()))
        })
    };
    let located = |version: CgroupVersion, path: &str| {
        let (Some(root), Some(mount)) = mount_of(version)? else {
            return None;
        };
        // The mount may show only part of the hierarchy (a container's): the path is below it.
        let below = path.strip_prefix(root).unwrap_or(path);
        let mount = PathBuf::from(unescape(mount));
        let dir = mount.join(below.trim_start_matches('/'));
        Some(MemoryCgroup {
            version,
            mount,
            dir,
        })
    };
    let v1 = entries
        .iter()
        .find(|(controllers, _)| controllers.split(',').any(|c| c == "memory"))
        .and_then(|(_, path)| located(CgroupVersion::V1, path));
    v1.or_else(|| {
        let (_, path) = entries
            .iter()
            .find(|(controllers, _)| controllers.is_empty())?;
        located(CgroupVersion::V2, path)
    })
}

/// A mount point as `mountinfo` writes it: space, tab, newline and backslash as octal escapes.
fn unescape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut rest = field;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let code = rest.get(at + 1..at + 4);
        match code.and_then(|c| u8::from_str_radix(c, 8).ok()) {
            Some(byte) => {
                out.push(char::from(byte));
                rest = &rest[at + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

impl MemoryCgroup {
    /// The least room under this cgroup's limit and its ancestors': each one's limit less what
    /// it uses that cannot be dropped (its use less the page cache it has not touched lately,
    /// as `docker stats` counts); `None` where no limit is set or none can be read.
    pub fn room(&self, read: impl Fn(&Path) -> Option<String>) -> Option<u128> {
        let (limit_file, usage_file, inactive_key) = match self.version {
            CgroupVersion::V2 => ("memory.max", "memory.current", "inactive_file"),
            CgroupVersion::V1 => (
                "memory.limit_in_bytes",
                "memory.usage_in_bytes",
                "total_inactive_file",
            ),
        };
        let number = |dir: &Path, file: &str| read(&dir.join(file))?.trim().parse::<u128>().ok();
        let mut room: Option<u128> = None;
        let mut dir = self.dir.as_path();
        loop {
            // "max" (v2) does not parse, and v1 writes no limit as about 2^63: no limit here.
            if let Some(limit) = number(dir, limit_file).filter(|&l| l < NO_LIMIT) {
                let used = number(dir, usage_file).unwrap_or(0);
                let inactive = read(&dir.join("memory.stat"))
                    .and_then(|stat| {
                        stat.lines().find_map(|line| {
                            let (key, value) = line.split_once(' ')?;
                            (key == inactive_key).then(|| value.trim().parse::<u128>().ok())?
                        })
                    })
                    .unwrap_or(0);
                let here = limit.saturating_sub(used.saturating_sub(inactive));
                room = Some(room.map_or(here, |r| r.min(here)));
            }
            if dir == self.mount {
                break;
            }
            match dir.parent() {
                Some(parent) if parent.starts_with(&self.mount) => dir = parent,
                _ => break,
            }
        }
        room
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const MOUNTS_V1: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw";
    const MOUNTS_V2: &str = "\
25 30 0:22 / /sys rw,nosuid - sysfs sysfs rw
26 25 0:23 / /sys/fs/cgroup rw,nosuid,nodev shared:4 - cgroup2 cgroup2 rw,nsdelegate";

    #[test]
    fn the_memory_cgroup_is_found_under_its_hierarchys_mount() {
        let v1 = memory_cgroup("1:cpu:/\n4:memory:/slurm/uid_0/job_42\n0::/", MOUNTS_V1).unwrap();
        assert_eq!(v1.version, CgroupVersion::V1);
        assert_eq!(
            v1.dir,
            Path::new("/sys/fs/cgroup/memory/slurm/uid_0/job_42")
        );
        assert_eq!(v1.mount, Path::new("/sys/fs/cgroup/memory"));
        let v2 = memory_cgroup("0::/user.slice/a:b.scope", MOUNTS_V2).unwrap();
        assert_eq!(v2.version, CgroupVersion::V2);
        assert_eq!(v2.dir, Path::new("/sys/fs/cgroup/user.slice/a:b.scope"));
        // A container's mount shows its own part of the hierarchy only.
        let mounts = "40 30 0:40 /docker/abc /sys/fs/cgroup ro - cgroup2 cgroup2 rw";
        let inside = memory_cgroup("0::/docker/abc/job", mounts).unwrap();
        assert_eq!(inside.dir, Path::new("/sys/fs/cgroup/job"));
        assert_eq!(
            memory_cgroup("0::/", "25 30 0:22 / /sys rw - sysfs sysfs rw"),
            None
        );
        let spaced = "40 30 0:40 / /mnt/my\\040cgroups rw - cgroup2 cgroup2 rw";
        let spaced = memory_cgroup("0::/a", spaced).unwrap();
        assert_eq!(spaced.dir, Path::new("/mnt/my cgroups/a"));
    }

    fn files(entries: &[(&str, &str)]) -> impl Fn(&Path) -> Option<String> {
        let map: HashMap<PathBuf, String> = entries
            .iter()
            .map(|(p, c)| (PathBuf::from(p), c.to_string()))
            .collect();
        move |path| map.get(path).cloned()
    }

    #[test]
    fn the_room_is_the_least_left_under_any_limit_up_to_the_mount() {
        let cgroup = MemoryCgroup {
            version: CgroupVersion::V2,
            mount: "/cg".into(),
            dir: "/cg/job/step".into(),
        };
        // The step has no limit ("max"); the job allows 1000, of which 700 is used and 300 of
        // that is page cache not touched lately: room 600. The root's limit is not the least.
        let read = files(&[
            ("/cg/job/step/memory.max", "max\n"),
            ("/cg/job/step/memory.current", "500\n"),
            ("/cg/job/memory.max", "1000\n"),
            ("/cg/job/memory.current", "700\n"),
            (
                "/cg/job/memory.stat",
                "anon 400\ninactive_file 300\nactive_file 0\n",
            ),
            ("/cg/memory.max", "5000\n"),
            ("/cg/memory.current", "800\n"),
        ]);
        assert_eq!(cgroup.room(read), Some(600));
        let unlimited = files(&[("/cg/job/step/memory.max", "max\n")]);
        assert_eq!(cgroup.room(unlimited), None);
        let v1 = MemoryCgroup {
            version: CgroupVersion::V1,
            mount: "/m".into(),
            dir: "/m/a".into(),
        };
        let read = files(&[
            ("/m/a/memory.limit_in_bytes", "1073741824\n"),
            ("/m/a/memory.usage_in_bytes", "1000000000\n"),
            (
                "/m/a/memory.stat",
                "cache 5\ninactive_file 7\ntotal_inactive_file 900000000\n",
            ),
            ("/m/memory.limit_in_bytes", "9223372036854771712\n"),
        ]);
        assert_eq!(v1.room(read), Some(1073741824 - 100000000));
        let read = files(&[("/m/a/memory.limit_in_bytes", "9223372036854771712\n")]);
        assert_eq!(v1.room(read), None, "v1's no limit");
    }
}
