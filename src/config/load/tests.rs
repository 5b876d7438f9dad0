use super::*;
use crate::config::{DataSource, ModelConfig, Normalize, DIGITS_PRESET, DIGITS_PRESET_NAME};
use crate::distill::Method;

fn ov(s: &str) -> Override {
    s.parse().unwrap()
}

#[test]
fn shipped_presets_load() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("presets");
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            load_file(&path, &[]).unwrap_or_else(|e| panic!("{e}"));
            count += 1;
        }
    }
    assert!(count >= 2, "digits and mnist presets");
}

#[test]
fn default_preset_loads() {
    let p = load(DIGITS_PRESET, DIGITS_PRESET_NAME, &[]).unwrap();
    assert_eq!(p.data.source, DataSource::Digits);
    assert_eq!(p.distill.method, Method::Soft);
}

#[test]
fn overrides_change_values_and_types() {
    let p = load(
        DIGITS_PRESET,
        "d",
        &[
            ov("teacher.lr=3e-4"),
            ov("distill.method=hard"),
            ov("student.model.hidden=[8, 4]"),
        ],
    )
    .unwrap();
    assert_eq!(p.teacher.lr, 3e-4);
    assert_eq!(p.distill.method, Method::Hard);
    let ModelConfig::Mlp(student) = &p.student.model else {
        panic!("the default student is an mlp")
    };
    assert_eq!(student.hidden, vec![8, 4]);
}

#[test]
fn unknown_key_names_line_and_key() {
    let text = DIGITS_PRESET.replace("[distill]", "[distill]\ntemprature = 3.0");
    let e = load(&text, "x.toml", &[]).unwrap_err();
    let line = text
        .lines()
        .position(|l| l.starts_with("temprature"))
        .unwrap()
        + 1;
    assert_eq!(e.line_col.map(|l| l.0), Some(line), "{e}");
    assert!(e.to_string().contains("temprature"), "{e}");
    assert!(
        e.to_string().contains("temperature"),
        "lists allowed keys: {e}"
    );
}

#[test]
fn out_of_range_values_are_rejected_with_location() {
    for (from, to, key) in [
        (
            "temperature = 4.0",
            "temperature = 0.0",
            "distill.temperature",
        ),
        ("alpha = 0.9", "alpha = 1.5", "distill.alpha"),
        (
            "val_fraction = 0.1",
            "val_fraction = 0.0",
            "data.val_fraction",
        ),
    ] {
        let text = DIGITS_PRESET.replacen(from, to, 1);
        let e = load(&text, "x.toml", &[]).unwrap_err();
        assert_eq!(e.key, key);
        let line = text
            .lines()
            .position(|l| l.trim_start().starts_with(to))
            .unwrap()
            + 1;
        assert_eq!(e.line_col.unwrap().0, line, "{e}");
    }
}

#[test]
fn override_errors_blame_the_flag() {
    let e = load(DIGITS_PRESET, "x.toml", &[ov("teacher.epochs=0")]).unwrap_err();
    assert_eq!(e.origin, "--set teacher.epochs=0");
    assert_eq!(e.key, "teacher.epochs");
    let e = load(DIGITS_PRESET, "x.toml", &[ov("teacher.epochs=ten")]).unwrap_err();
    assert_eq!(e.key, "teacher.epochs");
    assert!(e.message.contains("integer"), "{e}");
}

#[test]
fn syntax_errors_have_a_position() {
    let e = load("name = \"x\"\n[data\n", "bad.toml", &[]).unwrap_err();
    assert_eq!(e.line_col.unwrap().0, 2, "{e}");
}

#[test]
fn override_syntax_is_checked() {
    assert!("teacher.lr".parse::<Override>().is_err());
    assert!(".lr=1".parse::<Override>().is_err());
}

#[test]
fn live_edits_are_validated() {
    let p = load(DIGITS_PRESET, "d", &[]).unwrap();
    let e = p.with_edit("distill.temperature", "8").unwrap();
    assert_eq!(e.distill.number("temperature"), 8.0);
    assert_eq!(e.get("distill.temperature"), Some(toml::Value::Float(8.0)));
    assert_eq!(
        p.with_edit("distill.method", "hard")
            .unwrap()
            .distill
            .method,
        Method::Hard
    );
    assert!(p
        .with_edit("distill.temperature", "-1")
        .unwrap_err()
        .contains("> 0"));
    assert!(p
        .with_edit("distill.alpha", "1.5")
        .unwrap_err()
        .contains("[0, 1]"));
    assert!(p.with_edit("teacher.lr", "0").unwrap_err().contains("> 0"));
    assert!(p
        .with_edit("teacher.lr", "fast")
        .unwrap_err()
        .contains("not a valid teacher.lr"));
    assert!(p
        .with_edit("distill.method", "magic")
        .unwrap_err()
        .contains("hard"));
    assert!(p
        .with_edit("teacher.model.hidden", "[3]")
        .unwrap_err()
        .contains("cannot change"));
}

