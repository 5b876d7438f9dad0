//! `tch::manual_seed` replays the CPU's dropout mask, and another seed draws another. A test
//! binary of its own: libtorch's generator is the process's, and the unit tests running beside
//! it in one process draw from it between a seed and its mask.

use tch::{Device, Kind, Tensor};

fn mask(seed: i64) -> Tensor {
    tch::manual_seed(seed);
    let ones = Tensor::ones([4096], (Kind::Float, Device::Cpu));
    kd_tui::model::dropout(&ones, 0.3, true)
}

#[test]
fn the_seed_replays_the_mask_and_another_seed_changes_it() {
    let a = mask(11);
    assert!(a.equal(&mask(11)));
    assert!(!a.equal(&mask(12)));
}
