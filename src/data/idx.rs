//! MNIST-format IDX files: `train-images-idx3-ubyte[.gz]` and friends in one folder.

use super::{err, find_file, read_maybe_gz, DataError, InputShape, Raw, Values};
use std::path::Path;

/// Reads one IDX file: checks the magic number and that the data length matches the header.
fn read_idx(path: &Path, expected_dims: usize) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let name = path.display();
    let mut bytes = read_maybe_gz(path)?;
    if bytes.len() < 4
        || bytes[0] != 0
        || bytes[1] != 0
        || bytes[2] != 0x08
        || bytes[3] as usize != expected_dims
    {
        return Err(err(name, format!("not an IDX file of unsigned bytes with {expected_dims} dimension(s) (bad magic number)")));
    }
    let header = 4 + 4 * expected_dims;
    if bytes.len() < header {
        return Err(err(
            name,
            format!(
                "truncated: expected a {header}-byte header, found {} bytes",
                bytes.len()
            ),
        ));
    }
    let dims: Vec<usize> = bytes[4..header]
        .chunks(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let found = bytes.len() - header;
    // A header can claim anything: its product is checked, never trusted to allocate.
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|_| dims.iter().all(|&d| d > 0));
    if expected != Some(found) {
        let shape = dims
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(" x ");
        return Err(err(
            name,
            format!(
                "truncated, padded or empty: header says {shape} = {} data bytes, found {found}",
                expected.map_or("an impossible number of".into(), |e| e.to_string())
            ),
        ));
    }
    bytes.drain(..header);
    Ok((dims, bytes))
}

pub fn read_idx_pair(dir: &Path, prefix: &str) -> Result<Raw, DataError> {
    let images_path = find_file(dir, &format!("{prefix}-images-idx3-ubyte"))?;
    let labels_path = find_file(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
    let (dims, pixels) = read_idx(&images_path, 3)?;
    let (ldims, labels) = read_idx(&labels_path, 1)?;
    if dims[0] != ldims[0] {
        return Err(err(
            labels_path.display(),
            format!(
                "has {} labels for {} images in {}",
                ldims[0],
                dims[0],
                images_path.display()
            ),
        ));
    }
    Ok(Raw {
        features: Values::Bytes(pixels),
        labels: labels.into_iter().map(i64::from).collect(),
        shape: InputShape::image(1, dims[1], dims[2]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_idx_names_file_and_expected_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t10k-images-idx3-ubyte");
        let mut bytes = vec![0, 0, 8, 3];
        for d in [2u32, 28, 28] {
            bytes.extend_from_slice(&d.to_be_bytes());
        }
        bytes.extend(std::iter::repeat_n(0u8, 28 * 28 + 5));
        std::fs::write(&path, &bytes).unwrap();
        let e = read_idx(&path, 3).unwrap_err();
        assert!(e.file.ends_with("t10k-images-idx3-ubyte"));
        assert!(
            e.message
                .contains("2 x 28 x 28 = 1568 data bytes, found 789"),
            "{e}"
        );
    }
}
