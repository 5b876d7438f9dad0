//! Image folders, as torchvision's `ImageFolder` reads them: PNG, JPEG and BMP files (any case
//! of extension; other files are skipped) under `DIR/train/<class>/`, at any depth, and
//! optionally `DIR/val/<class>/` and `DIR/test/<class>/`. The classes are `train/`'s subfolders
//! in byte order of their names, or `data.classes`'s order. Every image is decoded in parallel,
//! made gray or RGB, resized with PIL's bilinear filter and kept as `[C, H, W]` bytes;
//! `image_cache` keeps those bytes for the next run over the same folder. A folder too large for
//! memory (or `cache = "none"`) is decoded batch by batch as the run trains (`stream`).

use super::byte_rows::{ByteRows, ByteStore};
use super::cache_folder::cache_root;
use super::image_cache::Cache;
use super::{err, DataError, Raw, Source, Values};
use crate::config::{DataCache, DataConfig};
use crate::protocol::InputShape;
use decode::{decode, plan};
pub(super) use decode::{decode_each, fits_in_memory, gib, Plan};
use rayon::prelude::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
pub use stream::{ImageFiles, StreamedRows, UnreadableImage};

/// The folders of an image folder's splits, in `Decoded::splits` order; `train` must be there.
pub(super) const SPLITS: [&str; 3] = ["train", "val", "test"];
const EXTENSIONS: [&str; 4] = ["png", "jpg", "jpeg", "bmp"];
/// How deep a class folder may nest: a link to a folder above it would otherwise never end.
const MAX_DEPTH: usize = 32;

/// One image file: where it is, its split and class, and what the cache key notes of it.
pub(super) struct Entry {
    pub path: PathBuf,
    pub split: usize,
    pub class: usize,
    pub len: u64,
    /// Modification time, nanoseconds since the epoch (0 where the system has none).
    pub modified: u128,
}

/// The image files of a folder, in split, then class, then path order.
pub(super) struct Listing {
    pub entries: Vec<Entry>,
    pub classes: Vec<String>,
    pub present: [bool; 3],
}

/// One split's images: labels and `[n, C, H, W]` bytes (decoded, or mapped from the cache).
#[derive(Debug, PartialEq)]
pub(super) struct Pixels {
    pub labels: Vec<i64>,
    pub bytes: ByteStore,
}

/// A folder's images decoded: what the cache file holds.
#[derive(Debug, PartialEq)]
pub(super) struct Decoded {
    /// `[C, H, W]`.
    pub shape: [usize; 3],
    /// Per split (`SPLITS`), absent where the folder has no such split.
    pub splits: [Option<Pixels>; 3],
    /// Images that could not be decoded and were skipped (`data.skip_bad`).
    pub skipped: usize,
    /// Whether the size is the most common one (no `data.size` given).
    pub common_size: bool,
}

/// Reads the image folder `dir`: from the cache when it holds this listing, else decoding; or,
/// with `cache = "none"` or when its bytes would not fit in memory (`"auto"`), as files that
/// are decoded batch by batch while the run trains.
pub(super) fn read(cfg: &DataConfig, dir: &Path) -> Result<Source, DataError> {
    // A pool of its own: its threads end with the load instead of idling through training.
    let pool = rayon::ThreadPoolBuilder::new()
        .build()
        .map_err(|e| err(dir.display(), format!("cannot start decoding threads: {e}")))?;
    pool.install(|| {
        let listing = list(dir, cfg.classes.as_deref())?;
        let cache = Cache::new(dir, &listing, cfg, cache_root());
        let (data, status) = match cache.read(dir, listing.classes.len()) {
            Ok(decoded) => (Data::Decoded(decoded), read_status(cfg.cache)),
            Err(miss) => {
                let plan = plan(&listing, cfg, cfg.cache == DataCache::None)?;
                let too_big = fits_in_memory(dir, plan.entries.len(), plan.chw()).err();
                match (cfg.cache, too_big) {
                    (DataCache::None, _) => (
                        stream(plan, cfg),
                        "none: decoded as batches are drawn".into(),
                    ),
                    (DataCache::Disk, _) => {
                        let (decoded, status) =
                            cache.decode_to_file(dir, &listing, cfg, plan, &miss)?;
                        (Data::Decoded(decoded), format!("{status}; {PAGED}"))
                    }
                    (DataCache::Auto, Some(why)) => {
                        // Short of memory: the allocator gives back what each step frees.
                        crate::malloc::return_freed_memory();
                        let status = format!(
                            "none, decoded as batches are drawn, freed memory given back: {}",
                            why.message
                        );
                        (stream(plan, cfg), status)
                    }
                    (DataCache::Memory, Some(why)) => return Err(why),
                    (_, None) => {
                        let decoded = decode(dir, &listing, cfg, plan)?;
                        let status = cache.keep(&decoded, &miss);
                        (Data::Decoded(decoded), status)
                    }
                }
            }
        };
        Ok(source(dir, listing.classes, data, &status, cache.key()))
    })
}

