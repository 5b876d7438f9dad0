//! A split's feature rows as stored. Floats (csv) are stored normalised. 8-bit pixels stay bytes
//! and are made floats and normalised a batch at a time, so that a dataset takes a quarter of
//! the memory (and of the host-to-device copy) that floats would.

use super::byte_rows::ByteRows;
use super::images::StreamedRows;
use super::normalize::Affine;
use tch::{Device, Kind, Tensor};

/// The most floats one chunk of a pass over a split makes (64 MiB).
const CHUNK_BYTES: i64 = 64 << 20;

/// Rows `[n, prod(shape)]`, read as normalised f32 batches.
#[derive(Debug)]
pub struct FeatureRows {
    stored: Stored,
    /// For bytes: per-feature `(shift, scale)`, `[d]` each; a byte `v` becomes
    /// `(v - shift) * scale` in f32, as the host would compute it.
    affine: Option<(Tensor, Tensor)>,
}

#[derive(Debug)]
enum Stored {
    /// `[n, d]`, f32 (already normalised) or u8.
    Tensor(Tensor),
    /// Bytes decoded from an image folder's files as they are read.
    Streamed(StreamedRows),
    /// Bytes of an image-cache file left on disk, copied batch by batch to the device.
    Paged(ByteRows, Device),
}

impl FeatureRows {
    /// Normalised floats, `[n, d]`.
    pub(super) fn floats(values: Tensor) -> FeatureRows {
        FeatureRows {
            stored: Stored::Tensor(values),
            affine: None,
        }
    }

    /// Bytes `[n, d]`, normalised on reading by `affine` (per-feature shift and scale), if any.
    pub(super) fn bytes(values: Tensor, affine: Option<&Affine>) -> FeatureRows {
        FeatureRows {
            stored: Stored::Tensor(values),
            affine: affine_tensors(affine),
        }
    }

    /// Bytes decoded from files as rows are read, normalised by `affine`, if any.
    pub(super) fn streamed(rows: StreamedRows, affine: Option<&Affine>) -> FeatureRows {
        FeatureRows {
            stored: Stored::Streamed(rows),
            affine: affine_tensors(affine),
        }
    }

    /// Bytes of a mapped file, read as rows are, normalised by `affine`, if any.
    pub(super) fn paged(rows: ByteRows, affine: Option<&Affine>) -> FeatureRows {
        FeatureRows {
            stored: Stored::Paged(rows, Device::Cpu),
            affine: affine_tensors(affine),
        }
    }

