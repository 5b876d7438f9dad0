//! kd-tui's losses against plain-PyTorch implementations of the published formulas
//! (`scripts/reference_losses.py`, run by the Python that the set-up installs) on random logits.

mod common;

use kd_tui::distill::{self, DistillConfig, Method};
use tch::{Device, Kind, Tensor};

fn rows(t: &Tensor) -> Vec<Vec<f64>> {
    let n = t.size()[0];
    (0..n)
        .map(|i| Vec::try_from(t.get(i).to_kind(Kind::Double)).unwrap())
        .collect()
}

/// The reference script's answer to `input`.
fn reference(python: &str, input: &serde_json::Value) -> serde_json::Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/reference_losses.py");
    let mut child = std::process::Command::new(python)
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    serde_json::to_writer(child.stdin.take().unwrap(), input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "reference script failed");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// float32 here against float64 there: agreement to 1e-5, relative for large values.
fn agree(name: &str, got: &Tensor, want: &serde_json::Value, case: &str) {
    let (got, want) = (got.double_value(&[]), want[name].as_f64().unwrap());
    assert!(
        (got - want).abs() <= 1e-5 * want.abs().max(1.0),
        "{name} ({case}): {got} vs {want}"
    );
}

#[test]
fn losses_agree_with_the_pytorch_reference_on_random_logits() {
    let Some(python) = common::python_with_torch() else {
        return;
    };
    for (seed, (batch, classes, temperature, tau)) in
        [(16, 10, 4.0, 1.0), (7, 3, 1.0, 4.0), (32, 100, 20.0, 2.0)]
            .into_iter()
            .enumerate()
    {
        tch::manual_seed(seed as i64);
        let opts = (Kind::Float, Device::Cpu);
        let s = Tensor::randn([batch, classes], opts) * 3.0;
        let t = Tensor::randn([batch, classes], opts) * 3.0;
        let y = Tensor::randint(classes, [batch], (Kind::Int64, Device::Cpu));
        let input = serde_json::json!({
            "student": rows(&s),
            "teacher": rows(&t),
            "labels": Vec::<i64>::try_from(&y).unwrap(),
            "settings": {"temperature": temperature, "tau": tau},
        });
        let want = reference(python, &input);
        let (tckd, nckd) = distill::dkd_parts(&s, &t, &y, temperature);
        let (inter, intra) = distill::dist_parts(&s, &t, tau);
        // The fused step (what training runs on the CPU) reports the same two terms.
        let (_, fused_ce, fused_kl) = distill::soft_kd_fused(&s, &t, &y, temperature, 0.5).unwrap();
        // Logit standardisation: the same losses of the z-scored logits, in double precision
        // (the losses keep their inputs' kind): z-scored logits divided by a large T give nearly
        // uniform distributions, whose KL float32 resolves only to about 2e-5 at T = 20.
        let (s, t) = (s.to_kind(Kind::Double), t.to_kind(Kind::Double));
        let (zs, zt) = (distill::standardize(&s), distill::standardize(&t));
        let (tckd_std, nckd_std) = distill::dkd_parts(&zs, &zt, &y, temperature);
        let (inter_std, intra_std) = distill::dist_parts(&zs, &zt, tau);
        let case = format!("batch {batch}, {classes} classes, T {temperature}, tau {tau}");
        for (name, got) in [
            ("ce", Tensor::from(fused_ce)),
            ("soft_kl", Tensor::from(fused_kl)),
            ("ce", distill::cross_entropy(&s, &y)),
            ("hard", distill::hard_label_loss(&s, &t)),
            ("soft_kl", distill::soft_kl(&s, &t, temperature)),
            ("tckd", tckd),
            ("nckd", nckd),
            ("inter", inter),
            ("intra", intra),
            ("soft_kl_std", distill::soft_kl(&zs, &zt, temperature)),
            ("tckd_std", tckd_std),
            ("nckd_std", nckd_std),
            ("inter_std", inter_std),
            ("intra_std", intra_std),
        ] {
            agree(name, &got, &want, &case);
        }
        // What the methods train on with `standardize = true` (soft: its autograd parts, not
        // the fused host step): parts named `*_std`, of the reference's values.
        let batch = distill::Batch {
            student: &s,
            teacher: &t,
            labels: &y,
            epoch: 1000,
            layers: Vec::new(),
        };
        for (method, parts) in [
            (Method::Soft, &["ce", "kd_std"][..]),
            (Method::Dkd, &["ce", "tckd_std", "nckd_std"]),
            (Method::Dist, &["ce", "inter_std", "intra_std"]),
        ] {
            let mut cfg = DistillConfig {
                method,
                params: [
                    ("standardize", toml::Value::Boolean(true)),
                    ("temperature", toml::Value::Float(temperature)),
                    ("tau", toml::Value::Float(tau)),
                ]
                .into_iter()
                .filter(|(k, _)| distill::spec(method).param(k).is_some())
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            };
            cfg.complete();
            let distill::StepLoss::Parts(got) = distill::build(&cfg).step_loss(&batch) else {
                panic!("{method:?}: standardised logits train through the autograd parts");
            };
            assert_eq!(got.iter().map(|p| p.name).collect::<Vec<_>>(), parts);
            let reference_names = ["ce", "soft_kl_std"];
            for (i, part) in got.iter().enumerate() {
                let name = match (method, i) {
                    (Method::Soft, i) => reference_names[i],
                    _ => part.name,
                };
                agree(name, &part.value, &want, &case);
            }
        }
    }
}

