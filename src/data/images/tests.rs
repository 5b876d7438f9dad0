use super::*;
use crate::config::{DataSource, MeanStd, Normalize};
use crate::data::image_cache::Miss;
use crate::data::tests::digits_cfg;
use image::{DynamicImage, GrayImage, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};

fn cfg(dir: &Path) -> DataConfig {
    DataConfig {
        source: DataSource::Images,
        path: Some(dir.to_path_buf()),
        cache: DataCache::Memory,
        ..digits_cfg()
    }
}

/// Writes `image` at `dir/rel` in `format`, making the folders on the way.
fn put(dir: &Path, rel: &str, image: DynamicImage, format: ImageFormat) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image.save_with_format(&path, format).unwrap();
}

fn gray(value: u8, h: u32, w: u32) -> DynamicImage {
    DynamicImage::ImageLuma8(GrayImage::from_pixel(w, h, image::Luma([value])))
}

/// Three classes `a`, `b`, `c` of 4x6 gray PNGs (values 10, 20, 30), `per` images each.
fn three_classes(dir: &Path, per: usize) {
    for (k, class) in ["a", "b", "c"].iter().enumerate() {
        for i in 0..per {
            let rel = format!("train/{class}/{i}.png");
            put(dir, &rel, gray(10 * (k as u8 + 1), 4, 6), ImageFormat::Png);
        }
    }
}

fn labels_and_pixels(source: &Source) -> (&[i64], Vec<u8>) {
    let Values::Bytes(bytes) = &source.all.features else {
        panic!("images are bytes")
    };
    (&source.all.labels, bytes.values().collect())
}

#[test]
fn classes_are_sorted_folders_nested_images_count_and_strays_are_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    put(dir, "train/b/x.png", gray(2, 3, 3), ImageFormat::Png);
    put(dir, "train/a/1.png", gray(1, 3, 3), ImageFormat::Png);
    put(
        dir,
        "train/a/sub/deep/2.PNG",
        gray(1, 3, 3),
        ImageFormat::Png,
    );
    put(dir, "train/B/y.Jpeg", gray(3, 3, 3), ImageFormat::Jpeg);
    std::fs::write(dir.join("train/a/notes.txt"), "not an image").unwrap();
    std::fs::write(dir.join("train/README"), "not a class").unwrap();
    let s = read(&cfg(dir), dir).unwrap();
    // Byte order: upper case first, as Python's sorted() of the names.
    assert_eq!(s.classes, ["B", "a", "b"]);
    let (labels, pixels) = labels_and_pixels(&s);
    assert_eq!(labels, [0, 1, 1, 2]);
    assert_eq!(s.all.shape.dims(), [1, 3, 3]);
    assert_eq!(&pixels[9..], [[1; 9], [1; 9], [2; 9]].concat());
    assert!(s.val.is_none() && s.test.is_none());
    assert!(s.description.contains("4 in train/"), "{}", s.description);
    assert!(
        s.description.contains("1x3x3, the most common size"),
        "{}",
        s.description
    );
}

#[test]
fn data_classes_fixes_the_order_and_mismatches_name_the_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    three_classes(dir, 1);
    let with = |classes: &[&str]| DataConfig {
        classes: Some(classes.iter().map(|c| c.to_string()).collect()),
        ..cfg(dir)
    };
    let s = read(&with(&["c", "a", "b"]), dir).unwrap();
    assert_eq!(s.classes, ["c", "a", "b"]);
    let (labels, pixels) = labels_and_pixels(&s);
    // Entries come in class-index order: c's image (30) first.
    assert_eq!((labels, pixels[0]), (&[0, 1, 2][..], 30));
    let e = read(&with(&["a", "b"]), dir).unwrap_err();
    assert!(e.file.ends_with("train/c"), "{e}");
    assert!(
        e.message.contains("`c` is not in data.classes (a, b)"),
        "{e}"
    );
    let e = read(&with(&["a", "b", "c", "d"]), dir).unwrap_err();
    assert!(
        e.message
            .contains("lists `d`, but there is no folder train/d"),
        "{e}"
    );
    put(dir, "val/e/1.png", gray(1, 4, 6), ImageFormat::Png);
    let e = read(&cfg(dir), dir).unwrap_err();
    assert!(e.file.ends_with("val/e"), "{e}");
    assert!(
        e.message.contains("class `e` is not a class of train/"),
        "{e}"
    );
}