#[test]
fn resolved_preset_round_trips() {
    let p = load(DIGITS_PRESET, "d", &[ov("seed=11")]).unwrap();
    let again = load(&p.to_toml(), "resolved", &[]).unwrap();
    assert_eq!(p, again);
}

#[test]
fn switching_method_starts_from_the_new_methods_defaults() {
    // The default preset's alpha = 0.9 weighs soft KD's KL term; DKD's alpha weighs TCKD.
    let p = load(DIGITS_PRESET, "d", &[ov("distill.method=dkd")]).unwrap();
    assert_eq!(p.distill.number("alpha"), 1.0);
    assert_eq!(p.distill.number("beta"), 8.0);
    assert_eq!(p.distill.epochs("warmup"), 20);
    let p = load(
        DIGITS_PRESET,
        "d",
        &[ov("distill.method=dkd"), ov("distill.alpha=0.5")],
    )
    .unwrap();
    assert_eq!(p.distill.number("alpha"), 0.5);
    // The same switch live.
    let soft = load(DIGITS_PRESET, "d", &[]).unwrap();
    let dkd = soft.with_edit("distill.method", "dkd").unwrap();
    assert_eq!(dkd.distill.number("alpha"), 1.0);
    assert!(dkd.live_keys().contains(&"distill.beta".to_string()));
    assert!(soft
        .with_edit("distill.method", "hint")
        .unwrap_err()
        .contains("cannot be switched"));
    // Any method on named layers: its layers are set up when the phase starts.
    assert!(soft
        .with_edit("distill.method", "at")
        .unwrap_err()
        .contains("`at` cannot be switched"));
    // A switch: from --set and live, true or false only.
    let p = load(DIGITS_PRESET, "d", &[ov("distill.standardize=true")]).unwrap();
    assert!(p.distill.switch("standardize"));
    assert!(!soft.distill.switch("standardize"));
    let edited = soft.with_edit("distill.standardize", "true").unwrap();
    assert!(edited.distill.switch("standardize"));
    assert!(soft
        .with_edit("distill.standardize", "1")
        .unwrap_err()
        .contains("expected true or false"));
    // Keys of another method in a preset are refused, naming what the method takes.
    let e = load(DIGITS_PRESET, "d", &[ov("distill.beta=2")]).unwrap_err();
    assert!(
        e.message
            .contains("unknown field `beta` for method `soft`, expected one of `method`, `temperature`, `alpha`"),
        "{e}"
    );
    // Integers are numbers: written back as floats in the resolved preset.
    let p = load(DIGITS_PRESET, "d", &[ov("distill.temperature=8")]).unwrap();
    assert_eq!(p.get("distill.temperature"), Some(toml::Value::Float(8.0)));
}

#[test]
fn cosine_schedule_by_hand_and_a_bad_one_is_named() {
    use crate::config::LrSchedule;
    let p = load(DIGITS_PRESET, "d", &[ov("student.schedule=\"cosine\"")]).unwrap();
    assert_eq!(p.student.schedule, LrSchedule::Cosine);
    assert_eq!(p.teacher.schedule, LrSchedule::Constant);
    let f = |x| LrSchedule::Cosine.factor(x);
    assert_eq!(f(0.0), 1.0);
    assert!((f(0.5) - 0.5).abs() < 1e-12);
    assert!((f(0.25) - (0.5 + 0.5 * std::f64::consts::FRAC_1_SQRT_2)).abs() < 1e-12);
    assert!(f(1.0).abs() < 1e-12);
    assert_eq!(LrSchedule::Constant.factor(0.7), 1.0);
    let e = load(DIGITS_PRESET, "d", &[ov("teacher.schedule=\"linear\"")]).unwrap_err();
    let text = e.to_string();
    assert!(text.contains("linear") && text.contains("cosine"), "{text}");
}

