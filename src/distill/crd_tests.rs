use super::*;
use crate::distill::test_util::close;

fn spec(negatives: i64) -> ContrastSpec {
    ContrastSpec {
        dim: 4,
        negatives,
        temperature: 0.5,
        momentum: 0.5,
    }
}

#[test]
fn nce_of_a_hand_made_batch() {
    // Odds 1 for the positive (log 1/2) and 1 and 3 for the negatives (log 1/2, log 1/4);
    // odds 3 for the positive (log 3/4) and 0 for the negatives (log 1) in the second row.
    let odds = Tensor::from_slice(&[1f32, 1., 3., 3., 0., 0.]).view([2, 3]);
    let want = -((0.5f64).ln() + (0.5f64).ln() + (0.25f64).ln() + (0.75f64).ln()) / 2.0;
    close(&nce_loss(&odds), want);
}

#[test]
fn the_banks_move_towards_the_batch_and_z_is_set_once() {
    tch::manual_seed(1);
    let head = ContrastHead::new(Device::Cpu, spec(3), &[5], &[2, 2, 2], 6);
    assert_eq!(
        crate::distill::head::trainable_params(&head.vs),
        (5 * 4 + 4) + (8 * 4 + 4),
        "the heads only, not the banks"
    );
    let before = head.student_bank.copy();
    let untouched = before.get(0);
    let s = Tensor::randn([2, 5], (Kind::Float, Device::Cpu));
    let t = Tensor::randn([2, 2, 2, 2], (Kind::Float, Device::Cpu));
    let idx = Tensor::from_slice(&[4i64, 2]);
    let (odds_s, odds_t) = head.odds(&s, &t, &idx);
    assert_eq!(odds_s.size(), [2, 4], "the positive and 3 negatives");
    assert_eq!(odds_t.size(), [2, 4]);
    // Row 4 of the student's bank: normalize(0.5 * old + 0.5 * v_s[0]).
    let v = unit_rows(&head.student.forward(&s));
    let moved = unit_rows(&(before.get(4) * 0.5 + v.get(0) * 0.5).unsqueeze(0)).squeeze();
    let gap = (head.student_bank.get(4) - moved).abs().max();
    close(&gap, 0.0);
    close(&(head.student_bank.get(0) - untouched).abs().max(), 0.0);
    // Z: the first batch's mean score times the rows; kept for the next batch.
    let z = head.z.copy();
    assert!(z.double_value(&[0]) > 0.0 && z.double_value(&[1]) > 0.0);
    let _ = head.odds(&s, &t, &idx);
    close(&(head.z.copy() - z).abs().max(), 0.0);
    // The banks and Z are the store's variables (checkpoints hold them), not trainable.
    let names: Vec<String> = head.vs.variables().into_keys().collect();
    for name in ["crd.bank_s", "crd.bank_t", "crd.z"] {
        assert!(names.iter().any(|n| n == name), "{names:?}");
    }
}

#[test]
fn negatives_are_capped_at_the_banks_rows() {
    let head = ContrastHead::new(Device::Cpu, spec(16384), &[3], &[3], 5);
    let x = Tensor::randn([2, 3], (Kind::Float, Device::Cpu));
    let (odds, _) = head.odds(&x, &x, &Tensor::from_slice(&[0i64, 1]));
    assert_eq!(odds.size(), [2, 6]);
}