/// How the rows of a cache file left on disk are read, for the data line.
const PAGED: &str = "rows read from the file as batches are drawn";

/// The data line's cache status for a file that was read.
fn read_status(mode: DataCache) -> String {
    match mode {
        DataCache::Disk => format!("read; {PAGED}"),
        _ => "read".into(),
    }
}

/// A folder's images, decoded now or as they are read.
enum Data {
    Decoded(Decoded),
    Streamed(Streamed),
}

/// A folder's image files, to be decoded batch by batch.
struct Streamed {
    files: Arc<ImageFiles>,
    shape: [usize; 3],
    /// Per split: the labels and files (indices into `files`) of its images.
    splits: [Option<(Vec<i64>, Vec<usize>)>; 3],
    skipped: usize,
    common_size: bool,
}

fn stream(plan: Plan, cfg: &DataConfig) -> Data {
    let mut splits: [Option<(Vec<i64>, Vec<usize>)>; 3] = [None, None, None];
    let mut paths = Vec::with_capacity(plan.entries.len());
    for e in &plan.entries {
        let (labels, rows) = splits[e.split].get_or_insert_with(Default::default);
        labels.push(e.class as i64);
        rows.push(paths.len());
        paths.push(e.path.clone());
    }
    let [h, w] = plan.size;
    Data::Streamed(Streamed {
        files: Arc::new(ImageFiles::new(paths, plan.channels, plan.size)),
        shape: [plan.channels, h, w],
        splits,
        skipped: plan.skipped,
        common_size: cfg.size.is_none(),
    })
}

fn source(dir: &Path, classes: Vec<String>, data: Data, status: &str, key: &str) -> Source {
    let (shape, skipped, common_size) = match &data {
        Data::Decoded(d) => (d.shape, d.skipped, d.common_size),
        Data::Streamed(s) => (s.shape, s.skipped, s.common_size),
    };
    let [c, h, w] = shape;
    let input = InputShape::image(c, h, w);
    let splits: [Option<Raw>; 3] = match data {
        Data::Decoded(d) => d.splits.map(|p| {
            p.map(|p| Raw {
                features: Values::Bytes(ByteRows::all(p.bytes, c * h * w)),
                labels: p.labels,
                shape: input.clone(),
            })
        }),
        Data::Streamed(s) => s.splits.map(|p| {
            p.map(|(labels, rows)| Raw {
                features: Values::Files(s.files.clone(), rows),
                labels,
                shape: input.clone(),
            })
        }),
    };
    let counts: Vec<String> = SPLITS
        .iter()
        .zip(&splits)
        .filter_map(|(name, p)| Some(format!("{} in {name}/", p.as_ref()?.labels.len())))
        .collect();
    let skipped = match skipped {
        0 => String::new(),
        1 => "; 1 unreadable image skipped".into(),
        n => format!("; {n} unreadable images skipped"),
    };
    let description = format!(
        "images {} ({}; {c}x{h}x{w}{}; {} classes{skipped}; cache: {status})",
        dir.display(),
        counts.join(", "),
        if common_size {
            ", the most common size"
        } else {
            ""
        },
        classes.len(),
    );
    let [train, val, test] = splits;
    Source {
        all: train.expect("a folder has train/"),
        val,
        test,
        max_value: Some(255.0),
        description,
        classes,
        fingerprint: Some(key.to_string()),
    }
}

