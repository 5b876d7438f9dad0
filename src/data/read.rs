//! Reading data files with a bound: a file (or what a `.gz` file inflates to) larger than
//! `MAX_DATA_BYTES` is refused, read through `Read::take` so that neither a device such as
//! `/dev/zero` nor a gzip bomb is read into memory without end.

use super::{err, DataError};
use flate2::read::GzDecoder;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The most kd-tui reads from one data file, after decompression: 4 GiB.
pub const MAX_DATA_BYTES: u64 = 4 << 30;

/// The contents of `reader`, refused once they exceed `limit` bytes.
pub(crate) fn read_capped(
    reader: impl Read,
    limit: u64,
    capacity: usize,
    name: &str,
) -> Result<Vec<u8>, DataError> {
    let mut out = Vec::with_capacity(capacity);
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| read_error(name, e))?;
    if out.len() as u64 > limit {
        return Err(too_large(name, limit));
    }
    Ok(out)
}

fn too_large(name: &str, limit: u64) -> DataError {
    err(
        name,
        format!(
            "holds more than {}, the most kd-tui reads from a data file (after decompression)",
            size(limit)
        ),
    )
}

/// `4 GiB`, `1000 bytes`.
fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{} GiB", b >> 30),
        b => format!("{b} bytes"),
    }
}

/// A read that failed part way: gzip's errors say the data is corrupt or cut short.
pub(crate) fn read_error(name: &str, e: std::io::Error) -> DataError {
    match e.kind() {
        std::io::ErrorKind::InvalidInput
        | std::io::ErrorKind::InvalidData
        | std::io::ErrorKind::UnexpectedEof => {
            err(name, format!("truncated or corrupt gzip data ({e})"))
        }
        _ => err(name, format!("cannot read: {e}")),
    }
}

/// Inflates gzip `bytes` (the embedded digits), within `MAX_DATA_BYTES`.
pub(crate) fn gunzip(bytes: &[u8], name: &str) -> Result<Vec<u8>, DataError> {
    // The gzip trailer's last four bytes hold the data's length (mod 2^32): room for it up
    // front saves growing and copying the output; a file's claim is trusted only so far.
    let claimed = bytes
        .last_chunk::<4>()
        .map_or(0, |n| u32::from_le_bytes(*n) as usize);
    read_capped(
        GzDecoder::new(bytes),
        MAX_DATA_BYTES,
        claimed.min(256 << 20),
        name,
    )
}

/// A file as a stream of its bytes, un-gzipped when its name ends in `.gz`.
pub(crate) fn open(path: &Path) -> Result<Box<dyn Read>, DataError> {
    let file =
        std::fs::File::open(path).map_err(|e| err(path.display(), format!("cannot read: {e}")))?;
    let file = std::io::BufReader::new(file);
    Ok(if path.extension().is_some_and(|e| e == "gz") {
        Box::new(GzDecoder::new(file))
    } else {
        Box::new(file)
    })
}

/// Reads a file, un-gzipping it when its name ends in `.gz`, within `MAX_DATA_BYTES`.
pub(crate) fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, DataError> {
    let name = path.display().to_string();
    // A plain file's size is known: no need to read 4 GiB to refuse it.
    let len = std::fs::metadata(path).map_or(0, |m| if m.is_file() { m.len() } else { 0 });
    let gz = path.extension().is_some_and(|e| e == "gz");
    if !gz && len > MAX_DATA_BYTES {
        return Err(too_large(&name, MAX_DATA_BYTES));
    }
    let capacity = if gz { 0 } else { len.min(256 << 20) as usize };
    read_capped(open(path)?, MAX_DATA_BYTES, capacity, &name)
}

/// Finds `<stem>` or `<stem>.gz` in `dir`; `what` says what the missing file should be.
pub(crate) fn find_file(dir: &Path, stem: &str, what: &str) -> Result<PathBuf, DataError> {
    [dir.join(stem), dir.join(format!("{stem}.gz"))]
        .into_iter()
        .find(|p| p.exists())
        .ok_or_else(|| {
            err(
                dir.join(stem).display(),
                format!("not found, nor {stem}.gz (expected {what}, optionally gzipped)"),
            )
        })
}
