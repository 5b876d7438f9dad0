//! kd-tui's per-user cache folder: decoded images (`images/`) and teacher outputs
//! (`teacher-outputs/`). Files are written aside and renamed into place, and the folder is kept
//! under a size limit by removing the least recently used files (reading a file counts as use:
//! it touches the file's modification time).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The subfolders whose files may be removed to keep the limit (the folder also holds other
/// things, such as the set-up's Python environment, which are never touched).
const EVICTABLE: [(&str, &str); 2] = [("images", "bin"), ("teacher-outputs", "safetensors")];
/// The limit when `$KD_TUI_CACHE_GIB` does not set one.
pub const DEFAULT_LIMIT_GIB: u64 = 16;

/// kd-tui's per-user cache folder: `$KD_TUI_CACHE`, else `$XDG_CACHE_HOME/kd-tui`, else
/// `~/.cache/kd-tui`; none where none of these is set.
pub fn cache_root() -> Option<PathBuf> {
    crate::user_dirs::from_env("KD_TUI_CACHE")
        .or_else(|| crate::user_dirs::xdg("XDG_CACHE_HOME", ".cache"))
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

/// The free space of the file system `path` would be on.
pub fn free_space(path: &Path) -> u64 {
    path.ancestors()
        .find_map(|p| rustix::fs::statvfs(p).ok())
        .map_or(0, |s| s.f_bavail.saturating_mul(s.f_frsize))
}

/// Marks a cache file as just used (best effort: a file that cannot be touched is only
/// evicted sooner).
pub fn touch(path: &Path) {
    if let Ok(file) = std::fs::File::options().write(true).open(path) {
        let _ = file.set_modified(SystemTime::now());
    }
}

/// The cache folder's size limit in bytes: `$KD_TUI_CACHE_GIB` GiB, else `DEFAULT_LIMIT_GIB`;
/// an unreadable value is an error that names it.
pub fn limit() -> Result<u64, String> {
    limit_of(std::env::var("KD_TUI_CACHE_GIB").ok().as_deref())
}

fn limit_of(gib: Option<&str>) -> Result<u64, String> {
    match gib.map(|v| (v, v.trim().parse::<f64>())) {
        None => Ok(DEFAULT_LIMIT_GIB << 30),
        Some((_, Ok(gib))) if gib.is_finite() && gib >= 0.0 => {
            Ok((gib * f64::from(1u32 << 30)) as u64)
        }
        Some((v, _)) => Err(format!(
            "KD_TUI_CACHE_GIB={v:?} is not a size in GiB (a number, 0 or more)"
        )),
    }
}

/// What keeping the limit removed.
#[derive(Debug, Default, PartialEq)]
pub struct Evicted {
    pub files: usize,
    pub bytes: u64,
}

impl Evicted {
    /// `; evicted 2 older cache files (3.1 GiB) to keep the cache under 16.0 GiB`, or nothing.
    pub fn note(&self, limit: u64) -> String {
        match self.files {
            0 => String::new(),
            n => format!(
                "; evicted {n} older cache file{} ({}) to keep the cache under {} \
                 (KD_TUI_CACHE_GIB)",
                if n == 1 { "" } else { "s" },
                super::images::gib(self.bytes),
                super::images::gib(limit)
            ),
        }
    }
}

/// Removes the least recently used cache files under `root` (never `keep`, the file just
/// written or read) until the cached files take at most `limit` bytes, or only `keep` is left.
pub fn evict(root: &Path, keep: &Path, limit: u64) -> Evicted {
    let mut files: Vec<(SystemTime, u64, PathBuf)> = EVICTABLE
        .iter()
        .filter_map(|(sub, ext)| Some((std::fs::read_dir(root.join(sub)).ok()?, ext)))
        .flat_map(|(dir, ext)| {
            dir.flatten().filter_map(move |e| {
                let path = e.path();
                let meta = e.metadata().ok()?;
                let ours = meta.is_file() && path.extension().is_some_and(|x| x == *ext);
                let modified = meta.modified().ok()?;
                ours.then_some((modified, meta.len(), path))
            })
        })
        .collect();
    let mut total: u64 = files.iter().map(|f| f.1).sum();
    files.sort();
    let mut evicted = Evicted::default();
    for (_, len, path) in files {
        if total <= limit {
            break;
        }
        if path == keep || std::fs::remove_file(&path).is_err() {
            continue;
        }
        total -= len;
        evicted.files += 1;
        evicted.bytes += len;
    }
    evicted
}

/// Keeps the limit after `written` (a file under `cache_root()`) was written; says what it
/// removed, or why it could not keep the limit.
pub fn keep_limit(written: &Path) -> String {
    let Some(root) = written.parent().and_then(Path::parent) else {
        return String::new();
    };
    match limit() {
        Ok(limit) => evict(root, written, limit).note(limit),
        Err(why) => format!("; no file evicted: {why}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn put(root: &Path, rel: &str, len: usize, age_s: u64) -> PathBuf {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, vec![0u8; len]).unwrap();
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(SystemTime::now() - Duration::from_secs(age_s))
            .unwrap();
        path
    }

    #[test]
    fn the_least_recently_used_cache_files_go_first_and_nothing_else_is_touched() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let oldest = put(root, "images/a.bin", 400, 300);
        let old = put(root, "teacher-outputs/b.safetensors", 300, 200);
        let recent = put(root, "images/c.bin", 200, 100);
        let kept = put(root, "images/new.bin", 500, 1000);
        // Not cache files of ours: never removed, never counted.
        let venv = put(root, "torch-2.13.0/lib/big.so", 5000, 5000);
        let partial = put(root, "images/d.123.partial", 5000, 5000);
        let stray = put(root, "images/notes.txt", 5000, 5000);
        // 1400 bytes of cache files, limit 800: the two oldest others go; the file being kept
        // stays, old as its time is.
        let evicted = evict(root, &kept, 800);
        assert_eq!(
            evicted,
            Evicted {
                files: 2,
                bytes: 700
            }
        );
        assert!(!oldest.exists() && !old.exists());
        for stays in [&recent, &kept, &venv, &partial, &stray] {
            assert!(stays.exists(), "{}", stays.display());
        }
        assert!(evicted.note(800).contains("evicted 2 older cache files"));
        // Reading a file makes it the most recent: the file kept last time is now the oldest,
        // and goes when the limit shrinks.
        touch(&recent);
        let evicted = evict(root, &recent, 200);
        assert_eq!(
            evicted,
            Evicted {
                files: 1,
                bytes: 500
            }
        );
        assert!(recent.exists() && !kept.exists());
        // Only the kept file left, over the limit: it stays.
        assert_eq!(evict(root, &recent, 0), Evicted::default());
        assert!(recent.exists());
    }

    #[test]
    fn the_limit_is_a_number_of_gib_or_says_what_is_wrong() {
        assert_eq!(limit_of(None), Ok(DEFAULT_LIMIT_GIB << 30));
        assert_eq!(limit_of(Some("0.5")), Ok(1 << 29));
        assert_eq!(limit_of(Some(" 2 ")), Ok(2 << 30));
        for bad in ["lots", "-1", "inf", ""] {
            let why = limit_of(Some(bad)).unwrap_err();
            assert!(why.contains(&format!("KD_TUI_CACHE_GIB={bad:?}")), "{why}");
        }
    }
}
