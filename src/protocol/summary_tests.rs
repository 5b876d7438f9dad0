//! Tests of `summary.rs`: the comparison's figures and what the summary writes.

use super::*;

fn result(phase: Phase, params: usize, acc: f64, lat: f64) -> PhaseResult {
    PhaseResult {
        phase,
        trained: true,
        epochs_run: 1,
        best_epoch: 1,
        best_val_acc: acc,
        test_acc: acc,
        test_acc_last: acc,
        end_state: None,
        threads: 1,
        gpu: None,
        per_class_acc: vec![Some(acc)],
        size: ModelSize {
            params,
            bytes: params * 4,
        },
        latency: Latency {
            batch1_us: lat,
            per_sample_us: lat / 10.0,
            batch_size: 1024,
        },
        train_seconds: 1.0,
        weights: format!("{}.safetensors", phase.as_str()),
        model: "mlp 8".into(),
        teacher_outputs: None,
        loss_parts: BTreeMap::new(),
        regressor_params: None,
        init: None,
    }
}

#[test]
fn comparison_ratios_and_gain() {
    let t = result(Phase::Teacher, 1000, 0.98, 40.0);
    let b = result(Phase::Baseline, 50, 0.90, 10.0);
    let d = result(Phase::Distilled, 50, 0.95, 10.0);
    let c = Comparison::of(&t, Some(&b), Some(&d), None).unwrap();
    assert_eq!(c.compression, 20.0);
    assert_eq!(c.speedup_batch1, 4.0);
    assert!((c.gain_pp.unwrap() - 5.0).abs() < 1e-9);
    assert!((c.gap_to_teacher_pp.unwrap() - 3.0).abs() < 1e-9);
    // (0.95 - 0.90) / (0.98 - 0.90): five of the eight points.
    assert!((c.gap_closed.unwrap() - 0.625).abs() < 1e-9);
    assert!(Comparison::of(&t, None, None, None).is_none());
    assert_eq!(
        Comparison::of(&t, Some(&b), None, None).unwrap().gain_pp,
        None
    );
}

#[test]
fn gap_closed_is_a_signed_share_and_none_without_a_gap() {
    assert_eq!(gap_closed(0.98, 0.90, 0.98), Some(1.0));
    assert!((gap_closed(0.98, 0.90, 0.88).unwrap() + 0.25).abs() < 1e-9);
    // A baseline level with (or above) the teacher leaves no gap to close.
    assert_eq!(gap_closed(0.95, 0.95, 0.97), None);
    assert_eq!(gap_closed(0.90, 0.95, 0.97), None);
}

#[test]
fn a_class_the_test_split_lacks_reads_back() {
    // Written as null, read back as None: a checkpoint that holds it can be resumed.
    let mut r = result(Phase::Teacher, 10, 0.5, 1.0);
    r.per_class_acc = vec![Some(1.0), None, Some(0.0)];
    let text = serde_json::to_string(&r).unwrap();
    assert!(text.contains("[1.0,null,0.0]"), "{text}");
    assert_eq!(serde_json::from_str::<PhaseResult>(&text).unwrap(), r);
}

#[test]
fn human_bytes_units() {
    assert_eq!(human_bytes(512), "512 B");
    assert_eq!(human_bytes(9640), "9.4 KiB");
    assert_eq!(human_bytes(340008), "332 KiB");
    assert_eq!(human_bytes(3 << 20), "3.0 MiB");
}

fn summary_of(results: [PhaseResult; 3]) -> RunSummary {
    let [teacher, baseline, distilled] = results;
    RunSummary {
        status: RunStatus::Completed,
        name: "digits".into(),
        seed: 7,
        device: "cpu".into(),
        data: "digits".into(),
        input: crate::protocol::InputShape::flat(64),
        classes: (0..10).map(|c| c.to_string()).collect(),
        wall_seconds: 1.0,
        comparison: Comparison::of(&teacher, Some(&baseline), Some(&distilled), None),
        teacher: Some(teacher),
        baseline: Some(baseline),
        distilled: Some(distilled),
        distributed: None,
        failure: None,
    }
}

#[test]
fn the_table_fits_the_width_and_says_what_latency_measures() {
    let mut teacher = result(Phase::Teacher, 85002, 0.98, 40.0);
    teacher.latency.batch_size = 359;
    teacher.model = "cnn 32-64 k5 max, 1024".into();
    let summary = summary_of([
        teacher,
        result(Phase::Baseline, 2410, 0.90, 10.0),
        result(Phase::Distilled, 2410, 0.95, 10.0),
    ]);
    let whole = summary.table(None);
    assert!(whole.lines().any(|l| l.chars().count() > 110), "{whole}");
    assert!(!whole.contains("left out"), "{whole}");
    for width in [80, 60] {
        let narrow = summary.table(Some(width));
        assert!(
            narrow.lines().all(|l| l.chars().count() <= width),
            "{width}:\n{narrow}"
        );
        assert!(narrow.contains("summary.json has them"), "{narrow}");
    }
    // The note explains only the latency columns shown.
    assert!(whole.contains("latency b=1: one example at a time; latency/sample"));
    for width in [80, 60] {
        let narrow = summary.table(Some(width));
        assert!(!narrow.contains("latency b=1:"), "{narrow}");
        assert!(
            narrow.contains("latency/sample: per sample at batch"),
            "{narrow}"
        );
    }
    let at_40 = summary.table(Some(40));
    assert!(
        !at_40.contains("latency b=1:") && !at_40.contains("latency/sample:"),
        "{at_40}"
    );
    insta::assert_snapshot!(summary.table(Some(80)));
}

#[test]
fn teacher_outputs_of_old_summaries_parse_and_views_say_what_happened() {
    for (json, source) in [
        (r#""computed""#, TeacherOutputs::Computed),
        (r#""from_cache""#, TeacherOutputs::FromCache),
        (r#""per_batch""#, TeacherOutputs::PerBatch),
    ] {
        assert_eq!(
            serde_json::from_str::<TeacherOutputs>(json).unwrap(),
            source
        );
        assert_eq!(serde_json::to_string(&source).unwrap(), json);
    }
    let views = TeacherOutputs::Views {
        views: 25,
        from_cache: true,
    };
    let json = serde_json::to_string(&views).unwrap();
    assert_eq!(json, r#"{"views":{"views":25,"from_cache":true}}"#);
    assert_eq!(
        serde_json::from_str::<TeacherOutputs>(&json).unwrap(),
        views
    );
    let computed = serde_json::from_str::<TeacherOutputs>(r#"{"views":{"views":25}}"#).unwrap();
    assert!(!computed.from_cache() && views.from_cache());
    assert!(TeacherOutputs::FromCache.from_cache() && !TeacherOutputs::Computed.from_cache());
    assert_eq!(
        computed.note(),
        "computed once over the 25 augmented views of the training set (every shift and flip \
         the student can draw), looked up per batch"
    );
    assert!(views.note().starts_with("read from the cache"));
}