    pub fn len(&self) -> i64 {
        match &self.stored {
            Stored::Tensor(t) => t.size()[0],
            Stored::Streamed(s) => s.len() as i64,
            Stored::Paged(p, _) => p.len() as i64,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Features per row.
    pub fn width(&self) -> i64 {
        match &self.stored {
            Stored::Tensor(t) => t.size().get(1).copied().unwrap_or(1),
            Stored::Streamed(s) => s.width() as i64,
            Stored::Paged(p, _) => p.dim() as i64,
        }
    }

    /// Rows per chunk of a pass over every row (scoring, the teacher's outputs): at most
    /// `most`, and no more than `CHUNK_BYTES` of floats, so that a folder of large images is
    /// not made floats a thousand at a time.
    pub fn chunk_rows(&self, most: i64) -> i64 {
        (CHUNK_BYTES / (4 * self.width().max(1))).clamp(1, most.max(1))
    }

    /// The rows `idx` (a tensor of indices on the features' device), as floats.
    pub fn rows(&self, idx: &Tensor) -> Tensor {
        match &self.stored {
            Stored::Tensor(t) => self.as_floats(t.index_select(0, idx)),
            Stored::Streamed(s) => self.as_floats(s.bytes(indices(idx).into_iter())),
            Stored::Paged(p, device) => {
                let rows: Vec<usize> = indices(idx).into_iter().map(|i| i as usize).collect();
                self.paged_rows(p, *device, &rows)
            }
        }
    }

    /// `len` rows from `start`, as floats. Streamed rows decode the `len` rows after them
    /// ahead, as chunked passes over a split read on.
    pub fn narrow(&self, start: i64, len: i64) -> Tensor {
        match &self.stored {
            Stored::Tensor(t) => self.as_floats(t.narrow(0, start, len)),
            Stored::Streamed(s) => {
                let bytes = s.bytes(start..start + len);
                let next = start + len..(start + 2 * len).min(self.len());
                if !next.is_empty() {
                    s.decode_ahead(next);
                }
                self.as_floats(bytes)
            }
            Stored::Paged(p, device) => {
                let (start, end) = (start as usize, (start + len) as usize);
                p.will_need(end..(end + end - start).min(p.len()));
                let rows: Vec<usize> = (start..end).collect();
                self.paged_rows(p, *device, &rows)
            }
        }
    }

    /// Says which rows `rows(idx)` will be asked for next (`idx()`, computed only where it
    /// matters): streamed rows start decoding them, paged rows start reading them.
    pub fn will_read(&self, idx: impl FnOnce() -> Tensor) {
        match &self.stored {
            Stored::Tensor(_) => {}
            Stored::Streamed(s) => s.decode_ahead(indices(&idx()).into_iter()),
            Stored::Paged(p, _) => p.will_need(indices(&idx()).into_iter().map(|i| i as usize)),
        }
    }

    /// Every row, as floats.
    pub fn all(&self) -> Tensor {
        self.narrow(0, self.len())
    }

    pub fn to_device(&self, device: Device) -> FeatureRows {
        FeatureRows {
            stored: match &self.stored {
                Stored::Tensor(t) => Stored::Tensor(t.to_device(device)),
                Stored::Streamed(s) => Stored::Streamed(s.to_device(device)),
                Stored::Paged(p, _) => Stored::Paged(p.clone(), device),
            },
            affine: self
                .affine
                .as_ref()
                .map(|(shift, scale)| (shift.to_device(device), scale.to_device(device))),
        }
    }

    /// Rows `rows` of a paged file, copied to `device` as floats.
    fn paged_rows(&self, p: &ByteRows, device: Device, rows: &[usize]) -> Tensor {
        self.as_floats(p.gather(rows).to_device(device))
    }

    fn as_floats(&self, rows: Tensor) -> Tensor {
        if rows.kind() == Kind::Float {
            return rows;
        }
        let rows = rows.to_kind(Kind::Float);
        match &self.affine {
            // Two rounded f32 operations, as the host's `(v - shift) * scale`.
            Some((shift, scale)) => (rows - shift) * scale,
            None => rows,
        }
    }
}

fn affine_tensors(affine: Option<&Affine>) -> Option<(Tensor, Tensor)> {
    affine.map(|a| (Tensor::from_slice(&a.shift), Tensor::from_slice(&a.scale)))
}

/// Row indices from a tensor of them (on any device).
fn indices(idx: &Tensor) -> Vec<i64> {
    Vec::try_from(idx.to_device(Device::Cpu)).expect("row indices are i64")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_takes_as_many_rows_at_once_as_64_mib_of_floats_hold() {
        let rows = |width: i64| {
            FeatureRows::bytes(Tensor::zeros([2, width], (Kind::Uint8, Device::Cpu)), None)
        };
        assert_eq!(rows(784).chunk_rows(1024), 1024, "MNIST: the most");
        assert_eq!(rows(512 * 512).chunk_rows(1024), 64);
        assert_eq!(rows(3 * 224 * 224).chunk_rows(1024), 111);
        assert_eq!(rows(1 << 25).chunk_rows(1024), 1, "at least one");
    }

    #[test]
    fn bytes_are_normalised_per_batch_exactly_as_floats_on_the_host() {
        let bytes: Vec<u8> = (0..=255).chain(0..=255).step_by(7).take(60).collect();
        let (shift, scale) = ([33.3_f32, 0.0, 255.0], [1.0 / 71.7_f32, 1.0 / 255.0, 0.5]);
        let host: Vec<f32> = bytes
            .iter()
            .enumerate()
            .map(|(i, &v)| (f32::from(v) - shift[i % 3]) * scale[i % 3])
            .collect();
        let affine = Affine {
            shift: shift.to_vec(),
            scale: scale.to_vec(),
        };
        let rows = FeatureRows::bytes(Tensor::from_slice(&bytes).view([20, 3]), Some(&affine));
        assert_eq!(rows.len(), 20);
        let all = Vec::<f32>::try_from(rows.all().view([-1])).unwrap();
        assert_eq!(all, host, "bit for bit");
        let picked = rows.rows(&Tensor::from_slice(&[19_i64, 0, 5]));
        assert_eq!(picked.kind(), Kind::Float);
        let picked = Vec::<f32>::try_from(picked.view([-1])).unwrap();
        assert_eq!(picked, [&host[57..60], &host[0..3], &host[15..18]].concat());
        let plain = FeatureRows::bytes(Tensor::from_slice(&bytes).view([20, 3]), None);
        assert_eq!(
            plain.narrow(1, 1).double_value(&[0, 2]),
            f64::from(bytes[5])
        );
    }
}
