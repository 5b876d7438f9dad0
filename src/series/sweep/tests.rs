use super::*;

fn grid(entries: &[(&str, &[toml::Value])]) -> SweepConfig {
    SweepConfig {
        points: Vec::new(),
        grid: entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_vec()))
            .collect(),
    }
}

#[test]
fn a_grid_is_every_combination() {
    let f = toml::Value::Float;
    let g = grid(&[
        ("distill.alpha", &[f(0.5), f(0.9)]),
        ("distill.temperature", &[f(1.0), f(4.0), f(20.0)]),
    ]);
    let p = points(&g);
    assert_eq!(p.len(), 6);
    assert_eq!(p[0]["distill.alpha"], f(0.5));
    assert_eq!(p[0]["distill.temperature"], f(1.0));
    assert_eq!(p[5]["distill.alpha"], f(0.9));
    assert_eq!(p[5]["distill.temperature"], f(20.0));
}

#[test]
fn a_point_is_validated_like_a_set_flag() {
    let base = config::load(config::DIGITS_PRESET, "d", &[]).unwrap();
    let f = toml::Value::Float;
    let point: Point = [("distill.temperature".to_string(), f(8.0))].into();
    let p = preset_of(&base, &point, 0, &[]).unwrap();
    assert_eq!(p.distill.number("temperature"), 8.0);
    let hidden: Point = [(
        "student.model.hidden".to_string(),
        toml::Value::Array(vec![toml::Value::Integer(64)]),
    )]
    .into();
    assert!(preset_of(&base, &hidden, 1, &[]).is_ok());
    let bad: Point = [("distill.alpha".to_string(), f(1.5))].into();
    let e = preset_of(&base, &bad, 2, &[]).unwrap_err();
    assert!(
        e.to_string().contains("distill.alpha") && e.to_string().contains("[0, 1]"),
        "{e}"
    );
}

#[test]
fn the_best_point_is_chosen_on_validation_not_test() {
    let row = |point, val, test| SweepRow {
        point,
        seed: 1,
        values: Point::new(),
        run_dir: String::new(),
        distilled_val_acc: Some(val),
        distilled_test_acc: Some(test),
        baseline_test_acc: Some(90.0),
    };
    // Point 1 has the best test accuracy, point 0 the best validation accuracy.
    let report = SweepReport::of(vec![row(0, 95.0, 91.0), row(1, 94.0, 99.0)], true);
    assert_eq!(report.best_point, Some(0));
    assert!(
        report.table(None).contains("0 (best by val)"),
        "{}",
        report.table(None)
    );
    let narrow = report.table(Some(60));
    assert!(narrow.lines().all(|l| l.chars().count() <= 60), "{narrow}");
    assert!(
        narrow.contains("(best by") && narrow.contains("99.00%"),
        "{narrow}"
    );
}

#[test]
fn points_that_set_the_student_alike_share_a_baseline() {
    let point = |entries: &[(&str, toml::Value)]| -> Point {
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    };
    let method = |m: &str| ("distill.method", toml::Value::String(m.into()));
    let epochs = |n: i64| ("student.epochs", toml::Value::Integer(n));
    assert!(same_student(
        &point(&[method("soft")]),
        &point(&[method("dkd")])
    ));
    assert!(same_student(
        &point(&[method("soft"), epochs(5)]),
        &point(&[epochs(5), method("at")])
    ));
    assert!(!same_student(
        &point(&[method("soft")]),
        &point(&[method("soft"), epochs(5)])
    ));
    assert!(!same_student(&point(&[epochs(4)]), &point(&[epochs(5)])));
}

#[test]
fn the_csv_has_a_column_for_every_key_any_point_sets() {
    let row = |point: usize, values: &[(&str, toml::Value)]| SweepRow {
        point,
        seed: 7,
        values: values
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        run_dir: format!("s/point-{point}"),
        distilled_val_acc: Some(90.0),
        distilled_test_acc: Some(89.0),
        baseline_test_acc: Some(88.0),
    };
    let method = |m: &str| ("distill.method", toml::Value::String(m.into()));
    let report = SweepReport::of(
        vec![
            row(0, &[method("hard")]),
            row(
                1,
                &[
                    method("soft"),
                    ("distill.temperature", toml::Value::Float(2.0)),
                ],
            ),
        ],
        true,
    );
    let csv = report.csv();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(
        lines[0].starts_with("point,seed,distill.method,distill.temperature,"),
        "{csv}"
    );
    assert!(lines[1].starts_with("0,7,\"'hard'\",\"\","), "{csv}");
    assert!(lines[2].starts_with("1,7,\"'soft'\",\"2.0\","), "{csv}");
}
