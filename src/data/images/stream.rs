//! An image folder too large for memory (or `data.cache = "none"`): every batch's images are
//! decoded from their files as the batch is drawn, by a pool of decoding threads, and the
//! batch after it is decoded ahead while the model trains on this one.

use super::decode::decode_into;
use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};
use tch::{Device, Tensor};

/// The folder's image files and how to decode them: shared by the three splits.
pub struct ImageFiles {
    paths: Vec<PathBuf>,
    channels: usize,
    size: [usize; 2],
    pool: rayon::ThreadPool,
}

impl std::fmt::Debug for ImageFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ImageFiles({} files, {}x{}x{})",
            self.paths.len(),
            self.channels,
            self.size[0],
            self.size[1]
        )
    }
}

/// The same files, decoded the same way.
impl PartialEq for ImageFiles {
    fn eq(&self, other: &ImageFiles) -> bool {
        (&self.paths, self.channels, self.size) == (&other.paths, other.channels, other.size)
    }
}

impl ImageFiles {
    pub(super) fn new(paths: Vec<PathBuf>, channels: usize, size: [usize; 2]) -> ImageFiles {
        // Threads of their own: the trainer's intra-op threads are busy with the model.
        let pool = rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("kd-tui decode {i}"))
            .build()
            .expect("decoding threads start");
        ImageFiles {
            paths,
            channels,
            size,
            pool,
        }
    }

    fn chw(&self) -> usize {
        self.channels * self.size[0] * self.size[1]
    }

    /// Files `files` decoded, `[n, C*H*W]` bytes. An image that no longer decodes (it did at
    /// set-up: its header was read) fails the run, naming it.
    fn decode(&self, files: &[usize]) -> Tensor {
        use rayon::prelude::*;
        let chw = self.chw();
        let mut bytes = vec![0u8; files.len() * chw];
        self.pool.install(|| {
            bytes
                .par_chunks_mut(chw)
                .zip(files.par_iter())
                .for_each(|(out, &f)| {
                    let path = &self.paths[f];
                    if let Err(why) = decode_into(path, self.channels, self.size, out) {
                        // Carried to the trainer, which fails the run with it.
                        std::panic::panic_any(UnreadableImage {
                            path: path.clone(),
                            why,
                        });
                    }
                })
        });
        Tensor::from_slice(&bytes).view([files.len() as i64, chw as i64])
    }
}

/// An image that decoded at set-up (its header) and not while training: the run fails with
/// it, as a panic's payload, from wherever the batch was drawn.
#[derive(Debug, Clone)]
pub struct UnreadableImage {
    pub path: PathBuf,
    pub why: String,
}

impl std::fmt::Display for UnreadableImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: cannot decode this image ({}); data.skip_bad skips only images whose headers \
             cannot be read",
            self.path.display(),
            self.why
        )
    }
}

/// A batch being decoded ahead: which files, and where the bytes will come.
struct Ahead {
    files: Vec<usize>,
    bytes: Receiver<std::thread::Result<Tensor>>,
}

/// One split's rows of an `ImageFiles`.
pub struct StreamedRows {
    files: Arc<ImageFiles>,
    /// The file of each row.
    rows: Vec<usize>,
    device: Device,
    ahead: Mutex<Option<Ahead>>,
}

impl std::fmt::Debug for StreamedRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "StreamedRows({} rows of {:?})",
            self.rows.len(),
            self.files
        )
    }
}

impl StreamedRows {
    pub fn new(files: Arc<ImageFiles>, rows: Vec<usize>) -> StreamedRows {
        StreamedRows {
            files,
            rows,
            device: Device::Cpu,
            ahead: Mutex::new(None),
        }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Bytes per row.
    pub fn width(&self) -> usize {
        self.files.chw()
    }

    pub fn to_device(&self, device: Device) -> StreamedRows {
        StreamedRows {
            device,
            ..StreamedRows::new(self.files.clone(), self.rows.clone())
        }
    }

    fn files_of(&self, rows: impl Iterator<Item = i64>) -> Vec<usize> {
        rows.map(|r| self.rows[r as usize]).collect()
    }

    /// The bytes of `rows` (indices into this split), `[n, C*H*W]` on the split's device: the
    /// batch decoded ahead if it is this one, else decoded now.
    pub fn bytes(&self, rows: impl Iterator<Item = i64>) -> Tensor {
        let files = self.files_of(rows);
        let ahead = self.ahead.lock().expect("not poisoned").take();
        let bytes = match ahead {
            Some(a) if a.files == files => match a.bytes.recv() {
                Ok(Ok(bytes)) => bytes,
                Ok(Err(panic)) => std::panic::resume_unwind(panic),
                Err(_) => self.files.decode(&files),
            },
            _ => self.files.decode(&files),
        };
        bytes.to_device(self.device)
    }

    /// Starts decoding `rows` in the background, for the next call of `bytes`.
    pub fn decode_ahead(&self, rows: impl Iterator<Item = i64>) {
        let files = self.files_of(rows);
        let (send, bytes) = channel();
        let (all, wanted) = (self.files.clone(), files.clone());
        self.files.pool.spawn(move || {
            let decoded =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| all.decode(&wanted)));
            let _ = send.send(decoded);
        });
        *self.ahead.lock().expect("not poisoned") = Some(Ahead { files, bytes });
    }
}
