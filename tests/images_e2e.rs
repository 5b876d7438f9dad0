//! Image folders end to end: the embedded digits written as a folder of PNG, JPEG and BMP files
//! in gray, RGB and RGBA, of two sizes, with a nested folder, a stray text file and a corrupt
//! image, trained on by the real binary; the refusals it must make, and its decoded-image cache;
//! a TorchScript teacher and student (written by the set-up's PyTorch) trained on such a folder.

mod common;

use common::data::digit_pixels as digits;
use common::{kd_tui_on, Outcome};
use image::{DynamicImage, GrayImage, ImageFormat};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

const CLASSES: [&str; 10] = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
];

/// The digits as `DIR/train/<name>/...`: every fifth image in each mode and format, one in
/// twelve at 16x16 (the rest 8x8), every seventh in a nested folder; a text file and a corrupt
/// PNG beside them. Returns the folder and the corrupt file.
fn write_folder(root: &Path) -> (PathBuf, PathBuf) {
    let dir = root.join("digits");
    for (i, (label, pixels)) in digits().into_iter().enumerate() {
        let gray = GrayImage::from_raw(8, 8, pixels).unwrap();
        let mut image = DynamicImage::ImageLuma8(gray);
        if i % 12 == 0 {
            image = image.resize_exact(16, 16, image::imageops::FilterType::Triangle);
        }
        let (image, ext, format) = match i % 5 {
            0 => (image, "png", ImageFormat::Png),
            1 => (
                DynamicImage::ImageRgb8(image.to_rgb8()),
                "png",
                ImageFormat::Png,
            ),
            2 => (
                DynamicImage::ImageRgba8(image.to_rgba8()),
                "png",
                ImageFormat::Png,
            ),
            3 => (image, "jpg", ImageFormat::Jpeg),
            _ => (
                DynamicImage::ImageRgb8(image.to_rgb8()),
                "BMP",
                ImageFormat::Bmp,
            ),
        };
        let nested = if i % 7 == 0 { "scans/2024/" } else { "" };
        let path = dir.join(format!("train/{}/{nested}{i:04}.{ext}", CLASSES[label]));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        image.save_with_format(&path, format).unwrap();
    }
    std::fs::write(dir.join("train/three/notes.txt"), "scanned in 1998").unwrap();
    let corrupt = dir.join("train/seven/torn.png");
    std::fs::write(&corrupt, b"\x89PNG\r\n\x1a\nthe rest is missing").unwrap();
    (dir, corrupt)
}

/// `kd-tui ARGS --set data.source="images" --set data.path=DIR --set SETS...`, its cache in
/// `cache`.
fn kd(args: &[&str], dir: &Path, cache: &Path, sets: &[&str]) -> Outcome {
    kd_with(args, dir, cache, sets, &[])
}

/// `kd` with more environment variables.
fn kd_with(
    args: &[&str],
    dir: &Path,
    cache: &Path,
    sets: &[&str],
    env: &[(&str, &str)],
) -> Outcome {
    let mut command = kd_tui_on(args);
    command.env("KD_TUI_CACHE", cache).envs(env.iter().copied());
    let path = format!("data.path={:?}", dir.display().to_string());
    for s in ["data.source=\"images\"", &path].iter().chain(sets) {
        command.args(["--set", s]);
    }
    Outcome::of(command.output().unwrap())
}

const SHORT: [&str; 4] = [
    "teacher.epochs=2",
    "student.epochs=2",
    "student.baseline=false",
    "teacher.model={ kind = \"cnn\", channels = [8] }",
];

