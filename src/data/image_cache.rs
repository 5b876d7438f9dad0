//! The decoded-image cache: an image folder's decoded, resized bytes in one file of the
//! per-user cache folder, keyed by the folder's listing (paths, sizes, modification times) and
//! the settings that shape the bytes, so that the next run over an unchanged folder reads one
//! file instead of decoding every image. A file is used only when its length, header and CRC-32
//! agree with what the key promises; anything else is decoded anew and the file replaced.

use super::byte_rows::ByteStore;
use super::images::{fits_in_memory, gib, Decoded, Listing, Pixels};
use super::DataError;
use crate::config::rules::MAX_IMAGE_SIDE;
use crate::config::{DataCache, DataConfig};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The file's first bytes; a new layout gets a new number (and so other keys too).
const MAGIC: &[u8; 16] = b"kd-tui images 1\n";
/// The most `cache = "auto"` writes in one file (and at most half the disk's free space).
const AUTO_BUDGET: u64 = 4 << 30;
/// Class names and counts: a header larger than this is no header of ours.
const MAX_HEADER: u64 = 64 << 20;

/// kd-tui's per-user cache folder: `$KD_TUI_CACHE`, else `$XDG_CACHE_HOME/kd-tui`, else
/// `~/.cache/kd-tui`; none where none of these is set.
pub fn cache_root() -> Option<PathBuf> {
    crate::user_dirs::from_env("KD_TUI_CACHE")
        .or_else(|| crate::user_dirs::xdg("XDG_CACHE_HOME", ".cache"))
}

/// What the file holds besides the bytes, written before them.
#[derive(Serialize, Deserialize)]
struct Header {
    shape: [usize; 3],
    /// Examples per split (`SPLITS`), `None` where the folder has no such split.
    counts: [Option<usize>; 3],
    skipped: usize,
    common_size: bool,
    /// Of every byte after the header.
    crc32: u32,
}

/// Why the cache gave nothing.
pub(super) enum Miss {
    /// `cache = "memory" | "none"`, or no cache folder.
    Off(&'static str),
    Absent,
    /// A file that does not prove what it holds, and why.
    Unusable(String),
    /// A file whose images would not fit in memory: as decoding them would not.
    Refused(DataError),
}

pub(super) struct Cache {
    key: String,
    mode: DataCache,
    path: Option<PathBuf>,
}

impl Cache {
    /// The cache of `dir`'s `listing` under `root` (`cache_root()`, or a test's folder).
    pub fn new(dir: &Path, listing: &Listing, cfg: &DataConfig, root: Option<PathBuf>) -> Cache {
        let mut hash = Sha256::new();
        hash.update(MAGIC);
        let settings = serde_json::json!([cfg.size, cfg.channels, cfg.skip_bad, listing.classes]);
        hash.update(settings.to_string());
        for e in &listing.entries {
            // Relative paths: a moved folder keeps its cache.
            let path = e.path.strip_prefix(dir).unwrap_or(&e.path);
            hash.update(path.as_os_str().as_encoded_bytes());
            hash.update([0, e.split as u8]);
            hash.update((e.class as u64).to_le_bytes());
            hash.update(e.len.to_le_bytes());
            hash.update(e.modified.to_le_bytes());
        }
        let key: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
        let path = match cfg.cache {
            DataCache::Auto | DataCache::Disk => root,
            DataCache::Memory | DataCache::None => None,
        }
        .map(|root| root.join("images").join(format!("{key}.bin")));
        Cache {
            key,
            mode: cfg.cache,
            path,
        }
    }

    /// The hash of the listing and settings: what identifies the data.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The cached images of `classes` classes, proven to be what the file's header says.
    pub fn read(&self, dir: &Path, classes: usize) -> Result<Decoded, Miss> {
        match &self.path {
            Some(path) => read_file(path, dir, classes),
            None if self.mode == DataCache::Memory => Err(Miss::Off("memory")),
            None if self.mode == DataCache::None => Err(Miss::Off("none")),
            None => Err(Miss::Off("none (no cache folder: set KD_TUI_CACHE)")),
        }
    }

