//! kd-tui's losses against plain-PyTorch implementations of the published formulas
//! (`scripts/reference_losses.py`, run by the Python that the set-up installs) on random logits.

mod common;

use kd_tui::distill;
use tch::{Device, Kind, Tensor};

fn rows(t: &Tensor) -> Vec<Vec<f64>> {
    let n = t.size()[0];
    (0..n)
        .map(|i| Vec::try_from(t.get(i).to_kind(Kind::Double)).unwrap())
        .collect()
}

#[test]
fn losses_agree_with_the_pytorch_reference_on_random_logits() {
    let Some(python) = common::python_with_torch() else {
        return;
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/reference_losses.py");
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
        let mut child = std::process::Command::new(python)
            .arg(script)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        serde_json::to_writer(child.stdin.take().unwrap(), &input).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "reference script failed");
        let want: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let (tckd, nckd) = distill::dkd_parts(&s, &t, &y, temperature);
        let (inter, intra) = distill::dist_parts(&s, &t, tau);
        // The fused step (what training runs on the CPU) reports the same two terms.
        let (_, fused_ce, fused_kl) = distill::soft_kd_fused(&s, &t, &y, temperature, 0.5).unwrap();
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
        ] {
            let (got, want) = (got.double_value(&[]), want[name].as_f64().unwrap());
            // float32 here against float64 there: agreement to 1e-5, relative for large values.
            assert!(
                (got - want).abs() <= 1e-5 * want.abs().max(1.0),
                "{name} (batch {batch}, {classes} classes, T {temperature}, tau {tau}): {got} vs {want}"
            );
        }
    }
}
