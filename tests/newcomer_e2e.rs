//! What a newcomer meets on the command line (issue 24): shipped presets by name, errors that
//! name the missing file before anything else, the runs folder found from any directory, tables
//! that fit the terminal, and `models` without the data.

mod common;

use common::{kd_tui, Outcome, DIGITS};
use kd_tui::config::shipped::SHIPPED;
use std::path::Path;
use std::process::Command;

fn outcome(command: &mut Command) -> Outcome {
    Outcome::of(command.output().expect("starting kd-tui"))
}

const SHORT: [&str; 4] = ["--set", "teacher.epochs=1", "--set", "student.epochs=1"];

#[test]
fn shipped_presets_are_listed_printed_and_run_by_name() {
    let list = outcome(kd_tui().env_remove("COLUMNS").arg("presets"));
    assert_eq!(list.code, Some(0), "{}", list.stderr);
    for shipped in SHIPPED {
        let line = list.stdout.lines().find(|l| l.starts_with(shipped.name));
        let line = line.unwrap_or_else(|| panic!("{} not listed:\n{}", shipped.name, list.stdout));
        assert!(line.contains(&shipped.description()), "{line}");
    }
    assert!(
        list.stdout
            .contains("mnist-subset    (the default) the compiled-in default"),
        "{}",
        list.stdout
    );

    let printed = outcome(kd_tui().args(["presets", "digits"]));
    assert_eq!(printed.stdout, std::fs::read_to_string(DIGITS).unwrap());
    let unknown = outcome(kd_tui().args(["presets", "nope"]));
    assert_eq!(unknown.code, Some(2));
    assert!(
        unknown.stderr.contains("no shipped preset `nope`"),
        "{}",
        unknown.stderr
    );
    assert!(unknown.stderr.contains("digits-cnn"), "{}", unknown.stderr);

    // A bare name that is no file runs the shipped preset of that name.
    let tmp = tempfile::tempdir().unwrap();
    let run = outcome(
        kd_tui()
            .current_dir(tmp.path())
            .args(["--batch", "digits", "--out", "run"])
            .args(SHORT),
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stdout.contains("distilled"), "{}", run.stdout);
    assert!(
        run.stderr.contains("kd-tui: completed; run folder run"),
        "{}",
        run.stderr
    );
    assert!(tmp.path().join("run/summary.json").is_file());
}

#[test]
fn a_missing_preset_is_named_before_the_missing_terminal() {
    let out = outcome(kd_tui().arg("presets/missing.toml"));
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("presets/missing.toml: no such preset file"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("mnist-cnn, mnist-hinton"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("not a terminal"), "{}", out.stderr);
    // A good preset without a terminal is still refused, pointing at --batch.
    let tui = outcome(kd_tui().arg(DIGITS));
    assert_eq!(tui.code, Some(2));
    assert!(tui.stderr.contains("not a terminal"), "{}", tui.stderr);
}

/// `kd-tui` in `cwd` with a home of its own and no runs folder named.
fn at_home(home: &Path, cwd: &Path) -> Command {
    let mut command = kd_tui();
    command
        .current_dir(cwd)
        .env_remove("KD_TUI_RUNS")
        .env_remove("XDG_DATA_HOME")
        .env_remove("COLUMNS")
        .env("HOME", home);
    command
}

#[test]
fn runs_are_found_from_any_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let (home, work, elsewhere) = (
        tmp.path().join("home"),
        tmp.path().join("work"),
        tmp.path().join("elsewhere"),
    );
    for dir in [&home, &work, &elsewhere] {
        std::fs::create_dir(dir).unwrap();
    }
    let runs = home.join(".local/share/kd-tui/runs");
    let none = outcome(at_home(&home, &elsewhere).arg("ls"));
    assert_eq!(none.code, Some(0), "{}", none.stderr);
    assert!(
        none.stdout.contains(&format!(
            "no runs under {} (the per-user default",
            runs.display()
        )),
        "{}",
        none.stdout
    );

    // Without ./runs a run goes to the per-user folder, where ls finds it from elsewhere.
    let run = outcome(at_home(&home, &work).args(["--batch", DIGITS]).args(SHORT));
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("run folder {}", runs.display())),
        "{}",
        run.stderr
    );
    let listed = outcome(at_home(&home, &elsewhere).arg("ls"));
    assert!(
        listed
            .stdout
            .contains(&format!("runs under {}", runs.display())),
        "{}",
        listed.stdout
    );
    assert!(
        listed.stdout.contains("digits-") && listed.stdout.contains("completed"),
        "{}",
        listed.stdout
    );

    // KD_TUI_RUNS wins, and ./runs where it exists.
    let named = outcome(
        at_home(&home, &elsewhere)
            .arg("ls")
            .env("KD_TUI_RUNS", tmp.path().join("nothing")),
    );
    assert!(
        named.stdout.contains("(from KD_TUI_RUNS)"),
        "{}",
        named.stdout
    );
    std::fs::create_dir(elsewhere.join("runs")).unwrap();
    let local = outcome(at_home(&home, &elsewhere).arg("ls"));
    assert!(
        local
            .stdout
            .contains("no runs under runs (./runs exists here"),
        "{}",
        local.stdout
    );
    let file = outcome(at_home(&home, &elsewhere).args(["ls", DIGITS]));
    assert_eq!(file.code, Some(2));
    assert!(file.stderr.contains("is not a folder"), "{}", file.stderr);
}