/// Lists the folder's classes and image files, refusing class folders that do not match.
fn list(dir: &Path, wanted: Option<&[String]>) -> Result<Listing, DataError> {
    let train = dir.join("train");
    if !train.is_dir() {
        return Err(err(
            train.display(),
            "not found: an image folder holds train/<class>/ folders of images (and optionally \
             val/<class>/, test/<class>/)",
        ));
    }
    let found = class_folders(&train)?;
    let classes: Vec<String> = match wanted {
        None => found.iter().map(|(name, _)| name.clone()).collect(),
        Some(list) => {
            if let Some((name, path)) = found.iter().find(|(n, _)| !list.contains(n)) {
                return Err(err(
                    path.display(),
                    format!(
                        "class folder `{name}` is not in data.classes ({})",
                        list.join(", ")
                    ),
                ));
            }
            if let Some(name) = list.iter().find(|n| !found.iter().any(|(f, _)| f == *n)) {
                return Err(err(
                    train.display(),
                    format!("data.classes lists `{name}`, but there is no folder train/{name}"),
                ));
            }
            list.to_vec()
        }
    };
    if classes.len() < 2 {
        return Err(err(
            train.display(),
            format!(
                "holds {} class folder(s); a classifier needs two or more",
                classes.len()
            ),
        ));
    }
    let index: HashMap<&str, usize> = classes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i))
        .collect();
    let mut folders = Vec::new();
    let mut present = [false; 3];
    for (split, name) in SPLITS.iter().enumerate() {
        let path = dir.join(name);
        if split > 0 && !path.exists() {
            continue;
        }
        present[split] = true;
        for (class_name, folder) in if split == 0 {
            found.clone()
        } else {
            class_folders(&path)?
        } {
            let Some(&class) = index.get(class_name.as_str()) else {
                return Err(err(
                    folder.display(),
                    format!(
                        "class `{class_name}` is not a class of train/ ({})",
                        classes.join(", ")
                    ),
                ));
            };
            folders.push((split, class, folder));
        }
    }
    folders.sort_by_key(|&(split, class, _)| (split, class));
    let files: Vec<Result<Vec<Entry>, DataError>> = folders
        .par_iter()
        .map(|(split, class, folder)| {
            let mut found = Vec::new();
            walk(folder, 0, &mut found)?;
            if *split == 0 && found.is_empty() {
                return Err(err(folder.display(), "holds no PNG, JPEG or BMP images"));
            }
            // By the paths' bytes: comparing `Path`s component by component costs more.
            found.sort_by(|a, b| a.path.as_os_str().cmp(b.path.as_os_str()));
            Ok(found
                .into_iter()
                .map(|e| Entry {
                    split: *split,
                    class: *class,
                    ..e
                })
                .collect())
        })
        .collect();
    let mut entries = Vec::new();
    for f in files {
        entries.extend(f?);
    }
    for split in 1..SPLITS.len() {
        if present[split] && !entries.iter().any(|e| e.split == split) {
            return Err(err(
                dir.join(SPLITS[split]).display(),
                "holds no images in class folders; remove it to draw these examples from train/",
            ));
        }
    }
    Ok(Listing {
        entries,
        classes,
        present,
    })
}

/// A split folder's class folders, by name in byte order (as torchvision sorts them).
fn class_folders(split: &Path) -> Result<Vec<(String, PathBuf)>, DataError> {
    let cannot = |e: std::io::Error| err(split.display(), format!("cannot read: {e}"));
    let mut out = Vec::new();
    for entry in std::fs::read_dir(split).map_err(cannot)? {
        let path = entry.map_err(cannot)?.path();
        if !path.is_dir() {
            continue;
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| err(path.display(), "a class folder's name must be UTF-8 text"))?;
        out.push((name.to_string(), path.clone()));
    }
    out.sort();
    Ok(out)
}

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// Collects the image files under `folder` (split and class filled in by the caller).
fn walk(folder: &Path, depth: usize, out: &mut Vec<Entry>) -> Result<(), DataError> {
    if depth > MAX_DEPTH {
        return Err(err(
            folder.display(),
            format!("nested more than {MAX_DEPTH} folders deep (a link to a folder above it?)"),
        ));
    }
    let cannot = |e: std::io::Error| err(folder.display(), format!("cannot read: {e}"));
    for entry in std::fs::read_dir(folder).map_err(cannot)? {
        let entry = entry.map_err(cannot)?;
        let path = entry.path();
        // The directory entry's type costs no system call; links are followed like torchvision.
        let kind = entry.file_type().map_err(cannot)?;
        if !kind.is_dir() && !kind.is_symlink() && !is_image(&path) {
            continue;
        }
        let meta = match kind.is_symlink() {
            true => std::fs::metadata(&path),
            false => entry.metadata(),
        };
        let meta = meta.map_err(|e| err(path.display(), format!("cannot read: {e}")))?;
        if meta.is_dir() {
            walk(&path, depth + 1, out)?;
        } else if meta.is_file() && is_image(&path) {
            let modified = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
            out.push(Entry {
                path,
                split: 0,
                class: 0,
                len: meta.len(),
                modified: modified.map_or(0, |d| d.as_nanos()),
            });
        }
    }
    Ok(())
}

mod decode;
mod stream;
#[cfg(test)]
mod tests;
