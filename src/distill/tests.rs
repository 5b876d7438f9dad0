use super::test_util::{close, t2};
use super::*;

#[test]
fn cross_entropy_of_uniform_logits_is_ln_classes() {
    close(
        &cross_entropy(&t2(&[[0.0, 0.0]]), &Tensor::from_slice(&[0i64])),
        2f64.ln(),
    );
}

/// A validated config for `method` with its defaults and `set` applied.
fn cfg(method: Method, set: &[(&str, toml::Value)]) -> DistillConfig {
    let mut c = DistillConfig {
        method,
        params: Default::default(),
    };
    for p in spec(method).params {
        if let Some(v) = p.default_value() {
            c.params.insert(p.name.into(), v);
        }
    }
    for (k, v) in set {
        c.params.insert((*k).into(), v.clone());
    }
    c
}

#[test]
fn build_picks_the_method_and_its_settings_and_parts_sum_to_the_loss() {
    let s = t2(&[[2.0, 0.0], [0.5, 1.0]]);
    let t = t2(&[[0.0, 1.0], [1.0, 3.0]]);
    let y = Tensor::from_slice(&[0i64, 1]);
    let batch = Batch {
        student: &s,
        teacher: &t,
        labels: &y,
        epoch: 1,
        layers: Vec::new(),
    };
    let hard = build(&cfg(Method::Hard, &[]));
    close(
        &total(&hard.parts(&batch)),
        hard_label_loss(&s, &t).double_value(&[]),
    );
    let soft = cfg(Method::Soft, &[("alpha", toml::Value::Float(0.5))]);
    let parts = build(&soft).parts(&batch);
    assert_eq!(
        parts.iter().map(|p| p.name).collect::<Vec<_>>(),
        ["ce", "kd"]
    );
    close(
        &total(&parts),
        soft_kd_loss(&s, &t, &y, 4.0, 0.5).double_value(&[]),
    );
    // Each part is reported unweighted: `ce` is the plain cross-entropy, comparable with a
    // baseline's.
    close(&parts[0].value, cross_entropy(&s, &y).double_value(&[]));
    // DKD at its first epoch of a 20-epoch warm-up weighs TCKD and NCKD by 1/20.
    let parts = build(&cfg(Method::Dkd, &[])).parts(&batch);
    assert_eq!(
        parts.iter().map(|p| (p.name, p.weight)).collect::<Vec<_>>(),
        [("ce", 1.0), ("tckd", 0.05), ("nckd", 0.4)]
    );
    let parts = build(&cfg(Method::Dist, &[])).parts(&batch);
    assert_eq!(
        parts.iter().map(|p| p.name).collect::<Vec<_>>(),
        ["ce", "inter", "intra"]
    );
}

#[test]
fn every_method_declares_what_it_takes() {
    for method in Method::ALL {
        let spec = spec(method);
        assert_eq!(spec.name, method.as_str());
        for p in spec.params {
            if let Some(v) = p.default_value() {
                assert_eq!(
                    p.check(&v),
                    Ok(v.clone()),
                    "{}.{} default",
                    spec.name,
                    p.name
                );
            }
        }
    }
    let alpha = spec(Method::Soft).param("alpha").unwrap();
    assert!(alpha
        .check(&toml::Value::Float(1.5))
        .unwrap_err()
        .contains("within [0, 1]"));
    assert_eq!(
        alpha.check(&toml::Value::Integer(1)),
        Ok(toml::Value::Float(1.0))
    );
    let warmup = spec(Method::Dkd).param("warmup").unwrap();
    assert!(warmup.check(&toml::Value::Float(2.5)).is_err());
}
