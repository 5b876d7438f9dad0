//! The teacher-output cache: the teacher's logits over a training set, on disk, keyed by the
//! teacher's weights and the data. A cached file is trusted only with proof: it must be a
//! regular file no larger than the key's promise, hold exactly `logits` (f32, `[rows, classes]`
//! as the key promises) and `sha256` (the digest of the logits' bytes, written with them), the
//! digest must match and every logit must be finite. Anything else is recomputed, saying why.

use crate::model::Model;
use safetensors::{Dtype, SafeTensors};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

/// Room for the safetensors header of the two tensors (names, shapes, offsets: ~150 bytes).
const HEADER_ALLOWANCE: u64 = 4096;

/// Why a cached file was not used.
#[derive(Debug, thiserror::Error)]
pub enum CacheMismatch {
    #[error("not there ({0})")]
    Missing(std::io::Error),
    #[error("not a regular file")]
    NotAFile,
    #[error("{found} bytes, more than the {limit} that {rows}x{classes} logits take")]
    TooLarge {
        found: u64,
        limit: u64,
        rows: usize,
        classes: usize,
    },
    #[error("not a safetensors file ({0})")]
    Format(String),
    #[error("holds {0}, not exactly `logits` and `sha256`")]
    Tensors(String),
    #[error("`logits` is {dtype:?} {shape:?}, not F32 [{rows}, {classes}]")]
    Shape {
        dtype: Dtype,
        shape: Vec<usize>,
        rows: usize,
        classes: usize,
    },
    #[error("`sha256` is not 32 bytes")]
    Digest,
    #[error("the logits' checksum does not match the one stored with them")]
    Checksum,
    #[error("a logit is not a finite number")]
    NotFinite,
}

/// Teacher logits over a training set on disk, keyed by the teacher's weights, the data and its
/// preprocessing (so a rerun, another student or a sweep with the same teacher skips the pass).
pub struct TeacherCache {
    path: PathBuf,
    rows: usize,
    classes: usize,
}

