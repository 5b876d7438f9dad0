//! The decoded-image cache: an image folder's decoded, resized bytes in one file of the
//! per-user cache folder, keyed by the folder's listing (paths, sizes, modification times) and
//! the settings that shape the bytes, so that the next run over an unchanged folder reads one
//! file instead of decoding every image. A file is used only when its length, header and
//! checksum agree with what the key promises (`file`); anything else is decoded anew and the
//! file replaced. With `cache = "disk"` the run reads its rows from the file batch by batch, so
//! a folder larger than memory is decoded once, straight into the file, and then trains from it.

mod file;

use super::cache_folder::{free_space, keep_limit, touch, write_aside};
use super::images::{decode_each, gib, Decoded, Listing, Plan};
use super::{err, DataError};
use crate::config::{DataCache, DataConfig};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The most `cache = "auto"` writes in one file (and at most half the disk's free space).
const AUTO_BUDGET: u64 = 4 << 30;

/// Why the cache gave nothing.
pub(super) enum Miss {
    /// `cache = "memory" | "none"`, or no cache folder.
    Off(&'static str),
    Absent,
    /// A file that does not prove what it holds, and why.
    Unusable(String),
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
        hash.update(file::MAGIC);
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

    /// The cached images of `classes` classes, proven to be what the file's header says: read
    /// into memory, or left on disk with `cache = "disk"` or when they would not fit.
    pub fn read(&self, dir: &Path, classes: usize) -> Result<Decoded, Miss> {
        match &self.path {
            Some(path) => {
                let decoded = file::read(path, dir, classes, self.mode == DataCache::Disk)?;
                touch(path);
                Ok(decoded)
            }
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
        match file::write(path, decoded) {
            Err(e) => format!("not written ({}: {e})", path.display()),
            Ok(()) => written(path, miss),
        }
    }

    /// `cache = "disk"`: decodes `plan` straight into the cache file, a chunk of images at a
    /// time (they need not fit in memory), and reads it back, its rows left on disk. A file
    /// that would not fit the free space, or cannot be written, is refused before training.
    pub fn decode_to_file(
        &self,
        dir: &Path,
        listing: &Listing,
        cfg: &DataConfig,
        plan: Plan,
        miss: &Miss,
    ) -> Result<(Decoded, String), DataError> {
        let path = self.path.as_ref().ok_or_else(|| {
            err(
                "preset",
                "key `data.cache`: \"disk\" needs a cache folder; set KD_TUI_CACHE",
            )
        })?;
        let bytes = file_len(plan.entries.len(), plan.chw());
        let free = free_space(path);
        if bytes > free {
            return Err(err(
                path.display(),
                format!(
                    "the decoded images take {}, more than the {} free there; free space, set \
                     KD_TUI_CACHE to another disk, or data.cache = \"none\" (decoded as batches \
                     are drawn)",
                    gib(bytes),
                    gib(free)
                ),
            ));
        }
        let cannot = |e: std::io::Error| {
            err(
                path.display(),
                format!("cannot write the image cache ({e})"),
            )
        };
        let [h, w] = plan.size;
        let shape = [plan.channels, h, w];
        let mut failed = None;
        write_aside(path, |tmp| {
            let mut out = file::Writer::create(tmp)?;
            let decoded = decode_each(dir, listing, cfg, &plan, &mut |split, pixels, labels| {
                out.push(split, pixels, labels).map_err(cannot)
            });
            match decoded {
                Ok(skipped) => out.finish(shape, skipped, cfg.size.is_none()),
                Err(e) => {
                    failed = Some(e);
                    Err(std::io::Error::other("decoding failed"))
                }
            }
        })
        .map_err(|e| failed.take().unwrap_or_else(|| cannot(e)))?;
        let decoded = file::read(path, dir, listing.classes.len(), true).map_err(|miss| {
            let why = match miss {
                Miss::Unusable(why) => why,
                Miss::Absent | Miss::Off(_) => "is not there".into(),
            };
            err(path.display(), format!("the cache just written {why}"))
        })?;
        Ok((decoded, written(path, miss)))
    }
}

/// What writing the file at `path` did: whether it replaced another, what it evicted.
fn written(path: &Path, miss: &Miss) -> String {
    let replaced = match miss {
        Miss::Unusable(why) => format!(", replacing a file that {why}"),
        _ => String::new(),
    };
    format!("written{replaced}{}", keep_limit(path))
}

/// Labels (8 bytes each) and pixels of every split.
fn body_len(d: &Decoded) -> u64 {
    let images = d.splits.iter().flatten().map(|p| p.labels.len()).sum();
    file_len(images, d.shape.iter().product())
}

/// What `images` images of `chw` bytes take in a cache file: pixels and an 8-byte label each.
fn file_len(images: usize, chw: usize) -> u64 {
    images as u64 * (chw as u64 + 8)
}
