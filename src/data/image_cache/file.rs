//! The image-cache file. Written in the order images are decoded, so that a folder larger than
//! memory streams into it: the magic, every split's pixels (`[n, C, H, W]` bytes), every split's
//! labels (little-endian i64), a JSON header, and the header's length in the last 8 bytes.

use super::super::byte_rows::ByteStore;
use super::super::images::{fits_in_memory, Decoded, Pixels};
use super::Miss;
use crate::config::rules::MAX_IMAGE_SIDE;
use serde::{Deserialize, Serialize};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;

/// The file's first bytes; a new layout gets a new number (and so other keys too).
pub(super) const MAGIC: &[u8; 16] = b"kd-tui images 2\n";
/// Class names and counts: a header larger than this is no header of ours.
const MAX_HEADER: u64 = 64 << 20;

/// What the file holds besides the bytes, written after them.
#[derive(Serialize, Deserialize)]
struct Header {
    shape: [usize; 3],
    /// Examples per split (`SPLITS`), `None` where the folder has no such split.
    counts: [Option<usize>; 3],
    skipped: usize,
    common_size: bool,
    /// Of every byte between the magic and the header.
    crc32: u32,
}

/// A cache file being written, split by split, as the images are decoded.
pub(in crate::data) struct Writer {
    out: std::io::BufWriter<std::fs::File>,
    crc: crc32fast::Hasher,
    counts: [Option<usize>; 3],
    labels: Vec<u8>,
}

impl Writer {
    pub fn create(path: &Path) -> std::io::Result<Writer> {
        let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
        out.write_all(MAGIC)?;
        Ok(Writer {
            out,
            crc: crc32fast::Hasher::new(),
            counts: [None; 3],
            labels: Vec::new(),
        })
    }

    /// Appends images of `split` (splits in `SPLITS` order): `pixels` holds one row per label.
    pub fn push(&mut self, split: usize, pixels: &[u8], labels: &[i64]) -> std::io::Result<()> {
        self.out.write_all(pixels)?;
        self.crc.update(pixels);
        *self.counts[split].get_or_insert(0) += labels.len();
        self.labels
            .extend(labels.iter().flat_map(|l| l.to_le_bytes()));
        Ok(())
    }

    /// Writes the labels and the header, and syncs the file to disk.
    pub fn finish(
        mut self,
        shape: [usize; 3],
        skipped: usize,
        common_size: bool,
    ) -> std::io::Result<()> {
        self.out.write_all(&self.labels)?;
        self.crc.update(&self.labels);
        let header = Header {
            shape,
            counts: self.counts,
            skipped,
            common_size,
            crc32: self.crc.finalize(),
        };
        let header = serde_json::to_vec(&header).map_err(std::io::Error::other)?;
        self.out.write_all(&header)?;
        self.out.write_all(&(header.len() as u64).to_le_bytes())?;
        self.out
            .into_inner()
            .map_err(|e| e.into_error())?
            .sync_all()
    }
}

/// Writes images decoded in memory as a cache file at `path` (a file aside, renamed).
pub(super) fn write(path: &Path, d: &Decoded) -> std::io::Result<()> {
    super::write_aside(path, |tmp| {
        let mut out = Writer::create(tmp)?;
        for (split, p) in d.splits.iter().enumerate() {
            if let Some(p) = p {
                out.push(split, &p.bytes, &p.labels)?;
            }
        }
        out.finish(d.shape, d.skipped, d.common_size)
    })
}

/// Reads the cache file at `path`, for `dir` of `classes` classes. Its bytes are mapped: read
/// into memory (pre-faulted) unless `paged` or they would not fit, else left on disk for the
/// rows to be read batch by batch. The checksum is checked over files that fit in memory; a
/// larger file is checked by its length, header and labels, as reading all of it would delay
/// every run by a pass over the disk.
pub(super) fn read(path: &Path, dir: &Path, classes: usize, paged: bool) -> Result<Decoded, Miss> {
    let unusable = |why: String| Miss::Unusable(why);
    let meta = match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Miss::Absent),
        Err(e) => return Err(unusable(format!("could not be read ({e})"))),
        Ok(m) if !m.is_file() => return Err(unusable("is not a regular file".into())),
        Ok(m) => m,
    };
    let len = meta.len();
    let mut file =
        std::fs::File::open(path).map_err(|e| unusable(format!("could not be read ({e})")))?;
    let short = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => unusable("is cut short".into()),
        _ => unusable(format!("could not be read ({e})")),
    };
    let mut magic = [0u8; 16];
    file.read_exact(&mut magic).map_err(short)?;
    if &magic != MAGIC {
        return Err(unusable("is not a cache file of this kd-tui".into()));
    }
    // The magic and the header's length.
    let frame = 16 + 8;
    if len < frame {
        return Err(unusable("is cut short".into()));
    }
    let mut tail = [0u8; 8];
    file.seek(SeekFrom::End(-8)).map_err(short)?;
    file.read_exact(&mut tail).map_err(short)?;
    let header_len = u64::from_le_bytes(tail);
    if header_len > MAX_HEADER || header_len > len - frame {
        return Err(unusable(format!("has a {header_len}-byte header")));
    }
    let mut header = vec![0u8; header_len as usize];
    file.seek(SeekFrom::End(-8 - header_len as i64))
        .map_err(short)?;
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
    let body = (images as u64).checked_mul(8 + chw as u64);
    if body.and_then(|b| b.checked_add(frame + header_len)) != Some(len) || train == 0 {
        return Err(unusable(format!(
            "is {len} bytes, not what its header promises"
        )));
    }
    let resident = fits_in_memory(dir, images, chw).is_ok();
    let paged = paged || !resident;
    // Cache files are replaced by renaming, never rewritten in place.
    // SAFETY: the map is only read; a file truncated under it by another program would fault.
    let mut options = memmap2::MmapOptions::new();
    if !paged {
        options.populate();
    }
    let map = unsafe { options.map(&file) }
        .map(Arc::new)
        .map_err(|e| unusable(format!("could not be mapped ({e})")))?;
    let (pixels_end, labels_end) = (16 + images * chw, 16 + images * (chw + 8));
    if resident {
        let mut crc = crc32fast::Hasher::new();
        crc.update(&map[16..labels_end]);
        if crc.finalize() != header.crc32 {
            return Err(unusable("does not match its checksum".into()));
        }
    }
    let mut splits = [None, None, None];
    let (mut pixels_at, mut labels_at) = (16, pixels_end);
    for (slot, count) in splits.iter_mut().zip(header.counts) {
        let Some(n) = count else { continue };
        let labels: Vec<i64> = map[labels_at..labels_at + n * 8]
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
            .collect();
        if labels.iter().any(|&l| l < 0 || l as usize >= classes) {
            return Err(unusable(format!("holds a label outside 0..{classes}")));
        }
        let bytes = pixels_at..pixels_at + n * chw;
        (pixels_at, labels_at) = (bytes.end, labels_at + n * 8);
        *slot = Some(Pixels {
            labels,
            bytes: match paged {
                true => ByteStore::Paged(map.clone(), bytes),
                false => ByteStore::Mapped(map.clone(), bytes),
            },
        });
    }
    debug_assert_eq!((pixels_at, labels_at), (pixels_end, labels_end));
    Ok(Decoded {
        shape: header.shape,
        splits,
        skipped: header.skipped,
        common_size: header.common_size,
    })
}
