use super::*;
use crate::config::{DataCache, DataConfig, Header, Normalize};
use tch::Kind;

/// The embedded digits' data table; other sources' tests start from it.
pub(super) fn digits_cfg() -> DataConfig {
    DataConfig {
        source: DataSource::Digits,
        path: None,
        val_fraction: 0.1,
        test_fraction: 0.2,
        normalize: Normalize::Scale,
        train_limit: None,
        label: None,
        header: Header::Auto,
        classes: None,
        channels: None,
        size: None,
        skip_bad: false,
        cache: DataCache::Auto,
    }
}

#[test]
fn digits_split_is_complete_stratified_scaled_and_deterministic() {
    let a = load(&digits_cfg(), 7).unwrap();
    assert_eq!((a.input.dims(), a.num_classes), (&[1, 8, 8][..], 10));
    assert_eq!(
        a.classes,
        (0..10).map(|c| c.to_string()).collect::<Vec<_>>()
    );
    assert_eq!(a.train.len() + a.val.len() + a.test.len(), 1797);
    // Every class appears in proportion in the test split (~36 each of ~180).
    let counts = a.test.labels.bincount::<Tensor>(None, 10);
    let counts: Vec<i64> = Vec::try_from(counts).unwrap();
    assert!(counts.iter().all(|&c| (34..=38).contains(&c)), "{counts:?}");
    let max = a.train.features.all().max().double_value(&[]);
    let min = a.train.features.all().min().double_value(&[]);
    assert!(
        (0.0..=1.0).contains(&min) && (max - 1.0).abs() < 1e-6,
        "{min} {max}"
    );
    let b = load(&digits_cfg(), 7).unwrap();
    assert!(
        a.test.labels.equal(&b.test.labels)
            && a.train.features.all().equal(&b.train.features.all())
    );
    let c = load(&digits_cfg(), 8).unwrap();
    assert!(
        !a.train.labels.equal(&c.train.labels),
        "another seed gives another split"
    );
}

#[test]
fn standardize_uses_train_statistics() {
    let s = load(
        &DataConfig {
            normalize: Normalize::Standardize,
            ..digits_cfg()
        },
        1,
    )
    .unwrap();
    let mean = s
        .train
        .features
        .all()
        .mean_dim(0, false, Kind::Float)
        .abs()
        .max()
        .double_value(&[]);
    assert!(mean < 1e-4, "train mean {mean}");
}

#[test]
fn cifar10_batches_load_and_truncation_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let record = |label: u8, pixel: u8| {
        let mut r = vec![label];
        r.extend(std::iter::repeat_n(pixel, cifar::CIFAR_RECORD - 1));
        r
    };
    for i in 1..=5 {
        let bytes: Vec<u8> = (0..20u8).flat_map(|k| record(k % 10, k)).collect();
        std::fs::write(dir.path().join(format!("data_batch_{i}.bin")), bytes).unwrap();
    }
    let test: Vec<u8> = (0..10u8).flat_map(|k| record(k, 255)).collect();
    std::fs::write(dir.path().join("test_batch.bin"), &test).unwrap();
    let cfg = DataConfig {
        source: DataSource::Cifar10,
        path: Some(dir.path().to_path_buf()),
        ..digits_cfg()
    };
    let s = load(&cfg, 3).unwrap();
    assert_eq!((s.input.dims(), s.num_classes), (&[3, 32, 32][..], 10));
    assert_eq!(s.train.len() + s.val.len(), 100);
    assert_eq!(s.test.len(), 10);
    assert_eq!(
        s.test.features.all().max().double_value(&[]),
        1.0,
        "scaled by 255"
    );

    std::fs::write(dir.path().join("test_batch.bin"), &test[..test.len() - 7]).unwrap();
    let e = load(&cfg, 3).unwrap_err();
    assert!(e.file.ends_with("test_batch.bin"), "{e}");
    assert!(e.message.contains("3073-byte records"), "{e}");
}

#[test]
fn truncated_gzip_is_reported() {
    let cut = &EMBEDDED_DIGITS[..EMBEDDED_DIGITS.len() / 2];
    let e = gunzip(cut, "digits.csv.gz").unwrap_err();
    assert!(e.message.contains("truncated"), "{e}");
}

#[test]
fn reads_are_bounded_even_without_end() {
    // /dev/zero, or a gzip bomb: the read stops one byte past the limit and refuses.
    let e = read::read_capped(std::io::repeat(0), 1000, 0, "zeros").unwrap_err();
    assert_eq!(e.file, "zeros");
    assert!(e.message.contains("holds more than 1000 bytes"), "{e}");
    assert_eq!(
        read::read_capped(&[7u8; 1000][..], 1000, 0, "f")
            .unwrap()
            .len(),
        1000
    );
    // The embedded data's reader goes through the same bound.
    assert!(gunzip(EMBEDDED_DIGITS, "digits").is_ok());
    assert_eq!(MAX_DATA_BYTES, 4 << 30);
}

#[test]
fn a_missing_cifar_batch_is_named_as_one() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = DataConfig {
        source: DataSource::Cifar10,
        path: Some(dir.path().to_path_buf()),
        ..digits_cfg()
    };
    let e = load(&cfg, 3).unwrap_err();
    assert!(e.file.ends_with("data_batch_1.bin"), "{e}");
    assert!(e.message.contains("CIFAR-10 binary batch"), "{e}");
    assert!(!e.message.contains("IDX"), "{e}");
}
