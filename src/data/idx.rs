//! MNIST-format IDX files: `train-images-idx3-ubyte[.gz]` and friends in one folder.

use super::read::{find_file, open, read_error, MAX_DATA_BYTES};
use super::{err, DataError, Raw, Values};
use crate::protocol::InputShape;
use flate2::read::GzDecoder;
use std::io::Read;
use std::path::Path;

/// MNIST and its look-alikes (Fashion-MNIST, KMNIST) have ten classes, labelled 0-9.
pub const IDX_CLASSES: u8 = 10;

const WHAT: &str = "an MNIST-format IDX file";

/// Reads one IDX file: checks the magic number and that the data length matches the header.
fn read_idx(path: &Path, expected_dims: usize) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    read_idx_from(open(path)?, &path.display().to_string(), expected_dims)
}

/// The header first, then at most the bytes it declares and one more: a file longer than its
/// header says (a gzip file inflating without end, a device) is refused without reading it.
fn read_idx_from(
    mut reader: impl Read,
    name: &str,
    expected_dims: usize,
) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let header = 4 + 4 * expected_dims;
    let mut head = Vec::with_capacity(header);
    (&mut reader)
        .take(header as u64)
        .read_to_end(&mut head)
        .map_err(|e| read_error(name, e))?;
    if head.len() < 4 || head[..3] != [0, 0, 0x08] || head[3] as usize != expected_dims {
        return Err(err(name, format!("not an IDX file of unsigned bytes with {expected_dims} dimension(s) (bad magic number)")));
    }
    if head.len() < header {
        return Err(err(
            name,
            format!(
                "truncated: expected a {header}-byte header, found {} bytes",
                head.len()
            ),
        ));
    }
    let dims: Vec<usize> = head[4..]
        .chunks(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let shape = dims
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(" x ");
    // A header can claim anything: its product is checked, never trusted to allocate.
    let declared = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|_| dims.iter().all(|&d| d > 0));
    let Some(declared) = declared else {
        return Err(err(
            name,
            format!("truncated, padded or empty: header says {shape} = an impossible number of data bytes"),
        ));
    };
    if declared as u64 > MAX_DATA_BYTES {
        return Err(err(
            name,
            format!(
                "header says {shape} = {declared} data bytes, more than the {} GiB kd-tui reads from a data file",
                MAX_DATA_BYTES >> 30
            ),
        ));
    }
    let mut data = Vec::with_capacity(declared.min(64 << 20));
    reader
        .take(declared as u64 + 1)
        .read_to_end(&mut data)
        .map_err(|e| read_error(name, e))?;
    if data.len() != declared {
        let found = match data.len() > declared {
            true => format!("more than {declared}"),
            false => data.len().to_string(),
        };
        return Err(err(
            name,
            format!("truncated, padded or empty: header says {shape} = {declared} data bytes, found {found}"),
        ));
    }
    Ok((dims, data))
}

/// The images and labels of `<prefix>-images-idx3-ubyte` and `<prefix>-labels-idx1-ubyte`;
/// `like`: the shape the images must have (the training images').
pub fn read_idx_pair(
    dir: &Path,
    prefix: &str,
    like: Option<&InputShape>,
) -> Result<Raw, DataError> {
    let images_path = find_file(dir, &format!("{prefix}-images-idx3-ubyte"), WHAT)?;
    let labels_path = find_file(dir, &format!("{prefix}-labels-idx1-ubyte"), WHAT)?;
    let images = read_idx(&images_path, 3)?;
    let labels = read_idx(&labels_path, 1)?;
    let names = [images_path, labels_path].map(|p| p.display().to_string());
    pair(images, labels, &names, like)
}

/// The same from gzipped IDX bytes in memory (the embedded MNIST subset), `names` naming the
/// images' and the labels' file in messages.
pub fn idx_pair_from_gz(
    images: &[u8],
    labels: &[u8],
    names: &[String; 2],
    like: Option<&InputShape>,
) -> Result<Raw, DataError> {
    let images = read_idx_from(GzDecoder::new(images), &names[0], 3)?;
    let labels = read_idx_from(GzDecoder::new(labels), &names[1], 1)?;
    pair(images, labels, names, like)
}

/// Images and labels as read, checked against each other and `like`.
fn pair(
    (dims, pixels): (Vec<usize>, Vec<u8>),
    (ldims, labels): (Vec<usize>, Vec<u8>),
    [images_name, labels_name]: &[String; 2],
    like: Option<&InputShape>,
) -> Result<Raw, DataError> {
    let shape = InputShape::image(1, dims[1], dims[2]);
    if let Some(like) = like.filter(|&l| *l != shape) {
        return Err(err(
            images_name,
            format!(
                "images of {} x {} pixels, but the training images are {} x {}",
                dims[1],
                dims[2],
                like.dims()[1],
                like.dims()[2]
            ),
        ));
    }
    if dims[0] != ldims[0] {
        return Err(err(
            labels_name,
            format!(
                "has {} labels for {} images in {images_name}",
                ldims[0], dims[0],
            ),
        ));
    }
    if let Some(i) = labels.iter().position(|&l| l >= IDX_CLASSES) {
        return Err(err(
            labels_name,
            format!(
                "label {} at index {i} is not a class of MNIST-format data (0-{})",
                labels[i],
                IDX_CLASSES - 1
            ),
        ));
    }
    Ok(Raw {
        features: Values::owned_bytes(pixels, shape.numel()),
        labels: labels.into_iter().map(i64::from).collect(),
        shape,
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

    /// An IDX header of unsigned bytes with these dimensions.
    fn header(dims: &[u32]) -> Vec<u8> {
        let mut bytes = vec![0, 0, 8, dims.len() as u8];
        for d in dims {
            bytes.extend_from_slice(&d.to_be_bytes());
        }
        bytes
    }

    #[test]
    fn data_past_the_header_s_size_is_not_read() {
        // A stream without end (a gzip bomb, a device) after a header of 2 x 2 x 2 bytes.
        let head = header(&[2, 2, 2]);
        let endless = std::io::Read::chain(&head[..], std::io::repeat(0));
        let e = read_idx_from(endless, "bomb", 3).unwrap_err();
        assert!(
            e.message
                .contains("header says 2 x 2 x 2 = 8 data bytes, found more than 8"),
            "{e}"
        );
        // More than a data file may hold is refused from the header alone.
        let e = read_idx_from(&header(&[65536, 256, 257])[..], "big", 3).unwrap_err();
        assert!(e.message.contains("more than the 4 GiB"), "{e}");
        let mut exact = header(&[2, 2, 2]);
        exact.extend_from_slice(&[9; 8]);
        let (dims, data) = read_idx_from(&exact[..], "ok", 3).unwrap();
        assert_eq!((dims, data), (vec![2, 2, 2], vec![9; 8]));
    }

    #[test]
    fn gzip_idx_is_inflated_only_as_far_as_its_header_says() {
        use flate2::{write::GzEncoder, Compression};
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("train-labels-idx1-ubyte.gz");
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        gz.write_all(&header(&[4])).unwrap();
        for _ in 0..64 {
            gz.write_all(&[0; 1 << 20]).unwrap();
        }
        std::fs::write(&path, gz.finish().unwrap()).unwrap();
        let e = read_idx(&path, 1).unwrap_err();
        assert!(e.file.ends_with("train-labels-idx1-ubyte.gz"));
        assert!(
            e.message.contains("= 4 data bytes, found more than 4"),
            "{e}"
        );
    }
}