#[test]
fn val_and_test_folders_are_splits_of_their_own() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    three_classes(dir, 10);
    put(dir, "test/b/1.png", gray(7, 4, 6), ImageFormat::Png);
    put(dir, "test/a/1.png", gray(5, 4, 6), ImageFormat::Png);
    let s = crate::data::load(&cfg(dir), 1).unwrap();
    assert_eq!((s.train.len() + s.val.len(), s.test.len()), (30, 2));
    assert_eq!(Vec::<i64>::try_from(&s.test.labels).unwrap(), [0, 1]);
    put(dir, "val/c/1.png", gray(5, 4, 6), ImageFormat::Png);
    let s = crate::data::load(&cfg(dir), 1).unwrap();
    assert_eq!((s.train.len(), s.val.len(), s.test.len()), (30, 1, 2));
    std::fs::create_dir_all(dir.join("test/c")).unwrap();
    std::fs::remove_file(dir.join("test/a/1.png")).unwrap();
    std::fs::remove_file(dir.join("test/b/1.png")).unwrap();
    let e = crate::data::load(&cfg(dir), 1).unwrap_err();
    assert!(e.file.ends_with("test"), "{e}");
    assert!(e.message.contains("holds no images"), "{e}");
}

#[test]
fn colour_modes_become_the_channels_asked_for() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let rgb = RgbImage::from_pixel(2, 2, Rgb([200, 100, 50]));
    let rgba = RgbaImage::from_pixel(2, 2, Rgba([10, 20, 30, 0]));
    put(
        dir,
        "train/a/rgb.png",
        DynamicImage::ImageRgb8(rgb),
        ImageFormat::Png,
    );
    put(
        dir,
        "train/b/rgba.png",
        DynamicImage::ImageRgba8(rgba),
        ImageFormat::Png,
    );
    put(dir, "train/c/l.bmp", gray(77, 2, 2), ImageFormat::Bmp);
    // Default: colour images make it 3 channels; planes, alpha dropped, gray repeated.
    let s = read(&cfg(dir), dir).unwrap();
    assert_eq!(s.all.shape.dims(), [3, 2, 2]);
    let (_, px) = labels_and_pixels(&s);
    let planes = |rgb: [u8; 3]| rgb.iter().flat_map(|&v| [v; 4]).collect::<Vec<u8>>();
    let expected = [
        planes([200, 100, 50]),
        planes([10, 20, 30]),
        planes([77; 3]),
    ]
    .concat();
    assert_eq!(px, expected);
    // One channel: PIL's luma, 0.299 R + 0.587 G + 0.114 B.
    let one = DataConfig {
        channels: Some(1),
        ..cfg(dir)
    };
    let s = read(&one, dir).unwrap();
    let (_, px) = labels_and_pixels(&s);
    assert_eq!(px, [[124; 4], [18; 4], [77; 4]].concat());
}

#[test]
fn the_default_size_is_the_most_common_and_others_are_resized() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    put(dir, "train/a/1.png", gray(40, 4, 6), ImageFormat::Png);
    put(dir, "train/a/2.png", gray(40, 4, 6), ImageFormat::Png);
    put(dir, "train/b/1.png", gray(90, 9, 9), ImageFormat::Png);
    let s = read(&cfg(dir), dir).unwrap();
    assert_eq!(s.all.shape.dims(), [1, 4, 6]);
    let (_, px) = labels_and_pixels(&s);
    assert_eq!(&px[48..], [90; 24], "a flat image stays flat when resized");
    let given = DataConfig {
        size: Some([2, 3]),
        ..cfg(dir)
    };
    let s = read(&given, dir).unwrap();
    assert_eq!(s.all.shape.dims(), [1, 2, 3]);
    assert!(s.description.contains("1x2x3;"), "{}", s.description);
}

