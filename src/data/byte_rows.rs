//! 8-bit examples held once, in memory or mapped from an image-cache file, and the rows of them
//! a split holds: drawing the validation and test splits selects rows without copying them, and
//! each split's tensor is gathered in one copy from where the bytes lie. Rows of a file mapped
//! to be paged (`ByteStore::Paged`) are never gathered whole: each batch's rows are copied from
//! the file as it is drawn, and the operating system keeps in memory what fits.

use std::ops::{Deref, Range};
use std::sync::Arc;
use tch::{Device, Kind, Tensor};

/// Bytes a source read: its own, or a range of a mapped file that three splits share.
pub(super) enum ByteStore {
    Owned(Vec<u8>),
    /// Read into memory (pre-faulted), gathered into each split's tensor.
    Mapped(Arc<memmap2::Mmap>, Range<usize>),
    /// Left on disk: rows are read from the file batch by batch.
    Paged(Arc<memmap2::Mmap>, Range<usize>),
}

impl Deref for ByteStore {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            ByteStore::Owned(v) => v,
            ByteStore::Mapped(map, range) | ByteStore::Paged(map, range) => &map[range.clone()],
        }
    }
}

impl std::fmt::Debug for ByteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} bytes", self.len())
    }
}

impl PartialEq for ByteStore {
    fn eq(&self, other: &ByteStore) -> bool {
        self[..] == other[..]
    }
}

/// Rows of `dim` bytes: `rows[i]` is the store's row that is this set's row `i`.
#[derive(Clone)]
pub(super) struct ByteRows {
    store: Arc<ByteStore>,
    rows: Vec<usize>,
    dim: usize,
}

impl ByteRows {
    /// Every row of `store`, in order.
    pub fn all(store: ByteStore, dim: usize) -> ByteRows {
        let rows = (0..store.len() / dim.max(1)).collect();
        ByteRows {
            store: Arc::new(store),
            rows,
            dim,
        }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Bytes per row.
    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn row(&self, i: usize) -> &[u8] {
        let start = self.rows[i] * self.dim;
        &self.store[start..start + self.dim]
    }

    /// Rows `idx` of these, sharing the bytes.
    pub fn select(&self, idx: &[usize]) -> ByteRows {
        ByteRows {
            store: self.store.clone(),
            rows: idx.iter().map(|&i| self.rows[i]).collect(),
            dim: self.dim,
        }
    }

    /// Whether the rows stay on disk and are read batch by batch.
    pub fn is_paged(&self) -> bool {
        matches!(*self.store, ByteStore::Paged(..))
    }

    /// Asks the operating system to start reading rows `rows` of a paged file (the next batch,
    /// while the model trains on this one); nothing for bytes in memory.
    pub fn will_need(&self, rows: impl Iterator<Item = usize>) {
        if let ByteStore::Paged(map, range) = &*self.store {
            for i in rows {
                let start = range.start + self.rows[i] * self.dim;
                // Advice only: a refusal costs a page fault later, nothing else.
                let _ = map.advise_range(memmap2::Advice::WillNeed, start, self.dim);
            }
        }
    }

    /// Every byte, row by row.
    pub fn values(&self) -> impl Iterator<Item = u8> + '_ {
        (0..self.len()).flat_map(|i| self.row(i).iter().copied())
    }

    /// The rows as a `[len, dim]` u8 tensor, copied once from where they lie.
    pub fn to_tensor(&self) -> Tensor {
        self.gather(&(0..self.len()).collect::<Vec<_>>())
    }

    /// Rows `rows` (of these) as a `[rows.len(), dim]` u8 tensor, copied once.
    pub fn gather(&self, rows: &[usize]) -> Tensor {
        let out = Tensor::empty(
            [rows.len() as i64, self.dim as i64],
            (Kind::Uint8, Device::Cpu),
        );
        if out.numel() == 0 {
            return out;
        }
        // SAFETY: `out` is a new contiguous CPU tensor of `len * dim` bytes that nothing else
        // refers to yet; the slice ends before `out` is returned.
        let dst =
            unsafe { std::slice::from_raw_parts_mut(out.data_ptr().cast::<u8>(), out.numel()) };
        dst.chunks_mut(self.dim)
            .zip(rows)
            .for_each(|(d, &i)| d.copy_from_slice(self.row(i)));
        out
    }
}

impl std::fmt::Debug for ByteRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} rows of {} bytes", self.len(), self.dim)
    }
}

impl PartialEq for ByteRows {
    fn eq(&self, other: &ByteRows) -> bool {
        self.dim == other.dim
            && self.len() == other.len()
            && (0..self.len()).all(|i| self.row(i) == other.row(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selected_rows_gather_into_a_tensor_from_owned_and_mapped_bytes() {
        let bytes: Vec<u8> = (0..12).collect();
        let owned = ByteRows::all(ByteStore::Owned(bytes.clone()), 3);
        let mut file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut file, &[[9u8; 5].as_slice(), &bytes].concat()).unwrap();
        // SAFETY: a private temporary file nothing else writes.
        let map = Arc::new(unsafe { memmap2::Mmap::map(&file) }.unwrap());
        let mapped = ByteRows::all(ByteStore::Mapped(map, 5..17), 3);
        assert_eq!(owned, mapped);
        for rows in [&owned, &mapped] {
            let picked = rows.select(&[3, 1]).select(&[1, 0]);
            assert_eq!(picked.values().collect::<Vec<_>>(), [3, 4, 5, 9, 10, 11]);
            let t = picked.to_tensor();
            assert_eq!(t.size(), [2, 3]);
            assert_eq!(
                Vec::<u8>::try_from(t.view(-1)).unwrap(),
                [3, 4, 5, 9, 10, 11]
            );
            assert_eq!(rows.select(&[]).to_tensor().size(), [0, 3]);
        }
    }
}
