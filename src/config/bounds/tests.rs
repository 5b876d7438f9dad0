use super::*;
use crate::config::{load, load_file, Override, PresetError, DIGITS_PRESET};

fn with(sets: &[&str]) -> Result<Preset, PresetError> {
    let overrides: Vec<Override> = sets.iter().map(|s| s.parse().unwrap()).collect();
    load(DIGITS_PRESET, "d", &overrides)
}

#[test]
fn threads_are_bounded_by_the_machine() {
    let max = max_threads();
    assert!(with(&[&format!("threads={max}")]).is_ok());
    for n in [max + 1, 20_000] {
        let e = with(&[&format!("threads={n}")]).unwrap_err();
        assert_eq!(
            (e.origin.as_str(), e.key.as_str()),
            (&*format!("--set threads={n}"), "threads")
        );
        assert!(
            e.message.contains(&format!("at most {max}"))
                && e.message.contains(&format!("got {n}")),
            "{e}"
        );
    }
}

#[test]
fn seeds_are_bounded_in_count_and_value() {
    let many: Vec<String> = (0..=MAX_SEEDS).map(|s| s.to_string()).collect();
    let e = with(&[&format!("seeds=[{}]", many.join(","))]).unwrap_err();
    assert_eq!(e.key, "seeds");
    assert!(e.message.contains("lists 1001 seeds; at most 1000"), "{e}");

    let mut p = with(&[]).unwrap();
    assert!(p
        .repeat_seeds(MAX_SEEDS + 1)
        .unwrap_err()
        .contains("1..=1000"));
    p.repeat_seeds(3).unwrap();
    assert_eq!(p.seeds, Some(vec![p.seed, p.seed + 1, p.seed + 2]));
    // Every seed is written to a preset.toml that TOML (i64 integers) reads back.
    let mut p = with(&[&format!("seed={}", i64::MAX)]).unwrap();
    let e = p.repeat_seeds(2).unwrap_err();
    assert!(e.contains(&format!("go past {}", i64::MAX)), "{e}");
    p.repeat_seeds(1).unwrap();
    assert_eq!(p.seeds, Some(vec![i64::MAX as u64]));
    p.seed = MAX_SEED + 1;
    assert_eq!(p.validate().unwrap_err().0, "seed");
}

/// The default preset with a `[sweep]` of these keys, each with `n` values.
fn sweep(keys: &[&str], n: usize) -> Result<Preset, PresetError> {
    let values: Vec<String> = (1..=n).map(|v| format!("{v}e-3")).collect();
    let lines: Vec<String> = keys
        .iter()
        .map(|k| format!("\"{k}\" = [{}]", values.join(", ")))
        .collect();
    let text = format!("{DIGITS_PRESET}\n[sweep]\n{}\n", lines.join("\n"));
    load(&text, "sweep.toml", &[])
}

#[test]
fn sweep_grids_are_counted_before_they_are_expanded() {
    // Seven keys of ten values: 10^7 points, counted without building one.
    let keys = [
        "teacher.lr",
        "student.lr",
        "teacher.weight_decay",
        "student.weight_decay",
        "distill.temperature",
        "distill.alpha",
        "diverge_factor",
    ];
    let e = sweep(&keys, 10).unwrap_err();
    assert_eq!(e.key, "sweep");
    assert!(
        e.message
            .contains("has 10 x 10 x 10 x 10 x 10 x 10 x 10 = 10000000 points; at most 10000"),
        "{e}"
    );
    // Within the bound alone, but not over 1000 seeds.
    let mut p = sweep(&keys[..1], 20).unwrap();
    let e = p.repeat_seeds(1000).unwrap_err();
    assert!(
        e.contains("20 points for each of 1000 seeds are 20000 runs; at most 10000"),
        "{e}"
    );
    p.repeat_seeds(500).unwrap();
}

#[test]
fn duplicate_classes_are_refused() {
    let csv = |classes: &str| {
        with(&[
            "data.source=csv",
            "data.path=\"x.csv\"",
            &format!("data.classes={classes}"),
        ])
    };
    assert!(csv("[\"a\", \"b\"]").is_ok());
    let e = csv("[\"a\", \"b\", \"a\"]").unwrap_err();
    assert_eq!(e.key, "data.classes");
    assert!(e.message.contains("lists the class `a` twice"), "{e}");
    let e = csv("[\"1\", \"2\", \"1.0\"]").unwrap_err();
    assert!(
        e.message
            .contains("lists the class `1.0` twice (as `1`: equal numbers are one class)"),
        "{e}"
    );
}

#[test]
fn class_keys_compare_numbers_as_numbers() {
    assert_eq!(class_key("1"), class_key("1.0"));
    assert_eq!(class_key("1"), class_key("1e0"));
    assert_eq!(class_key("0"), class_key("-0"));
    assert_ne!(class_key("1"), class_key("10"));
    assert_ne!(
        class_key("nan"),
        class_key("NaN"),
        "not numbers: compared as text"
    );
    assert_eq!(class_key("cat"), ClassKey::Text("cat"));
}

#[test]
fn non_decimal_integers_in_set_flags_are_not_numbers() {
    for value in ["0x46", "0o106", "0b1000110", "7_0"] {
        let e = format!("student.epochs={value}")
            .parse::<Override>()
            .unwrap_err();
        assert!(
            e.contains(&format!("key `student.epochs`: `{value}` is not a number"))
                && e.contains("(`70`)"),
            "{e}"
        );
    }
    // The cockpit's live edits read numbers the same way.
    let e = with(&[]).unwrap().with_edit("student.epochs", "0x46");
    assert!(e.unwrap_err().contains("`0x46` is not a number"));
    for ok in ["70", "+70", "-1", "1e3", "0.5", "[0x10]", "abc"] {
        assert!(format!("k.x={ok}").parse::<Override>().is_ok(), "{ok}");
    }
}

#[test]
fn preset_files_are_read_up_to_a_bound() {
    let e = load_file(std::path::Path::new("/dev/zero"), &[]).unwrap_err();
    assert_eq!(e.origin, "/dev/zero");
    assert!(e.message.contains("larger than 4 MiB"), "{e}");
}

#[test]
fn collective_timeouts_are_durations() {
    assert!(with(&["distributed.timeout_s=86400"]).is_ok());
    for t in ["1e300", "86401", "0.5", "nan"] {
        let e = with(&[&format!("distributed.timeout_s={t}")]).unwrap_err();
        assert_eq!(e.key, "distributed.timeout_s");
        assert!(e.message.contains("within [1, 86400] seconds"), "{e}");
    }
}