#[test]
fn a_corrupt_image_is_named_unless_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    three_classes(dir, 2);
    std::fs::write(
        dir.join("train/b/broken.png"),
        b"\x89PNG\r\n\x1a\n not really",
    )
    .unwrap();
    for size in [None, Some([4, 6])] {
        // With a size and channels given no header is read: the decode finds it.
        let c = DataConfig {
            size,
            channels: size.map(|_| 1),
            ..cfg(dir)
        };
        let e = read(&c, dir).unwrap_err();
        assert!(e.file.ends_with("train/b/broken.png"), "{e}");
        assert!(e.message.contains("data.skip_bad = true"), "{e}");
        let skip = DataConfig {
            skip_bad: true,
            ..c
        };
        let s = read(&skip, dir).unwrap();
        assert_eq!(labels_and_pixels(&s).0, [0, 0, 1, 1, 2, 2]);
        assert!(
            s.description.contains("1 unreadable image skipped"),
            "{}",
            s.description
        );
    }
}

#[test]
fn per_channel_statistics_normalise_as_torchvision() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    three_classes(dir, 10);
    let normalize = |mean: Vec<f64>, std: Vec<f64>| DataConfig {
        normalize: Normalize::PerChannel(MeanStd { mean, std }),
        ..cfg(dir)
    };
    let s = crate::data::load(&normalize(vec![0.1], vec![0.5]), 1).unwrap();
    let got = s.test.features.all().min().double_value(&[]);
    assert!((got - (10.0 / 255.0 - 0.1) / 0.5).abs() < 1e-5, "{got}");
    let e = crate::data::load(&normalize(vec![0.1; 3], vec![0.5; 3]), 1).unwrap_err();
    assert!(
        e.message.contains("key `data.normalize`: lists 3 means"),
        "{e}"
    );
    assert!(e.message.contains("1 channel "), "{e}");
}