#[test]
fn a_folder_of_mixed_images_trains_end_to_end_and_its_cache_is_read_back() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, corrupt) = write_folder(tmp.path());
    let cache = tmp.path().join("cache");
    let classes = format!("data.classes={:?}", CLASSES);
    // The corrupt image is named, and how to skip it said.
    let refused = kd(&["data"], &dir, &cache, &[&classes]);
    assert_eq!(refused.code, Some(2), "{}", refused.stderr);
    assert!(
        refused.stderr.contains(&corrupt.display().to_string()),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("data.skip_bad = true"),
        "{}",
        refused.stderr
    );
    // Skipped: a run trains on the rest; RGB files make it 3 channels, 8x8 the most common size.
    let run = tmp.path().join("run");
    let run_str = run.display().to_string();
    let mut sets: Vec<&str> = vec![&classes, "data.skip_bad=true"];
    sets.extend(SHORT);
    let first = kd(&["--batch", "--out", &run_str], &dir, &cache, &sets);
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    let line = first
        .stderr
        .lines()
        .find(|l| l.contains("data images"))
        .unwrap();
    assert!(
        line.contains("1797 in train/; 3x8x8, the most common size"),
        "{line}"
    );
    assert!(
        line.contains("10 classes; 1 unreadable image skipped; cache: written"),
        "{line}"
    );
    let preset = common::read_preset(&run);
    assert_eq!(
        preset.data.classes.as_deref(),
        Some(&CLASSES.map(String::from)[..])
    );
    assert_eq!(
        (preset.data.size, preset.data.channels),
        (Some([8, 8]), Some(3))
    );
    let summary = common::read_summary(&run);
    assert!(
        summary.distilled.unwrap().test_acc > 0.3,
        "it learns something"
    );
    // The second run over the unchanged folder reads the cache, with augmentation on.
    let again = tmp.path().join("again").display().to_string();
    let sets: Vec<&str> = sets
        .iter()
        .copied()
        .chain(["student.augment={ shift = 1, flip = true }"])
        .collect();
    let second = kd(&["--batch", "--out", &again], &dir, &cache, &sets);
    assert_eq!(second.code, Some(0), "{}", second.stderr);
    let line = second
        .stderr
        .lines()
        .find(|l| l.contains("data images"))
        .unwrap();
    assert!(line.ends_with("cache: read)"), "{line}");
}

#[test]
fn class_lists_that_do_not_match_the_folders_are_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _) = write_folder(tmp.path());
    let cache = tmp.path().join("cache");
    let base = ["data.skip_bad=true", "data.cache=\"none\""];
    let check = |classes: &str, says: &str| {
        let sets = [&base[..], &[classes]].concat();
        let out = kd(&["data"], &dir, &cache, &sets);
        assert_eq!(out.code, Some(2), "{classes}: {}", out.stderr);
        assert!(out.stderr.contains(says), "{classes}: {}", out.stderr);
    };
    let nine = format!("data.classes={:?}", &CLASSES[..9]);
    check(
        &nine,
        "train/nine: class folder `nine` is not in data.classes",
    );
    let eleven = format!("data.classes={:?}", [&CLASSES[..], &["ten"]].concat());
    check(
        &eleven,
        "data.classes lists `ten`, but there is no folder train/ten",
    );
    // By default the classes are the folders in byte order: eight, five, four, ...
    let out = kd(&["data"], &dir, &cache, &base);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout
            .contains("10 classes: eight, five, four, nine, one, seven, six, three, two, zero"),
        "{}",
        out.stdout
    );
    // A test/ folder with a class train/ lacks.
    let stray = dir.join("test/eleven/1.png");
    std::fs::create_dir_all(stray.parent().unwrap()).unwrap();
    GrayImage::new(8, 8).save(&stray).unwrap();
    let out = kd(&["data"], &dir, &cache, &base);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("test/eleven: class `eleven` is not a class of train/"),
        "{}",
        out.stderr
    );
}

