//! The presets shipped in `presets/`, compiled in: `kd-tui presets` lists and prints them, and
//! `kd-tui NAME` runs one where NAME is no file.

use super::{load, load_file, Override, Preset, PresetError, DEFAULT_PRESET, DIGITS_PRESET};
use std::path::Path;

/// A shipped preset: its name (the file's, without `.toml`) and its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shipped {
    pub name: &'static str,
    pub text: &'static str,
}

/// The name of the preset kd-tui runs when given none.
pub const DEFAULT_NAME: &str = "mnist-subset";

/// `presets/NAME.toml`, compiled in.
macro_rules! shipped {
    ($name:literal) => {
        Shipped {
            name: $name,
            text: include_str!(concat!("../../presets/", $name, ".toml")),
        }
    };
}

pub const SHIPPED: [Shipped; 8] = [
    shipped!("cifar10-resnet"),
    Shipped {
        name: "digits",
        text: DIGITS_PRESET,
    },
    shipped!("digits-cnn"),
    shipped!("images"),
    shipped!("mnist"),
    shipped!("mnist-cnn"),
    shipped!("mnist-hinton"),
    Shipped {
        name: DEFAULT_NAME,
        text: DEFAULT_PRESET,
    },
];

impl Shipped {
    pub fn find(name: &str) -> Option<Shipped> {
        SHIPPED.into_iter().find(|p| p.name == name)
    }

    /// The first sentence of the file's opening comment.
    pub fn description(&self) -> String {
        let comment: Vec<&str> = self
            .text
            .lines()
            .map_while(|l| l.strip_prefix('#'))
            .map(str::trim)
            .collect();
        let text = comment.join(" ");
        let text = text.strip_prefix("kd-tui preset:").unwrap_or(&text).trim();
        // A sentence ends at ". ", but not in "et al. ".
        let end = text
            .match_indices(". ")
            .map(|(i, _)| i)
            .find(|&i| !text[..i].ends_with(" al"));
        match end {
            Some(end) => text[..=end].to_string(),
            None => text.to_string(),
        }
    }

    /// How the preset is named in messages.
    pub fn origin(&self) -> String {
        format!("<embedded presets/{}.toml>", self.name)
    }
}

/// The shipped presets' names, for messages.
pub fn names() -> String {
    SHIPPED.map(|p| p.name).join(", ")
}

/// A preset file, or where `path` is no file but a shipped preset's name (`mnist-cnn`), that
/// preset; a file that is not there is refused with the shipped names.
pub fn load_named(path: &Path, overrides: &[Override]) -> Result<Preset, PresetError> {
    if path.exists() {
        return load_file(path, overrides);
    }
    match path.to_str().and_then(Shipped::find) {
        Some(shipped) => load(shipped.text, &shipped.origin(), overrides),
        None => Err(PresetError {
            origin: path.display().to_string(),
            line_col: None,
            key: String::new(),
            message: format!(
                "no such preset file; the shipped presets (run one by its name, `kd-tui presets` \
                 describes them) are {}",
                names()
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_preset_loads_and_describes_itself() {
        for shipped in SHIPPED {
            let preset = load(shipped.text, &shipped.origin(), &[]);
            assert!(preset.is_ok(), "{}: {preset:?}", shipped.name);
            let description = shipped.description();
            assert!(
                description.ends_with('.'),
                "{}: {description}",
                shipped.name
            );
            assert!(!description.contains('#'), "{description}");
            assert!(!description.ends_with("al."), "{description}");
        }
        let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/presets")).unwrap();
        assert_eq!(
            files.count(),
            SHIPPED.len(),
            "every file in presets/ is shipped"
        );
    }

    #[test]
    fn a_bare_name_loads_the_shipped_preset_and_a_missing_file_lists_them() {
        let preset = load_named(Path::new("digits-cnn"), &[]).unwrap();
        assert_eq!(preset, load(SHIPPED[2].text, "x", &[]).unwrap());
        let e = load_named(Path::new("presets/missing.toml"), &[]).unwrap_err();
        assert_eq!(e.origin, "presets/missing.toml");
        assert!(e.message.contains("mnist-cnn, mnist-hinton"), "{e}");
    }
}