#[test]
fn the_cache_reads_back_what_was_decoded_and_refuses_what_it_cannot_prove() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, root) = (tmp.path().join("folder"), tmp.path().join("cache"));
    three_classes(&dir, 3);
    put(&dir, "test/a/1.png", gray(5, 4, 6), ImageFormat::Png);
    let c = DataConfig {
        cache: DataCache::Disk,
        ..cfg(&dir)
    };
    let listing = list(&dir, None).unwrap();
    let cache = Cache::new(&dir, &listing, &c, Some(root.clone()));
    assert!(matches!(cache.read(&dir, 3), Err(Miss::Absent)));
    let decoded = decode(&dir, &listing, &c, plan(&listing, &c, false).unwrap()).unwrap();
    assert_eq!(cache.keep(&decoded, &Miss::Absent), "written");
    let back = cache.read(&dir, 3).unwrap_or_else(|_| panic!("a hit"));
    assert_eq!(back, decoded);
    // `cache = "disk"` leaves the rows on disk, to be read batch by batch; "auto" reads them in.
    let paged = |d: &Decoded| match &d.splits[0].as_ref().unwrap().bytes {
        ByteStore::Paged(..) => true,
        ByteStore::Mapped(..) => false,
        ByteStore::Owned(_) => panic!("read from the file"),
    };
    assert!(paged(&back));
    let auto = DataConfig {
        cache: DataCache::Auto,
        ..c.clone()
    };
    let read_in = Cache::new(&dir, &listing, &auto, Some(root.clone()));
    assert!(!paged(
        &read_in.read(&dir, 3).unwrap_or_else(|_| panic!("a hit"))
    ));
    let file = std::fs::read_dir(root.join("images"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let bytes = std::fs::read(&file).unwrap();
    let why = |bytes: &[u8]| {
        std::fs::write(&file, bytes).unwrap();
        match cache.read(&dir, 3) {
            Err(Miss::Unusable(why)) => why,
            _ => panic!("a file that does not prove itself is not used"),
        }
    };
    // A pixel changed (just after the magic), a header cut short or its length lost, a file
    // of something else: none is used.
    let mut flipped = bytes.clone();
    flipped[16] ^= 1;
    assert!(why(&flipped).contains("checksum"));
    let mut one_more = bytes.clone();
    one_more.insert(16, 0);
    assert!(why(&one_more).contains("not what its header promises"));
    assert!(why(&bytes[..bytes.len() - 1]).contains("header"));
    assert!(why(b"something else entirely, longer than a header").contains("not a cache file"));
    assert!(why(&bytes[..20]).contains("cut short"));
    // Fewer classes than the labels name: not this listing's file.
    std::fs::write(&file, &bytes).unwrap();
    assert!(matches!(cache.read(&dir, 2), Err(Miss::Unusable(_))));
    // Another listing, or other settings, another key.
    let key = cache.key().to_string();
    let other = Cache::new(
        &dir,
        &listing,
        &DataConfig {
            size: Some([2, 2]),
            ..c.clone()
        },
        None,
    );
    assert_ne!(other.key(), key);
    put(&dir, "train/a/0.png", gray(11, 5, 6), ImageFormat::Png);
    let changed = Cache::new(&dir, &list(&dir, None).unwrap(), &c, None);
    assert_ne!(changed.key(), key);
    assert!(
        matches!(changed.read(&dir, 3), Err(Miss::Off(_))),
        "no root, no file"
    );
}

#[test]
fn sizes_under_a_gib_are_told_in_mib() {
    assert_eq!(gib(471 << 20), "471 MiB");
    assert_eq!(gib((700 << 20) + (1 << 19)), "701 MiB");
    assert_eq!(gib(3 << 30), "3.0 GiB");
}

#[test]
fn images_that_would_not_fit_in_memory_are_refused_with_their_size() {
    let dir = Path::new("huge");
    assert!(fits_in_memory(dir, 1000, 784).is_ok());
    if crate::memory::available_memory().is_none() {
        return; // no /proc/meminfo: nothing to compare with
    }
    let e = fits_in_memory(dir, 1 << 30, 3 * 224 * 224).unwrap_err();
    assert_eq!(e.file, "huge");
    assert!(
        e.message
            .contains("1073741824 images of 150528 bytes take 150528.0 GiB as bytes"),
        "{e}"
    );
}

#[test]
fn decoding_a_chunk_at_a_time_closes_up_skipped_images_as_decoding_all_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for (k, class) in ["a", "b"].iter().enumerate() {
        for i in 0..5u8 {
            let value = 40 * k as u8 + i;
            put(
                dir,
                &format!("train/{class}/{i}.png"),
                gray(value, 4, 6),
                ImageFormat::Png,
            );
        }
    }
    put(dir, "test/b/0.png", gray(99, 4, 6), ImageFormat::Png);
    std::fs::write(dir.join("train/a/2.png"), b"\x89PNG\r\n\x1a\n cut").unwrap();
    let c = DataConfig {
        skip_bad: true,
        size: Some([4, 6]),
        channels: Some(1),
        ..cfg(dir)
    };
    let listing = list(dir, None).unwrap();
    let whole = decode(dir, &listing, &c, plan(&listing, &c, false).unwrap()).unwrap();
    assert_eq!(whole.skipped, 1);
    // Chunks of 3 images: the bad one is in the first; the train split ends mid-chunk.
    let mut got: Vec<(usize, Vec<u8>, Vec<i64>)> = Vec::new();
    let p = plan(&listing, &c, false).unwrap();
    let skipped = decode::decode_chunked(dir, &listing, &c, &p, 3 * 24, &mut |split, px, l| {
        got.push((split, px.to_vec(), l.to_vec()));
        Ok(())
    })
    .unwrap();
    assert_eq!(skipped, 1);
    let sizes: Vec<(usize, usize)> = got.iter().map(|(s, _, l)| (*s, l.len())).collect();
    assert_eq!(sizes, [(0, 2), (0, 3), (0, 3), (0, 1), (2, 1)]);
    for (split, name) in [(0, "train"), (2, "test")] {
        let pixels: Vec<u8> = got
            .iter()
            .filter(|g| g.0 == split)
            .flat_map(|g| g.1.clone())
            .collect();
        let labels: Vec<i64> = got
            .iter()
            .filter(|g| g.0 == split)
            .flat_map(|g| g.2.clone())
            .collect();
        let whole = whole.splits[split].as_ref().unwrap();
        assert_eq!(pixels, &whole.bytes[..], "{name}");
        assert_eq!(labels, whole.labels, "{name}");
    }
}
