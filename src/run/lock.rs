//! `job.lock`: the process training in a run folder holds an exclusive `flock` on it, with its
//! PID inside, for as long as it trains. Two jobs never train in (or serve) one folder, and
//! `kd-tui ls` tells a live job from a dead one: the kernel drops the lock of a killed process.

use rustix::fs::{flock, FlockOperation};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::Path;

pub const FILE: &str = "job.lock";

/// Held while it lives.
#[derive(Debug)]
pub struct JobLock {
    _file: File,
}

fn open(dir: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(FILE))
}

impl JobLock {
    /// Takes the folder's lock, or says which live process holds it.
    pub fn acquire(dir: &Path) -> io::Result<JobLock> {
        let mut file = open(dir)?;
        if flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
            let pid = holder(dir).map_or("?".into(), |p| p.to_string());
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!(
                    "{}: another kd-tui job (pid {pid}) is training in this folder",
                    dir.display()
                ),
            ));
        }
        file.set_len(0)?;
        file.rewind()?;
        writeln!(file, "{}", std::process::id())?;
        file.flush()?;
        Ok(JobLock { _file: file })
    }
}

/// The PID of the live job holding `dir`'s lock, if one does.
pub fn holder(dir: &Path) -> Option<u32> {
    let path = dir.join(FILE);
    let mut file = File::open(&path).ok()?;
    // A shared lock is refused only while someone holds the exclusive one.
    if flock(&file, FlockOperation::NonBlockingLockShared).is_ok() {
        let _ = flock(&file, FlockOperation::Unlock);
        return None;
    }
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
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
        assert!(e.to_string().contains("another kd-tui job"), "{e}");
        drop(lock);
        assert_eq!(holder(dir.path()), None);
        JobLock::acquire(dir.path()).unwrap();
    }
}
