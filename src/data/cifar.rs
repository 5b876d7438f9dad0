//! CIFAR-10's binary batches.

use super::read::{find_file, read_maybe_gz};
use super::{err, DataError, Raw, Values};
use crate::protocol::InputShape;
use std::path::Path;

/// CIFAR-10's binary version: records of one label byte and 3072 pixel bytes (the red, green
/// and blue 32x32 planes), in `data_batch_1..5.bin` and `test_batch.bin`.
pub const CIFAR_RECORD: usize = 1 + 3 * 32 * 32;

pub const CIFAR_TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];

pub fn read_cifar_batches(dir: &Path, files: &[&str]) -> Result<Raw, DataError> {
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
    for file in files {
        let path = find_file(dir, file, "a CIFAR-10 binary batch")?;
        let bytes = read_maybe_gz(&path)?;
        if bytes.is_empty() || bytes.len() % CIFAR_RECORD != 0 {
            return Err(err(
                path.display(),
                format!(
                    "truncated: {} bytes is not a whole number of {CIFAR_RECORD}-byte records (label + 3x32x32 pixels)",
                    bytes.len()
                ),
            ));
        }
        for (i, record) in bytes.chunks(CIFAR_RECORD).enumerate() {
            if record[0] > 9 {
                return Err(err(
                    path.display(),
                    format!(
                        "record {}: label {} is not a CIFAR-10 class (0-9)",
                        i + 1,
                        record[0]
                    ),
                ));
            }
            labels.push(i64::from(record[0]));
            pixels.extend_from_slice(&record[1..]);
        }
    }
    let shape = InputShape::image(3, 32, 32);
    Ok(Raw {
        features: Values::owned_bytes(pixels, shape.numel()),
        labels,
        shape,
    })
}
