//! ARCHITECTURE.md's layer map is what the code does: every `crate::` path in `src/` points at
//! a module on an earlier line of the map (or within its own module), and every module of
//! `src/` is on the map exactly once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The ```layers block of ARCHITECTURE.md: one line per layer, its modules before a `:` or
/// a `--`, separated by spaces.
fn layers() -> Vec<Vec<String>> {
    let text = std::fs::read_to_string("ARCHITECTURE.md").expect("ARCHITECTURE.md");
    let block = text
        .split("```layers\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("ARCHITECTURE.md has a ```layers block");
    block
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let names = line.split("--").next().unwrap_or_default();
            names.split_whitespace().map(str::to_string).collect()
        })
        .collect()
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`None` for the crate root and `main.rs`).
fn module_of(path: &Path) -> Option<String> {
    let rel = path.strip_prefix("src").ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    match first {
        "lib.rs" | "main.rs" => None,
        name => Some(name.trim_end_matches(".rs").to_string()),
    }
}

/// The crate's top-level modules a source text names through `crate::`, comments left out.
fn imports(text: &str) -> Vec<String> {
    let code: String = text
        .lines()
        .map(|l| l.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    let mut found = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `use crate::{a, b::c, d::{e, f}}`: the first name of each top-level item.
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.push(first_name(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            found.push(first_name(&item));
        } else {
            found.push(first_name(rest));
        }
    }
    found.retain(|n| !n.is_empty() && n != "self");
    found
}

fn first_name(path: &str) -> String {
    path.trim()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

#[test]
fn every_import_goes_to_an_earlier_layer() {
    let layers = layers();
    let mut layer_of = BTreeMap::new();
    for (i, layer) in layers.iter().enumerate() {
        for name in layer {
            assert!(
                layer_of.insert(name.clone(), i).is_none(),
                "{name} is on the map twice"
            );
        }
    }
    let mut files = Vec::new();
    sources(Path::new("src"), &mut files);
    let mut violations = Vec::new();
    let mut modules = std::collections::BTreeSet::new();
    for file in &files {
        let Some(module) = module_of(file) else {
            continue;
        };
        modules.insert(module.clone());
        let Some(&own) = layer_of.get(&module) else {
            violations.push(format!(
                "{}: module `{module}` is not on the map",
                file.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).expect("a source file");
        for used in imports(&text) {
            if used == module {
                continue;
            }
            match layer_of.get(&used) {
                Some(&layer) if layer < own => {}
                Some(_) => violations.push(format!(
                    "{}: `{module}` uses `crate::{used}`, which is not on an earlier line",
                    file.display()
                )),
                None => violations.push(format!(
                    "{}: `crate::{used}` is not on the map",
                    file.display()
                )),
            }
        }
    }
    for name in layer_of.keys() {
        if !modules.contains(name) {
            violations.push(format!("the map names `{name}`, which src/ does not have"));
        }
    }
    violations.sort();
    violations.dedup();
    assert!(
        violations.is_empty(),
        "imports against ARCHITECTURE.md's layers:\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_import_reader_finds_grouped_and_plain_paths() {
    let text = "use crate::{config::{self, Preset}, data};\nlet x = crate::train::join(t); // crate::cli\n/// see crate::front\n";
    assert_eq!(imports(text), ["config", "data", "train"]);
}
