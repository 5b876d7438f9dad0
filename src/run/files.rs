//! Reading a run folder's files that anyone may have replaced (a symlink to `/dev/zero`, a FIFO,
//! a file of gigabytes, bytes that are not UTF-8): regular files only, never more than asked.
//! `ls` and the cockpit's history read `metrics.jsonl` this way; a resume, `export` and `ls`
//! their JSON and TOML.

use crate::protocol::Stamped;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The most of `metrics.jsonl` a cockpit's history (and a resumed job's) reads: its last bytes.
pub const HISTORY_BYTES: u64 = 256 << 20;
/// The most of `metrics.jsonl` `kd-tui ls` reads per run: its last bytes.
pub const LS_BYTES: u64 = 16 << 20;
/// The largest `summary.json` `kd-tui ls` reads.
pub const SUMMARY_BYTES: u64 = 4 << 20;

/// Opens `path` for reading if it is a regular file (after symlinks); never blocks on a FIFO.
fn open_regular(path: &Path) -> io::Result<File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", path.display()),
        ));
    }
    Ok(file)
}

/// The last `max` bytes of the regular file `path`, and whether that is all of it.
pub fn tail(path: &Path, max: u64) -> io::Result<(Vec<u8>, bool)> {
    let mut file = open_regular(path)?;
    let len = file.metadata()?.len();
    let start = len.saturating_sub(max);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    // The file may grow while it is read: still no more than `max`.
    file.take(max).read_to_end(&mut bytes)?;
    Ok((bytes, start == 0))
}

/// The whole regular file `path`, refused if it is longer than `max` bytes.
pub fn small(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let (bytes, whole) = tail(path, max)?;
    if !whole {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is longer than {max} bytes", path.display()),
        ));
    }
    Ok(bytes)
}

/// The most read of a run's own JSON or TOML file (`checkpoint.json`, `summary.json`,
/// `preset.toml`) where nothing smaller is asked for: far more than a real one holds.
pub const RECORD_BYTES: u64 = 16 << 20;

/// The whole regular file `path` as text, refused past `RECORD_BYTES` or if it is not UTF-8.
pub fn text(path: &Path) -> io::Result<String> {
    String::from_utf8(small(path, RECORD_BYTES)?)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// The records of a `metrics.jsonl`'s last `max` bytes. Lines that do not read as records (a
/// killed job's half-written last one, the cut first one of a tail) are left out; bytes that are
/// not UTF-8 are read as U+FFFD, so one bad byte costs at most its line.
pub fn records(path: &Path, max: u64) -> io::Result<Vec<Stamped>> {
    let (bytes, whole) = tail(path, max)?;
    let mut lines = bytes.split(|&b| b == b'\n');
    if !whole {
        lines.next();
    }
    Ok(lines
        .filter_map(|l| serde_json::from_str(&String::from_utf8_lossy(l)).ok())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEP: &str = r#"{"phase":"teacher","epoch":1,"step":5,"wall_time":0.5,"type":"step","loss":1.0,"lr":0.001,"samples_per_sec":1.0,"parts":{}}"#;

    #[test]
    fn only_regular_files_are_read_and_never_more_than_asked() {
        let dir = tempfile::tempdir().unwrap();
        let zero = dir.path().join("metrics.jsonl");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        let e = records(&zero, LS_BYTES).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let fifo = dir.path().join("fifo");
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
        )
        .unwrap();
        assert!(tail(&fifo, 10).is_err(), "a FIFO is not waited on");
        assert!(text(&zero).is_err(), "a device is not read");

        let big = dir.path().join("big");
        std::fs::write(&big, b"0123456789").unwrap();
        assert_eq!(tail(&big, 4).unwrap(), (b"6789".to_vec(), false));
        assert!(small(&big, 4).is_err());
        assert_eq!(small(&big, 10).unwrap(), b"0123456789");
    }

    #[test]
    fn a_bad_byte_costs_at_most_its_line_and_a_tail_drops_its_cut_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        let log = br#"{"phase":"teacher","epoch":1,"step":5,"wall_time":0.5,"type":"log","level":"info","message":"caf"#;
        let mut text = format!("{STEP}\n").into_bytes();
        // An invalid byte inside a string: read as U+FFFD, the record stays.
        text.extend(log);
        text.extend(b"\xff\"}\n");
        // Elsewhere: that line alone is lost.
        text.extend(b"{\"bad\xff\n");
        text.extend(format!("{STEP}\n").as_bytes());
        std::fs::write(&path, &text).unwrap();
        let read = records(&path, HISTORY_BYTES).unwrap();
        assert_eq!(read.len(), 3);
        assert!(
            matches!(&read[1].event, crate::protocol::Event::Log { message, .. } if message == "caf\u{fffd}")
        );
        // A tail that starts inside the first record does not read it as one.
        let tail_len = text.len() as u64 - 3;
        assert_eq!(records(&path, tail_len).unwrap().len(), 2);
    }
}
