//! Tests of `targets.rs`: the teacher's logits looked up by view.

use super::*;
use rand::{rngs::StdRng, SeedableRng};

/// Digits, and a CNN teacher of those `channels` (untrained) for its 8x8 images.
fn digits_and_cnn(channels: &str) -> (crate::data::Splits, Model) {
    let preset = crate::config::load(crate::config::DIGITS_PRESET, "d", &[]).unwrap();
    let data = crate::data::load(&preset.data, preset.seed).unwrap();
    let cfg: crate::config::ModelConfig = toml::from_str::<toml::Table>(&format!(
        "m = {{ kind = \"cnn\", channels = {channels}, kernel = 3, hidden = [16] }}"
    ))
    .unwrap()["m"]
        .clone()
        .try_into()
        .unwrap();
    let teacher = Model::new(&cfg, &data.input, data.num_classes, tch::Device::Cpu).unwrap();
    (data, teacher)
}

/// The teacher's logits looked up from its views equal its forward pass on the augmented
/// batch, for shifts alone and with flips; the wrong views' logits do not.
#[test]
fn logits_looked_up_by_view_are_the_teachers_on_the_augmented_batch() {
    let (data, teacher) = digits_and_cnn("[4]");
    let train = &data.train.features;
    let n = train.len() as usize;
    for (augment, views) in [
        (
            Augment {
                shift: 1,
                flip: false,
            },
            9,
        ),
        (
            Augment {
                shift: 2,
                flip: true,
            },
            50,
        ),
    ] {
        let plan = Plan::new(&augment, &data.input, false, n, data.num_classes);
        assert_eq!(plan.rows(n), Some(views * n));
        let mut told = Vec::new();
        let targets = TeacherTargets::new(
            &teacher,
            train,
            plan,
            &[],
            None,
            None,
            &mut |done, total, _, _| told.push((done, total)),
        );
        let from_cache = false;
        assert_eq!(targets.outputs, TeacherOutputs::Views { views, from_cache });
        assert_eq!(told.first(), Some(&(0, views * n)));
        assert_eq!(told.last(), Some(&(views * n, views * n)));
        // A batch from all over the training set, the last example included.
        let idx = Tensor::from_slice(&[n as i64 - 1, 0, 7, 500, 3, 999, 64, 1000]);
        let x = train.rows(&idx);
        let mut rng = StdRng::seed_from_u64(4);
        let (x, drawn) = augment::apply_drawn(&x, &data.input, &augment, &mut rng);
        let (looked_up, _) = targets.for_batch(&idx, Some(&drawn), &x, &[]);
        let forward = teacher.logits(&x);
        assert!(
            looked_up.allclose(&forward, 1e-5, 1e-5, false),
            "{augment:?}: {looked_up} vs {forward}"
        );
        let wrong = (&drawn + 1).remainder(views as i64);
        let (other, _) = targets.for_batch(&idx, Some(&wrong), &x, &[]);
        assert!(!other.allclose(&forward, 1e-3, 1e-3, false), "{augment:?}");
    }
    // Flat data, `hint`'s guided layer or too many bytes: the teacher runs per batch.
    let shift = Augment {
        shift: 1,
        flip: false,
    };
    let flat = InputShape::flat(64);
    assert_eq!(Plan::new(&shift, &flat, false, n, 10), Plan::PerBatch);
    assert_eq!(Plan::new(&shift, &data.input, true, n, 10), Plan::PerBatch);
    let rows = VIEWS_BYTES / (9 * 10 * 4);
    assert!(matches!(
        Plan::new(&shift, &data.input, false, rows, 10),
        Plan::Views { .. }
    ));
    assert_eq!(
        Plan::new(&shift, &data.input, false, rows + 1, 10),
        Plan::PerBatch
    );
    assert_eq!(
        Plan::new(&Augment::default(), &flat, true, n, 10),
        Plan::Once
    );
}

/// Several guided layers computed once over the training set (one pass, side by side) are
/// each layer's own outputs, as the teacher gives them per batch, and in the order asked; none
/// when an epoch asks for none.
#[test]
fn guided_layers_computed_once_are_the_teachers_per_batch_outputs() {
    let (data, teacher) = digits_and_cnn("[4, 8]");
    let train = &data.train.features;
    let layers = ["features.1", "features.0", "classifier.0"];
    let mut told = Vec::new();
    let targets = TeacherTargets::new(
        &teacher,
        train,
        Plan::Once,
        &layers,
        None,
        None,
        &mut |done, total, _, layer| told.push((done, total, layer.map(String::from))),
    );
    let names = "features.1, features.0, classifier.0".to_string();
    assert_eq!(
        told.last(),
        Some(&(train.len() as usize, train.len() as usize, Some(names)))
    );
    let idx = Tensor::from_slice(&[5i64, 0, 17]);
    let x = train.rows(&idx);
    let (_, cached) = targets.for_batch(&idx, None, &x, &layers);
    let per_batch = TeacherTargets {
        teacher: &teacher,
        source: Source::PerBatch,
        outputs: TeacherOutputs::PerBatch,
        cache_rejected: None,
    };
    let (_, forward) = per_batch.for_batch(&idx, None, &x, &layers);
    assert_eq!(cached.len(), 3);
    for ((c, f), name) in cached.iter().zip(&forward).zip(layers) {
        assert_eq!(c.size(), f.size(), "{name}");
        assert!(c.allclose(f, 1e-5, 1e-5, false), "{name}");
    }
    assert_eq!(cached[0].size(), [3, 8, 2, 2]);
    assert!(targets.for_batch(&idx, None, &x, &[]).1.is_empty());
}