#[test]
fn feature_losses_agree_with_the_pytorch_reference() {
    let Some(python) = common::python_with_torch() else {
        return;
    };
    let opts = (Kind::Float, Device::Cpu);
    // Maps of the same size, maps of different sizes (AT pools the larger), an MLP student's
    // vectors against a CNN teacher's maps (AT does not apply).
    let cases: [(&[i64], &[i64]); 4] = [
        (&[8, 4, 6, 6], &[8, 6, 6, 6]),
        (&[6, 3, 4, 4], &[6, 5, 2, 2]),
        (&[5, 2, 2, 2], &[5, 3, 4, 4]),
        (&[16, 32], &[16, 8, 3, 3]),
    ];
    for (seed, (student_shape, teacher_shape)) in cases.into_iter().enumerate() {
        tch::manual_seed(100 + seed as i64);
        let s = Tensor::randn(student_shape, opts);
        let t = Tensor::randn(teacher_shape, opts) * 2.0;
        let flat =
            |x: &Tensor| Vec::<f64>::try_from(x.reshape([-1]).to_kind(Kind::Double)).unwrap();
        let input = serde_json::json!({"features": {
            "student": flat(&s), "student_shape": student_shape,
            "teacher": flat(&t), "teacher_shape": teacher_shape,
        }});
        let want = reference(python, &input);
        let case = format!("student {student_shape:?}, teacher {teacher_shape:?}");
        let (distance, angle) = distill::rkd_parts(&s, &t);
        for (name, got) in [
            ("sp", distill::sp_loss(&s, &t)),
            ("rkd_distance", distance),
            ("rkd_angle", angle),
            ("pkt", distill::pkt_loss(&s, &t)),
        ] {
            agree(name, &got, &want, &case);
        }
        match want["at"].is_null() {
            true => assert_eq!(student_shape.len(), 2),
            false => agree("at", &distill::at_loss(&s, &t, 2.0), &want, &case),
        }
    }
}

#[test]
fn crd_nce_agrees_with_the_authors_contrast_loss() {
    let Some(python) = common::python_with_torch() else {
        return;
    };
    for (seed, (batch, negatives, rows)) in [(8, 16, 100), (5, 200, 300), (32, 1000, 1000)]
        .into_iter()
        .enumerate()
    {
        tch::manual_seed(200 + seed as i64);
        // Scores as the memory gives them: exp(<v, m> / 0.07) / Z, about 1 / rows each.
        let dots = Tensor::rand([batch, 1 + negatives], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
        let h = (dots / 0.07).exp();
        let h = &h / (h.mean(Kind::Float) * rows as f64);
        let scores = Vec::<f64>::try_from(h.reshape([-1]).to_kind(Kind::Double)).unwrap();
        let input = serde_json::json!({"contrast": {
            "scores": scores, "shape": [batch, 1 + negatives], "n_data": rows,
        }});
        let want = reference(python, &input);
        let odds = &h / (negatives as f64 / rows as f64);
        let case = format!("batch {batch}, {negatives} negatives of {rows}");
        agree("crd_nce", &distill::nce_loss(&odds), &want, &case);
    }
}