fn widest(text: &str) -> usize {
    text.lines().map(|l| l.chars().count()).max().unwrap_or(0)
}

#[test]
fn tables_fit_the_columns_they_are_given() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("runs");
    let run = |columns: Option<&str>| {
        let mut command = kd_tui();
        command
            .env("KD_TUI_RUNS", &root)
            .env_remove("COLUMNS")
            .args(["--batch", DIGITS])
            .args(SHORT);
        if let Some(c) = columns {
            command.env("COLUMNS", c);
        }
        outcome(&mut command)
    };
    let whole = run(None);
    assert!(
        widest(&whole.stdout) > 110,
        "a pipe gets whole lines:\n{}",
        whole.stdout
    );
    assert!(
        whole.stdout.contains("per sample at batch 359"),
        "{}",
        whole.stdout
    );
    let narrow = run(Some("80"));
    assert!(widest(&narrow.stdout) <= 80, "{}", narrow.stdout);
    assert!(
        narrow.stdout.contains("(left out to fit 80 columns: "),
        "{}",
        narrow.stdout
    );

    let ls = |columns: &str| outcome(kd_tui().env("COLUMNS", columns).arg("ls").arg(&root));
    let listed = ls("70");
    assert!(widest(&listed.stdout) <= 70, "{}", listed.stdout);
    assert!(listed.stdout.contains("completed"), "{}", listed.stdout);
    assert!(widest(&ls("200").stdout) > 70);
}

#[test]
fn models_lists_layers_without_the_data() {
    let tmp = tempfile::tempdir().unwrap();
    let preset = Path::new(env!("CARGO_MANIFEST_DIR")).join("presets/mnist-cnn.toml");
    let out = outcome(kd_tui().current_dir(tmp.path()).arg("models").arg(&preset));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout.starts_with("input [1, 28, 28], 10 classes"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("teacher: cnn") && out.stdout.contains("student: mlp"),
        "{}",
        out.stdout
    );
    assert!(out.stderr.contains("--set data.path=DIR"), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "relative to the current directory, {}",
            tmp.path().display()
        )),
        "{}",
        out.stderr
    );
}

#[test]
fn stopping_an_attached_job_says_where_its_folder_is() {
    let s = common::tmux::Session::shell(
        "stopjob",
        120,
        40,
        &format!(
            "{} {DIGITS} --detach --out {{dir}}/run --set teacher.epochs=100000; echo $? > {{dir}}/exit-code; sleep 600",
            env!("CARGO_BIN_EXE_kd-tui")
        ),
    );
    let dir = s.run_dir();
    s.wait_screen("the attached cockpit", |screen| {
        screen.contains("attached to pid") && screen.contains("▶ running")
    });
    assert_eq!(s.stop_job(), 0);
    let screen = s.screen();
    let stopped = format!("the job stopped; run folder {}", dir.display());
    let go_on = format!("go on with: kd-tui --detach --resume {}", dir.display());
    assert!(
        screen.contains(&stopped) && screen.contains(&go_on),
        "{screen}"
    );
}

#[test]
fn a_phase_bar_ends_before_the_next_phase_speaks() {
    let s = common::tmux::Session::shell(
        "bars",
        160,
        80,
        &format!(
            "{} --batch {DIGITS} --out {{dir}}/run --set teacher.epochs=2 --set student.epochs=2; echo $? > {{dir}}/exit-code; sleep 600",
            env!("CARGO_BIN_EXE_kd-tui")
        ),
    );
    assert_eq!(s.wait_exit(), 0);
    let screen = s.screen();
    let at = |what: &str| {
        let lines: Vec<&str> = screen.lines().collect();
        lines
            .iter()
            .position(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no `{what}`:\n{screen}"))
    };
    assert!(at("teacher [") < at("teacher done:"), "{screen}");
    assert!(at("teacher done:") < at("info: baseline phase"), "{screen}");
    assert!(at("baseline [") < at("baseline done:"), "{screen}");
}
