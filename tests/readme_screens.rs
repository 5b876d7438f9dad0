//! The README's cockpit screens are the snapshot tests' screens (`scripts/readme_screens.py`
//! rewrites them after a snapshot changes).

use std::path::Path;

/// The snapshot's rows as drawn, trailing blanks dropped.
fn snapshot_screen(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!(
        "src/front/tui/tests/snapshots/kd_tui__front__tui__tests__screens__{name}.snap"
    ));
    let text = std::fs::read_to_string(&path).unwrap();
    let body = text.split_once("\n---\n").expect("an insta header").1;
    body.lines()
        .filter(|row| row.starts_with('"'))
        .map(|row| row[1..row.len() - 1].trim_end())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The text block after the README line that starts with `caption`.
fn readme_screen<'a>(readme: &'a str, caption: &str) -> &'a str {
    let at = readme
        .find(&format!("\n{caption}"))
        .unwrap_or_else(|| panic!("README: no screen captioned {caption:?}"));
    let block = &readme[at..];
    let start = block.find("```text\n").expect("a text block") + "```text\n".len();
    let end = block[start..].find("\n```").expect("the block's end");
    &block[start..start + end]
}

#[test]
fn the_readme_shows_the_cockpit_as_its_snapshots_draw_it() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    for (caption, snapshot) in [
        ("80x24, distilling", "running_at_80x24"),
        ("80x24, finished", "finished_at_80x24"),
        ("120x40, distilling", "running_at_120x40"),
        ("120x40, finished", "finished_at_120x40"),
    ] {
        assert_eq!(
            readme_screen(&readme, caption),
            snapshot_screen(snapshot),
            "README's {caption} screen differs from its snapshot: run python3 scripts/readme_screens.py"
        );
    }
}