/// The lines of the digits preset's comment on `method`: its `#   name:` line and the
/// `#     ...` lines under it.
fn method_doc(doc: &str, method: &str) -> String {
    let head = format!("#   {method}:");
    doc.lines()
        .skip_while(|l| !l.starts_with(&head))
        .enumerate()
        .take_while(|(i, l)| *i == 0 || l.starts_with("#     "))
        .map(|(_, l)| l)
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_default_preset_documents_every_method_and_its_own_hyperparameters() {
    for method in Method::ALL {
        let spec = crate::distill::spec(method);
        let doc = method_doc(DIGITS_PRESET, spec.name);
        assert!(!doc.is_empty(), "{} undocumented", spec.name);
        let words: Vec<&str> = doc
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .collect();
        for p in spec.params {
            assert!(
                words.contains(&p.name),
                "{}.{} is not in the method's own lines:\n{doc}",
                spec.name,
                p.name
            );
        }
    }
    // Each method's lines are its own: `dkd`'s do not run on into `dist`'s.
    assert!(!method_doc(DIGITS_PRESET, "dkd").contains("tau"));
}

#[test]
fn normalize_takes_a_word_or_per_channel_statistics_and_says_which_key_is_wrong() {
    let with = |value: &str| {
        let text = DIGITS_PRESET.replace("normalize = \"scale\"", &format!("normalize = {value}"));
        load(&text, "p.toml", &[])
    };
    let p = with("{ mean = [0.5], std = [0.25] }").unwrap();
    let again = load(&p.to_toml(), "again", &[]).unwrap();
    assert_eq!(again.data.normalize, p.data.normalize, "it round-trips");
    assert_eq!(with("\"none\"").unwrap().data.normalize, Normalize::None);
    let line = DIGITS_PRESET
        .lines()
        .position(|l| l.starts_with("normalize"))
        .unwrap()
        + 1;
    for (value, key, says) in [
        (
            "\"unit\"",
            "data.normalize",
            "unknown variant `unit`, expected `scale`",
        ),
        (
            "{ mean = [0.5], sd = [1.0] }",
            "data.normalize.sd",
            "unknown field `sd`",
        ),
        ("{ mean = [0.5] }", "data.normalize", "missing field `std`"),
        (
            "{ mean = [\"a\"], std = [1.0] }",
            "data.normalize.mean[0]",
            "expected a number",
        ),
        (
            "{ mean = [0.5], std = [0.0] }",
            "data.normalize",
            "stds numbers > 0",
        ),
        (
            "{ mean = [0.5, 0.5, 0.5], std = [1, 1, 1] }",
            "data.normalize",
            "3 means and stds for images of 1 channel",
        ),
        (
            "{ mean = [0.5, 0.5], std = [1] }",
            "data.normalize",
            "one mean and one std per channel",
        ),
    ] {
        let e = with(value).unwrap_err();
        assert_eq!(e.key, key, "{value}: {e}");
        assert!(e.message.contains(says), "{value}: {e}");
        assert_eq!(e.line_col.map(|l| l.0), Some(line), "{value}: {e}");
    }
}

#[test]
fn image_keys_apply_to_image_folders_only() {
    let images = [ov("data.source=\"images\""), ov("data.path=\"pictures\"")];
    let p = load(DIGITS_PRESET, "d", &images).unwrap();
    assert_eq!(p.data.source, DataSource::Images);
    for (set, key, says) in [
        (
            "data.size=[28, 28]",
            "data.size",
            "applies to image folders only",
        ),
        (
            "data.skip_bad=true",
            "data.skip_bad",
            "applies to image folders only",
        ),
        (
            "data.cache=\"disk\"",
            "data.cache",
            "applies to image folders only",
        ),
    ] {
        let e = load(DIGITS_PRESET, "d", &[ov(set)]).unwrap_err();
        assert_eq!((e.key.as_str(), e.message.as_str()), (key, says), "{e}");
    }
    for (set, key, says) in [
        (
            "data.channels=2",
            "data.channels",
            "must be 1 (gray) or 3 (RGB) (got 2)",
        ),
        (
            "data.size=[0, 28]",
            "data.size",
            "must each be within 1..=4096",
        ),
        (
            "data.size=[28]",
            "data.size",
            "expected an array of length 2",
        ),
        ("data.cache=\"ram\"", "data.cache", "unknown variant `ram`"),
    ] {
        let e = load(DIGITS_PRESET, "d", &[&images[..], &[ov(set)]].concat()).unwrap_err();
        assert_eq!(e.key, key, "{e}");
        assert!(e.message.contains(says), "{e}");
    }
    let e = load(DIGITS_PRESET, "d", &[ov("data.source=\"images\"")]).unwrap_err();
    assert!(
        e.message
            .contains("images: the folder holding train/<class>/"),
        "{e}"
    );
}
