//! `job.lock`: the process training in a run folder holds an exclusive `flock` on it, with its
//! PID inside, for as long as it trains. Two jobs never train in (or serve) one folder, and
//! `kd-tui ls` tells a live job from a dead one: the kernel drops the lock of a killed process.
//!
//! The file is its owner's only (0600): anyone who can open it can `flock` it, and a shared lock
//! held by someone else would keep the owner's job from starting.

use rustix::fs::{flock, FlockOperation};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

pub const FILE: &str = "job.lock";

/// The lock file's mode: its owner's only.
pub const MODE: u32 = 0o600;

/// Held while it lives.
#[derive(Debug)]
pub struct JobLock {
    _file: File,
}

fn open(dir: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(MODE)
        .open(dir.join(FILE))?;
    // One an older kd-tui (or anyone) left with wider modes is narrowed.
    if file.metadata()?.permissions().mode() & 0o777 != MODE {
        file.set_permissions(std::fs::Permissions::from_mode(MODE))?;
    }
    Ok(file)
}

impl JobLock {
    /// Takes the folder's lock, or says which live process holds it.
    pub fn acquire(dir: &Path) -> io::Result<JobLock> {
        let mut file = open(dir)?;
        // `holder` (kd-tui ls) takes a shared lock for an instant to test: a few tries ride that out.
        let mut tries = 0;
        while flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
            tries += 1;
            if tries == 5 {
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!("{}: {}", dir.display(), held_by(dir, &file)),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        file.set_len(0)?;
        file.rewind()?;
        writeln!(file, "{}", std::process::id())?;
        file.flush()?;
        Ok(JobLock { _file: file })
    }
}

/// Who keeps `file` (dir's lock) locked, for the refusal.
fn held_by(dir: &Path, file: &File) -> String {
    if let Some(pid) = holder(dir) {
        return format!("another kd-tui job (pid {pid}) is training in this folder");
    }
    // Not a kd-tui job's exclusive lock: someone holds a shared one (`flock -s`).
    let pids = file.metadata().map(|m| flock_pids(&m)).unwrap_or_default();
    match pids.as_slice() {
        [] => format!("{FILE} is locked by another process (not a kd-tui job training here)"),
        pids => format!(
            "{FILE} is locked by process {} (not a kd-tui job training here); stop it and try again",
            pids.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// The processes holding a `flock` on the file of `meta`, from `/proc/locks` (Linux).
fn flock_pids(meta: &std::fs::Metadata) -> Vec<u32> {
    let mut text = String::new();
    let read = File::open("/proc/locks").and_then(|f| f.take(1 << 20).read_to_string(&mut text));
    if read.is_err() {
        return Vec::new();
    }
    let dev = meta.dev();
    let (major, minor) = (rustix::fs::major(dev), rustix::fs::minor(dev));
    // `1: FLOCK  ADVISORY  READ 9762 fe:00:5308660 0 EOF`: device numbers in hex, inode decimal.
    let want = format!("{major:02x}:{minor:02x}:{}", meta.ino());
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let at = fields.iter().position(|f| *f == "FLOCK")?;
            let (pid, file) = (fields.get(at + 3)?, fields.get(at + 4)?);
            (*file == want).then(|| pid.parse().ok()).flatten()
        })
        .collect()
}

/// The PID of the live job holding `dir`'s lock, if one does.
pub fn holder(dir: &Path) -> Option<u32> {
    let path = dir.join(FILE);
    let file = File::open(&path).ok()?;
    // A shared lock is refused only while someone holds the exclusive one.
    if flock(&file, FlockOperation::NonBlockingLockShared).is_ok() {
        let _ = flock(&file, FlockOperation::Unlock);
        return None;
    }
    // A PID is a few bytes: the rest of whatever the file is goes unread.
    let mut text = String::new();
    file.take(32).read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_and_none_after_it_drops() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(holder(dir.path()), None);
        let lock = JobLock::acquire(dir.path()).unwrap();
        assert_eq!(holder(dir.path()), Some(std::process::id()));
        let e = JobLock::acquire(dir.path()).unwrap_err();
        assert!(
            e.to_string().contains(&format!(
                "another kd-tui job (pid {}) is training",
                std::process::id()
            )),
            "{e}"
        );
        drop(lock);
        assert_eq!(holder(dir.path()), None);
        JobLock::acquire(dir.path()).unwrap();
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn the_lock_file_is_its_owners_only_even_if_it_was_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        drop(JobLock::acquire(dir.path()).unwrap());
        assert_eq!(mode(&path), 0o600);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let _lock = JobLock::acquire(dir.path()).unwrap();
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn a_shared_lock_that_blocks_the_job_is_named_by_its_pid() {
        let dir = tempfile::tempdir().unwrap();
        drop(JobLock::acquire(dir.path()).unwrap());
        // What `flock -s job.lock sleep 600` does, from another process.
        let mut blocker = std::process::Command::new("flock")
            .arg("-s")
            .arg(dir.path().join(FILE))
            .args(["sleep", "600"])
            .spawn()
            .unwrap();
        let held = || {
            let f = File::open(dir.path().join(FILE)).unwrap();
            flock(&f, FlockOperation::NonBlockingLockExclusive).is_err()
        };
        let start = std::time::Instant::now();
        while !held() && start.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let e = JobLock::acquire(dir.path()).unwrap_err();
        let _ = blocker.kill();
        let _ = blocker.wait();
        let pid = blocker.id();
        assert!(
            e.to_string().contains(&format!("locked by process {pid}")),
            "{e}"
        );
    }
}