#[test]
fn explicit_statistics_normalise_each_channel() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _) = write_folder(tmp.path());
    let cache = tmp.path().join("cache");
    let run = tmp.path().join("run").display().to_string();
    let mean_std = "data.normalize={ mean = [0.485, 0.456, 0.406], std = [0.229, 0.224, 0.225] }";
    let sets: Vec<&str> = ["data.skip_bad=true", mean_std]
        .into_iter()
        .chain(SHORT)
        .collect();
    let out = kd(&["--batch", "--out", &run], &dir, &cache, &sets);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let gray = ["data.skip_bad=true", "data.channels=1", mean_std];
    let out = kd(&["data"], &dir, &cache, &gray);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("key `data.normalize`: lists 3 means and stds for images of 1 channel"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_torchscript_teacher_and_student_train_on_an_image_folder() {
    // The user's whole kit: their images, their teacher, their student, each from PyTorch.
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _) = write_folder(tmp.path());
    let (teacher, student) = (tmp.path().join("teacher.pt"), tmp.path().join("student.pt"));
    let script = "import sys, torch\n\
        from torch import nn\n\
        torch.manual_seed(0)\n\
        teacher = nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))\n\
        torch.jit.script(teacher.eval()).save(sys.argv[1])\n\
        student = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),\n\
                                nn.Flatten(), nn.Linear(4 * 8 * 8, 10))\n\
        torch.jit.script(student).save(sys.argv[2])\n";
    common::run_python([
        OsStr::new("-c"),
        OsStr::new(script),
        teacher.as_os_str(),
        student.as_os_str(),
    ]);
    let run = tmp.path().join("run");
    let teacher_model = format!(
        "teacher.model={{ kind = \"torchscript\", path = {:?} }}",
        teacher.display().to_string()
    );
    let student_model = format!(
        "student.model={{ kind = \"torchscript\", path = {:?} }}",
        student.display().to_string()
    );
    let sets = [
        "data.skip_bad=true",
        "data.channels=1",
        "teacher.epochs=1",
        "student.epochs=2",
        &teacher_model,
        &student_model,
    ];
    let run_str = run.display().to_string();
    let out = kd(
        &["--batch", "--out", &run_str],
        &dir,
        &tmp.path().join("cache"),
        &sets,
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let summary = common::read_summary(&run);
    assert!(summary.data.starts_with("images "), "{}", summary.data);
    assert_eq!(summary.input.dims(), [1, 8, 8]);
    let teacher_result = summary.teacher.as_ref().unwrap();
    assert!(!teacher_result.trained, "a TorchScript teacher is loaded");
    let distilled = summary.distilled.as_ref().unwrap();
    assert!(
        distilled.model.starts_with("torchscript"),
        "{}",
        distilled.model
    );
    assert!(
        distilled.test_acc > 0.3,
        "it learns something: {}",
        distilled.test_acc
    );
    for file in ["baseline.pt", "distilled.pt"] {
        assert!(run.join(file).is_file(), "{file} in the run folder");
    }
}

#[test]
fn a_folder_decoded_as_batches_are_drawn_trains_exactly_as_one_decoded_up_front() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _) = write_folder(tmp.path());
    let cache = tmp.path().join("cache");
    // Augmented students (the teacher scores every view of the training rows once) and a cached
    // teacher pass: both read the training rows; validation and test are read in chunks.
    let sets = [
        "data.skip_bad=true",
        "teacher.epochs=2",
        "student.epochs=2",
        "teacher.model={ kind = \"cnn\", channels = [8] }",
        "student.augment={ shift = 1 }",
    ];
    // Each mode's run: its data line's cache status and every phase's weights.
    let run_in = |mode: &str, name: &str, more: &[&str], env: &[(&str, &str)]| {
        let run = tmp.path().join(name);
        let mode_set = format!("data.cache=\"{mode}\"");
        let all: Vec<&str> = sets
            .iter()
            .chain(more)
            .copied()
            .chain([mode_set.as_str()])
            .collect();
        let args = ["--batch", "--out", &run.display().to_string()];
        let out = kd_with(&args, &dir, &cache, &all, env);
        assert_eq!(out.code, Some(0), "{mode}: {}", out.stderr);
        let line = out
            .stderr
            .lines()
            .find(|l| l.contains("data images"))
            .unwrap();
        let status = line.split("cache: ").nth(1).unwrap().trim_end_matches(')');
        let weights = ["teacher", "baseline", "distilled"]
            .map(|phase| std::fs::read(run.join(format!("{phase}.safetensors"))).unwrap());
        (status.to_string(), weights)
    };
    let (status, memory) = run_in("memory", "memory", &[], &[]);
    assert_eq!(status, "memory");
    let (status, none) = run_in("none", "none", &[], &[]);
    assert_eq!(status, "none: decoded as batches are drawn");
    assert!(none == memory, "every phase's weights are the same bytes");
    // "disk": decoded into the cache file, then every batch's rows read from it; the next run
    // reads the file. Both train exactly as from memory.
    let paged = "rows read from the file as batches are drawn";
    let (status, disk) = run_in("disk", "disk", &[], &[]);
    assert_eq!(status, format!("written; {paged}"));
    assert!(disk == memory, "from the file written, the same weights");
    let (status, again) = run_in("disk", "disk-again", &[], &[]);
    assert_eq!(status, format!("read; {paged}"));
    assert!(again == memory, "from the file read, the same weights");
    // Another size is another cache file; under a limit of 0 GiB it evicts the older ones.
    let images = cache.join("images");
    let before: Vec<_> = std::fs::read_dir(&images)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(before.len(), 1, "{before:?}");
    let (status, _) = run_in(
        "disk",
        "resized",
        &["data.size=[6, 6]"],
        &[("KD_TUI_CACHE_GIB", "0")],
    );
    assert!(status.starts_with("written; evicted "), "{status}");
    assert!(!before[0].exists(), "the older file is gone");
    // An image whose header reads but whose pixels do not is found as its batch is drawn: the
    // run fails as bad input, naming it, and its summary says so.
    let png = std::fs::read_dir(dir.join("train/one"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension() == Some(OsStr::new("png")))
        .unwrap();
    let whole = std::fs::read(&png).unwrap();
    std::fs::write(&png, &whole[..60]).unwrap();
    let run = tmp.path().join("torn");
    let torn: Vec<&str> = sets
        .iter()
        .copied()
        .chain(["data.cache=\"none\""])
        .collect();
    let out = kd(
        &["--batch", "--out", &run.display().to_string()],
        &dir,
        &cache,
        &torn,
    );
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    let says = format!("{}: cannot decode this image", png.display());
    assert!(out.stderr.contains(&says), "{}", out.stderr);
    let failure = common::read_summary(&run).failure.unwrap();
    assert_eq!(
        failure.kind,
        kd_tui::protocol::failure::FailureKind::BadData
    );
    // Standardising needs every pixel before training: refused for a streamed folder.
    let standardize = [
        "data.skip_bad=true",
        "data.cache=\"none\"",
        "data.normalize=\"standardize\"",
    ];
    let out = kd(&["data"], &dir, &cache, &standardize);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("\"standardize\" reads every pixel first"),
        "{}",
        out.stderr
    );
}