impl TeacherCache {
    /// `$KD_TUI_CACHE` (default `~/.cache/kd-tui`)`/teacher-outputs/<sha256>.safetensors`, for
    /// `rows` training examples of `classes` classes (for an augmented student, every view of
    /// each: `data_key` then names the augmentation). A TorchScript teacher's file (`module`)
    /// joins the key by its SHA-256: its code computes the logits as much as its weights do.
    pub fn new(
        teacher: &Model,
        module: Option<&Path>,
        data_key: &str,
        rows: usize,
        classes: usize,
    ) -> Option<TeacherCache> {
        let root = crate::data::cache_root()?;
        let mut hash = Sha256::new();
        hash.update(data_key.as_bytes());
        if let Some(module) = module {
            let bytes = std::fs::read(module).ok()?;
            hash.update(b"torchscript");
            hash.update(Sha256::digest(&bytes));
        }
        let mut vars: Vec<(String, Tensor)> = teacher.vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, t) in vars {
            hash.update(name.as_bytes());
            hash_floats(&mut hash, &t.to_kind(Kind::Float))?;
        }
        let key: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
        Some(TeacherCache {
            path: root
                .join("teacher-outputs")
                .join(format!("{key}.safetensors")),
            rows,
            classes,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The cached logits, proven to be what the key promises.
    pub fn read(&self) -> Result<Tensor, CacheMismatch> {
        let logits = read_logits(&self.path, self.rows, self.classes)?;
        crate::data::touch(&self.path);
        Ok(logits)
    }

    /// Best effort: a cache that cannot be written costs the next run a teacher pass, nothing
    /// else. Older cache files are evicted to keep the cache folder's limit.
    pub fn write(&self, logits: &Tensor) {
        if write_logits(&self.path, logits).is_ok() {
            crate::data::keep_limit(&self.path);
        }
    }
}

/// Writes logits and their checksum as a cache file, aside and renamed (a reader never sees
/// half a file).
pub fn write_logits(path: &Path, logits: &Tensor) -> std::io::Result<()> {
    let logits = logits.to_device(tch::Device::Cpu).to_kind(Kind::Float);
    let digest = Tensor::from_slice(&digest_of(&logits));
    crate::data::write_aside(path, |tmp| {
        Tensor::write_safetensors(&[("logits", &logits), ("sha256", &digest)], tmp)
            .map_err(std::io::Error::other)
    })
}

/// Adds an f32 tensor's values to `hash`, as the little-endian bytes safetensors stores.
fn hash_floats(hash: &mut Sha256, t: &Tensor) -> Option<()> {
    let values: Vec<f32> = Vec::try_from(t.flatten(0, -1)).ok()?;
    for v in values {
        hash.update(v.to_le_bytes());
    }
    Some(())
}

/// The SHA-256 of an f32 tensor's little-endian bytes.
fn digest_of(logits: &Tensor) -> Vec<u8> {
    let mut hash = Sha256::new();
    let _ = hash_floats(&mut hash, logits);
    hash.finalize().to_vec()
}

/// Reads a cache file that must hold `rows` x `classes` f32 logits and their checksum.
pub fn read_logits(path: &Path, rows: usize, classes: usize) -> Result<Tensor, CacheMismatch> {
    let meta = std::fs::metadata(path).map_err(CacheMismatch::Missing)?;
    if !meta.is_file() {
        return Err(CacheMismatch::NotAFile);
    }
    let limit = (rows as u64)
        .saturating_mul(classes as u64)
        .saturating_mul(4)
        .saturating_add(32 + HEADER_ALLOWANCE);
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(limit + 1).read_to_end(&mut bytes))
        .map_err(CacheMismatch::Missing)?;
    if bytes.len() as u64 > limit {
        return Err(CacheMismatch::TooLarge {
            found: meta.len().max(bytes.len() as u64),
            limit,
            rows,
            classes,
        });
    }
    let file =
        SafeTensors::deserialize(&bytes).map_err(|e| CacheMismatch::Format(e.to_string()))?;
    let mut names = file.names();
    names.sort();
    if names != ["logits", "sha256"] {
        return Err(CacheMismatch::Tensors(format!("{names:?}")));
    }
    let view = |name| {
        file.tensor(name)
            .map_err(|e| CacheMismatch::Format(e.to_string()))
    };
    let (logits, digest) = (view("logits")?, view("sha256")?);
    if logits.dtype() != Dtype::F32 || logits.shape() != [rows, classes] {
        return Err(CacheMismatch::Shape {
            dtype: logits.dtype(),
            shape: logits.shape().to_vec(),
            rows,
            classes,
        });
    }
    if digest.dtype() != Dtype::U8 || digest.data().len() != 32 {
        return Err(CacheMismatch::Digest);
    }
    if Sha256::digest(logits.data()).as_slice() != digest.data() {
        return Err(CacheMismatch::Checksum);
    }
    let values: Vec<f32> = logits
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    if !values.iter().all(|v| v.is_finite()) {
        return Err(CacheMismatch::NotFinite);
    }
    Ok(Tensor::from_slice(&values).view([rows as i64, classes as i64]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logits() -> Tensor {
        Tensor::from_slice(&[0.5f32, -1.0, 2.0, 3.0, 0.0, -0.25]).view([3, 2])
    }

    fn cache_in(dir: &Path) -> TeacherCache {
        TeacherCache {
            path: dir.join("teacher-outputs/key.safetensors"),
            rows: 3,
            classes: 2,
        }
    }

    /// Writes `tensors` where `cache` reads, then reads it back.
    fn read_after(
        cache: &TeacherCache,
        tensors: &[(&str, Tensor)],
    ) -> Result<Tensor, CacheMismatch> {
        Tensor::write_safetensors(tensors, cache.path()).unwrap();
        cache.read()
    }

    #[test]
    fn a_torchscript_files_bytes_join_the_key() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg: crate::config::ModelConfig =
            toml::from_str::<toml::Table>("m = { kind = \"mlp\", hidden = [4] }").unwrap()["m"]
                .clone()
                .try_into()
                .unwrap();
        let input = crate::protocol::InputShape::flat(3);
        let model = Model::new(&cfg, &input, 2, tch::Device::Cpu).unwrap();
        let key = |module: Option<&Path>| {
            TeacherCache::new(&model, module, "data", 3, 2)
                .map(|c| c.path.file_name().map(|n| n.to_owned()))
        };
        let (a, b) = (tmp.path().join("a.pt"), tmp.path().join("b.pt"));
        std::fs::write(&a, b"one module").unwrap();
        std::fs::write(&b, b"another module").unwrap();
        let (none, with_a, with_b) = (key(None), key(Some(&a)), key(Some(&b)));
        if none.is_none() {
            return; // no cache folder here (neither KD_TUI_CACHE, XDG_CACHE_HOME nor HOME)
        }
        assert_ne!(none, with_a);
        assert_ne!(with_a, with_b);
        assert_eq!(with_a, key(Some(&a)), "the same file, the same key");
        assert_eq!(
            key(Some(&tmp.path().join("missing.pt"))),
            None,
            "no file, no cache"
        );
    }

    #[test]
    fn what_was_written_reads_back_identical() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = cache_in(tmp.path());
        assert!(matches!(cache.read(), Err(CacheMismatch::Missing(_))));
        cache.write(&logits());
        assert!(cache.read().unwrap().equal(&logits()));
    }

    #[test]
    fn a_file_that_does_not_prove_its_logits_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = cache_in(tmp.path());
        cache.write(&logits());
        let digest = || Tensor::from_slice(&digest_of(&logits()));
        // Rows rotated by one class: the stored checksum no longer matches.
        let rotated = logits().roll([1], [1]);
        assert!(matches!(
            read_after(&cache, &[("logits", rotated), ("sha256", digest())]),
            Err(CacheMismatch::Checksum)
        ));
        let zeros = logits().zeros_like();
        assert!(matches!(
            read_after(&cache, &[("logits", zeros), ("sha256", digest())]),
            Err(CacheMismatch::Checksum)
        ));
        // Other shapes and dtypes than the key promises, each with its own valid checksum.
        for wrong in [
            Tensor::zeros([5, 2], (Kind::Float, tch::Device::Cpu)),
            Tensor::zeros([3, 3], (Kind::Float, tch::Device::Cpu)),
            Tensor::zeros([6], (Kind::Float, tch::Device::Cpu)),
            logits().to_kind(Kind::Double),
        ] {
            let digest = Tensor::from_slice(&digest_of(&wrong.to_kind(Kind::Float)));
            assert!(matches!(
                read_after(&cache, &[("logits", wrong), ("sha256", digest)]),
                Err(CacheMismatch::Shape { .. })
            ));
        }
        // The logits alone, as kd-tui wrote them before checksums.
        assert!(matches!(
            read_after(&cache, &[("logits", logits())]),
            Err(CacheMismatch::Tensors(_))
        ));
        let nan = Tensor::from_slice(&[f32::NAN, 0.0, 0.0, 0.0, 0.0, 0.0]).view([3, 2]);
        let nan_digest = Tensor::from_slice(&digest_of(&nan));
        assert!(matches!(
            read_after(&cache, &[("logits", nan), ("sha256", nan_digest)]),
            Err(CacheMismatch::NotFinite)
        ));
        let big = Tensor::zeros([3000, 2], (Kind::Float, tch::Device::Cpu));
        assert!(matches!(
            read_after(&cache, &[("logits", big), ("sha256", digest())]),
            Err(CacheMismatch::TooLarge { .. })
        ));
        std::fs::write(cache.path(), b"not safetensors").unwrap();
        assert!(matches!(cache.read(), Err(CacheMismatch::Format(_))));
        std::fs::remove_file(cache.path()).unwrap();
        std::fs::create_dir(cache.path()).unwrap();
        assert!(matches!(cache.read(), Err(CacheMismatch::NotAFile)));
    }
}
