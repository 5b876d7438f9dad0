//! The embedded MNIST subset (`assets/mnist-subset/`, made by `scripts/make_mnist_subset.py`):
//! 5,000 training and 5,000 validation images drawn per class from MNIST's training set, and
//! MNIST's 10,000 test images, as gzipped IDX files compiled into the binary.

use super::idx::{idx_pair_from_gz, IDX_CLASSES};
use super::{DataError, Raw, Source};

/// The gzipped images and labels of one split, by name.
const FILES: [(&str, &[u8], &[u8]); 3] = [
    (
        "train",
        include_bytes!("../../assets/mnist-subset/train-images.gz"),
        include_bytes!("../../assets/mnist-subset/train-labels.gz"),
    ),
    (
        "val",
        include_bytes!("../../assets/mnist-subset/val-images.gz"),
        include_bytes!("../../assets/mnist-subset/val-labels.gz"),
    ),
    (
        "test",
        include_bytes!("../../assets/mnist-subset/test-images.gz"),
        include_bytes!("../../assets/mnist-subset/test-labels.gz"),
    ),
];

/// The subset's three splits, each its own: `val_fraction` and `test_fraction` do not apply.
pub(super) fn read() -> Result<Source, DataError> {
    let mut splits: Vec<Raw> = Vec::with_capacity(3);
    for (split, images, labels) in FILES {
        let names = ["images", "labels"]
            .map(|kind| format!("<embedded assets/mnist-subset/{split}-{kind}.gz>"));
        let like = splits.first().map(|train| &train.shape);
        splits.push(idx_pair_from_gz(images, labels, &names, like)?);
    }
    let [train, val, test]: [Raw; 3] = splits.try_into().expect("three splits");
    let description = format!(
        "mnist subset (embedded, {} train, {} validation, {} test)",
        train.len(),
        val.len(),
        test.len()
    );
    let classes = (0..IDX_CLASSES).map(|c| c.to_string()).collect();
    let mut source = Source::own(train, Some(test), Some(255.0), description, classes);
    source.val = Some(val);
    Ok(source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_subset_has_its_stated_counts_and_balanced_classes() {
        let source = read().unwrap();
        let val = source.val.as_ref().unwrap();
        let test = source.test.as_ref().unwrap();
        assert_eq!(
            source.description,
            "mnist subset (embedded, 5000 train, 5000 validation, 10000 test)"
        );
        assert_eq!(source.all.shape.dims(), [1, 28, 28]);
        assert_eq!(source.classes.len(), 10);
        let count = |raw: &Raw| {
            let mut per_class = [0usize; 10];
            raw.labels.iter().for_each(|&l| per_class[l as usize] += 1);
            per_class
        };
        assert_eq!(count(&source.all), [500; 10]);
        assert_eq!(count(val), [500; 10]);
        // MNIST's own test set: every digit, 892 (fives) to 1135 (ones) of each.
        let test_counts = count(test);
        assert_eq!(test_counts.iter().sum::<usize>(), 10_000);
        assert!(
            test_counts.iter().all(|&n| (850..1200).contains(&n)),
            "{test_counts:?}"
        );
        // Train and validation share no image.
        let images = |raw: &Raw| match &raw.features {
            super::super::Values::Bytes(b) => (0..b.len()).map(|i| b.row(i).to_vec()).collect(),
            _ => std::collections::BTreeSet::new(),
        };
        let (train_images, val_images) = (images(&source.all), images(val));
        assert!(train_images.len() > 4_990, "{}", train_images.len());
        assert!(train_images.is_disjoint(&val_images));
    }

    #[test]
    fn the_default_preset_runs_on_the_subset_with_its_own_splits() {
        use crate::config::{load, DataSource, DEFAULT_PRESET, DEFAULT_PRESET_NAME};
        let preset = load(DEFAULT_PRESET, DEFAULT_PRESET_NAME, &[]).unwrap();
        assert_eq!(preset.data.source, DataSource::MnistSubset);
        assert_eq!(preset.data.path, None);
        let splits = crate::data::load(&preset.data, preset.seed).unwrap();
        let sizes = [&splits.train, &splits.val, &splits.test].map(|s| s.len());
        assert_eq!(sizes, [5_000, 5_000, 10_000]);
        assert_eq!(splits.num_classes, 10);
        assert_eq!(splits.input.dims(), [1, 28, 28]);
        // Scaled to [0, 1] by MNIST's 255.
        let max = splits.train.features.all().max().double_value(&[]);
        assert!((0.99..=1.0).contains(&max), "{max}");
        // A path is refused: the subset is compiled in.
        let with_path = load(DEFAULT_PRESET, "d", &["data.path=\"x\"".parse().unwrap()]);
        assert!(with_path.unwrap_err().to_string().contains("take no path"));
    }
}
