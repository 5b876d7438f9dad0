//! Reading a run's own small files (`checkpoint.json`, `summary.json`, `preset.toml`) with a
//! bound: whatever is there (a device, a symlink to `/dev/zero`, a huge file) is read no further
//! than such a file can legitimately be.

use std::io::{self, Read};
use std::path::Path;

/// The most read of one of a run's JSON or TOML files: far more than a real one holds (a
/// summary with per-class accuracies of thousands of classes is well under 1 MiB).
pub const MAX_RECORD_BYTES: u64 = 16 << 20;

/// The text of `path`, refused (`InvalidData`) past `MAX_RECORD_BYTES` or if it is not UTF-8.
pub fn read_text(path: &Path) -> io::Result<String> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_RECORD_BYTES + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_RECORD_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "larger than {} MiB, more than such a file holds",
                MAX_RECORD_BYTES >> 20
            ),
        ));
    }
    String::from_utf8(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_file_without_end_is_read_no_further_than_the_bound() {
        let e = super::read_text(std::path::Path::new("/dev/zero")).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
    }
}