/// Writes colour PNGs of odd sizes with PIL, and PIL's own `convert("RGB").resize((16, 16),
/// BILINEAR)` of the test/ ones, as `[C, H, W]` bytes in class, then path order.
const PIL_RESIZE: &str = r#"
import os, sys
import numpy as np
from PIL import Image
root, rng = sys.argv[1], np.random.default_rng(3)
expected = []
for split in ["train", "val", "test"]:
    for cls in ["a", "b"]:
        os.makedirs(os.path.join(root, split, cls))
        for i in range(3):
            pixels = rng.integers(0, 256, (37 + 5 * i, 53, 4), dtype=np.uint8)
            path = os.path.join(root, split, cls, f"{i}.png")
            Image.fromarray(pixels, "RGBA").save(path)
            if split == "test":
                small = Image.open(path).convert("RGB").resize((16, 16), Image.BILINEAR)
                expected.append(np.asarray(small).transpose(2, 0, 1).tobytes())
sys.stdout.buffer.write(b"".join(expected))
"#;

#[test]
fn resized_images_match_pils_bilinear_resize() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("odd");
    let expected = common::run_python([OsStr::new("-c"), OsStr::new(PIL_RESIZE), dir.as_os_str()]);
    let sets = [
        "data.source=\"images\"".to_string(),
        format!("data.path={:?}", dir.display().to_string()),
        "data.size=[16, 16]".into(),
        "data.channels=3".into(),
        "data.normalize=\"none\"".into(),
        "data.cache=\"memory\"".into(),
    ];
    let overrides: Vec<kd_tui::config::Override> =
        sets.iter().map(|s| s.parse().unwrap()).collect();
    let preset = kd_tui::config::load(kd_tui::config::DIGITS_PRESET, "digits", &overrides).unwrap();
    let data = kd_tui::data::load(&preset.data, preset.seed).unwrap();
    let got: Vec<f32> = Vec::try_from(data.test.features.all().flatten(0, -1)).unwrap();
    assert_eq!(got.len(), expected.len());
    let worst = got
        .iter()
        .zip(&expected)
        .map(|(&g, &e)| (g - f32::from(e)).abs())
        .fold(0.0_f32, f32::max);
    // Both round a fixed-point convolution; they may differ by one level, never more.
    assert!(worst <= 1.0, "largest difference from PIL: {worst}");
}
