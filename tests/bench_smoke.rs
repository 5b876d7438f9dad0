//! A smoke run of the whole-preset comparison harness (`scripts/bench_presets.py --smoke`): one
//! epoch per phase of the digits preset in kd-tui and in plain PyTorch. The harness itself fails
//! when the two did different work; this checks that it reports every figure it promises.

mod common;

#[test]
fn the_comparison_harness_runs_both_programs_on_the_same_work() {
    let Some(python) = common::python_with_torch() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let out = std::process::Command::new(python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/bench_presets.py"
        ))
        .args([
            "--smoke",
            "--kd-tui",
            env!("CARGO_BIN_EXE_kd-tui"),
            "--json",
        ])
        .arg(&report)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "harness failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let digits = &report["workloads"]["digits"];
    for measure in [
        "wall s",
        "launch to first step s",
        "peak memory MB",
        "teacher samples/s",
        "baseline samples/s",
        "distilled samples/s",
    ] {
        for program in ["kd_tui", "pytorch"] {
            let median = digits[measure][program]["median"].as_f64();
            assert!(
                median.is_some_and(|m| m > 0.0),
                "{measure} of {program}: {median:?}\n{stdout}"
            );
        }
    }
    let runs = &digits["runs"];
    for program in ["kd-tui", "pytorch"] {
        let teacher = &runs[program][0]["phases"]["teacher"];
        assert_eq!(teacher["epochs"], 1, "{program}");
        assert!(
            teacher["test_acc"].as_f64().unwrap() > 0.3,
            "{program}: {teacher}"
        );
    }
    assert!(stdout.contains("| digits | teacher GFLOP/s"), "{stdout}");
}