    /// Writes `decoded` where the mode says so (best effort: a cache that cannot be written
    /// costs the next run a decode, nothing else); says what was done.
    pub fn keep(&self, decoded: &Decoded, miss: &Miss) -> String {
        let path = match (miss, &self.path) {
            (Miss::Off(why), _) => return why.to_string(),
            (_, None) => return "none".into(),
            (_, Some(path)) => path,
        };
        let bytes: u64 = body_len(decoded);
        if self.mode == DataCache::Auto {
            let budget = AUTO_BUDGET.min(free_space(path) / 2);
            if bytes > budget {
                return format!(
                    "not kept: {} is more than cache = \"auto\" writes ({}); cache = \"disk\" \
                     writes it",
                    gib(bytes),
                    gib(budget)
                );
            }
        }
        match (write_file(path, decoded), miss) {
            (Err(e), _) => format!("not written ({}: {e})", path.display()),
            (Ok(()), Miss::Unusable(why)) => format!("written, replacing a file that {why}"),
            (Ok(()), _) => "written".into(),
        }
    }
}

/// Labels (8 bytes each) and pixels of every split.
fn body_len(d: &Decoded) -> u64 {
    let per = 8 + d.shape.iter().product::<usize>() as u64;
    d.splits
        .iter()
        .flatten()
        .map(|p| p.labels.len() as u64 * per)
        .sum()
}

/// The free space of the file system `path` would be on.
fn free_space(path: &Path) -> u64 {
    path.ancestors()
        .find_map(|p| rustix::fs::statvfs(p).ok())
        .map_or(0, |s| s.f_bavail.saturating_mul(s.f_frsize))
}

fn write_file(path: &Path, d: &Decoded) -> std::io::Result<()> {
    let mut crc = crc32fast::Hasher::new();
    let parts: Vec<(Vec<u8>, &[u8])> = d
        .splits
        .iter()
        .flatten()
        .map(|p| {
            (
                p.labels.iter().flat_map(|l| l.to_le_bytes()).collect(),
                &p.bytes[..],
            )
        })
        .collect();
    for (labels, pixels) in &parts {
        crc.update(labels);
        crc.update(pixels);
    }
    let header = Header {
        shape: d.shape,
        counts: [0, 1, 2].map(|i| d.splits[i].as_ref().map(|p| p.labels.len())),
        skipped: d.skipped,
        common_size: d.common_size,
        crc32: crc.finalize(),
    };
    let header = serde_json::to_vec(&header).map_err(std::io::Error::other)?;
    write_aside(path, |tmp| {
        let mut out = std::io::BufWriter::new(std::fs::File::create(tmp)?);
        out.write_all(MAGIC)?;
        out.write_all(&(header.len() as u64).to_le_bytes())?;
        out.write_all(&header)?;
        for (labels, pixels) in &parts {
            out.write_all(labels)?;
            out.write_all(pixels)?;
        }
        out.into_inner().map_err(|e| e.into_error())?.sync_all()
    })
}

/// Writes a cache file aside, then renames it into place: a reader (another run over the same
/// data) never sees half a file, and a failed write leaves nothing behind. The file aside is
/// named by the process, as two runs may fill the same entry at once.
pub fn write_aside(
    path: &Path,
    write: impl FnOnce(&Path) -> std::io::Result<()>,
) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("{}.partial", std::process::id()));
    let written = write(&tmp).and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

fn read_file(path: &Path, dir: &Path, classes: usize) -> Result<Decoded, Miss> {
    let unusable = |why: String| Miss::Unusable(why);
    let meta = match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Miss::Absent),
        Err(e) => return Err(unusable(format!("could not be read ({e})"))),
        Ok(m) if !m.is_file() => return Err(unusable("is not a regular file".into())),
        Ok(m) => m,
    };
    let mut file =
        std::fs::File::open(path).map_err(|e| unusable(format!("could not be read ({e})")))?;
    let short = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => unusable("is cut short".into()),
        _ => unusable(format!("could not be read ({e})")),
    };
    let mut start = [0u8; 24];
    file.read_exact(&mut start).map_err(short)?;
    if &start[..16] != MAGIC {
        return Err(unusable("is not a cache file of this kd-tui".into()));
    }
    let header_len = u64::from_le_bytes(start[16..].try_into().expect("8 bytes"));
    if header_len > MAX_HEADER {
        return Err(unusable(format!("has a {header_len}-byte header")));
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header).map_err(short)?;
    let header: Header = serde_json::from_slice(&header)
        .map_err(|e| unusable(format!("has a header that does not parse ({e})")))?;
    let [c, h, w] = header.shape;
    if ![1, 3].contains(&c) || [h, w].iter().any(|&x| x == 0 || x > MAX_IMAGE_SIDE) {
        return Err(unusable(format!(
            "claims images of shape {:?}",
            header.shape
        )));
    }
    let Some(train) = header.counts[0] else {
        return Err(unusable("holds no train/ split".into()));
    };
    let images: usize = header.counts.iter().flatten().sum();
    let chw = c * h * w;
    let expected = (images as u64)
        .checked_mul(8 + chw as u64)
        .and_then(|b| b.checked_add(24 + header_len));
    if expected != Some(meta.len()) || train == 0 {
        return Err(unusable(format!(
            "is {} bytes, not what its header promises",
            meta.len()
        )));
    }
    fits_in_memory(dir, images, chw).map_err(Miss::Refused)?;
    // Mapped, not read: each split's tensor is then gathered straight from the page cache, one
    // copy instead of three. Cache files are replaced by renaming, never rewritten in place.
    // SAFETY: the map is only read; a file truncated under it by another program would fault.
    let map = unsafe { memmap2::MmapOptions::new().populate().map(&file) }
        .map(Arc::new)
        .map_err(|e| unusable(format!("could not be mapped ({e})")))?;
    let mut crc = crc32fast::Hasher::new();
    let mut splits = [None, None, None];
    let mut at = 24 + header_len as usize;
    for (slot, count) in splits.iter_mut().zip(header.counts) {
        let Some(n) = count else { continue };
        let labels = &map[at..at + n * 8];
        let bytes = at + n * 8..at + n * (8 + chw);
        at = bytes.end;
        crc.update(labels);
        crc.update(&map[bytes.clone()]);
        let labels: Vec<i64> = labels
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
            .collect();
        if labels.iter().any(|&l| l < 0 || l as usize >= classes) {
            return Err(unusable(format!("holds a label outside 0..{classes}")));
        }
        *slot = Some(Pixels {
            labels,
            bytes: ByteStore::Mapped(map.clone(), bytes),
        });
    }
    if crc.finalize() != header.crc32 {
        return Err(unusable("does not match its checksum".into()));
    }
    Ok(Decoded {
        shape: header.shape,
        splits,
        skipped: header.skipped,
        common_size: header.common_size,
    })
}
