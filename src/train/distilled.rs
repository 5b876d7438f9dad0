//! The distilled phase's set-up: the teacher's targets (cached outputs, over every view of the
//! training set when the student's inputs are augmented, or per batch; with the output of the
//! teacher layer a feature-based method names), `hint`'s regressor, and the key the output cache
//! uses.

use super::cache::TeacherCache;
use super::epoch::Distilling;
use super::optim::Optimizer;
use super::phase::Trained;
use super::phase_run::PhaseRun;
use super::targets::{HeadKit, Plan, TeacherTargets};
use super::{PhaseEnd, Trainer};
use crate::config::NetConfig;
use crate::distill::{Head, HeadSpec};
use crate::model::{feature, Model};
use crate::protocol::summary::HintState;
use crate::protocol::Event;
use std::time::{Duration, Instant};

/// The least time between two reports of the teacher's outputs' progress.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

impl Trainer {
    /// The distilled phase: sets up the teacher's targets (and `hint`'s regressor, from
    /// `hint_state` on a resume), then trains.
    pub(super) fn train_distilled(
        &mut self,
        run: &mut PhaseRun,
        cfg: &NetConfig,
        teacher: &Model,
        model: &mut Model,
        opt: &mut Optimizer,
        hint_state: Option<HintState>,
    ) -> Result<Trained, PhaseEnd> {
        // Epoch 1 is in every method's feature stage (joint or first), if it has one.
        let guided: Vec<String> =
            (run.method.feature_layers(1)).map_or(Vec::new(), |names| names.teacher.clone());
        // A method with a head names one pair of layers.
        run.head = match (run.method.feature_layers(1), run.method.head()) {
            (Some(names), Some(spec)) => Some(self.head_kit(
                spec,
                cfg,
                teacher,
                model,
                &names.teacher[0],
                &names.student[0],
            )?),
            _ => None,
        };
        if let (Some(kit), Some(state)) = (run.head.as_mut(), hint_state) {
            super::resume::restore_head(kit, &state, &self.run).map_err(PhaseEnd::Failed)?;
        }
        let mut plan = Plan::new(
            &cfg.augment,
            &self.data.input,
            !guided.is_empty(),
            self.data.train.len(),
            self.data.num_classes,
        );
        let cache_of = |plan: &Plan| {
            plan.rows(self.data.train.len()).and_then(|rows| {
                TeacherCache::new(
                    teacher,
                    self.preset.teacher.model.torchscript_file(),
                    &self.data_key(plan),
                    rows,
                    self.data.num_classes,
                )
            })
        };
        let mut cache = cache_of(&plan);
        // The views cost V teacher passes over the training set, per batch one pass an epoch:
        // views when they are no more than the epochs, or (one process: ranks must agree)
        // when the cache holds them already.
        if let Plan::Views { views, .. } = plan {
            let cached =
                self.parallel.is_none() && cache.as_ref().is_some_and(|c| c.path().is_file());
            if views > cfg.epochs && !cached {
                plan = Plan::PerBatch;
                cache = None;
            }
        }
        let guided: Vec<&str> = guided.iter().map(String::as_str).collect();
        let threads = self.preset.threads;
        let (mut herald, data, world) = self.herald_beside_data();
        // The pass takes seconds on a CPU: the front ends show its progress, a few times a
        // second at most.
        let mut reported: Option<Instant> = None;
        let mut progress = |done: usize, total: usize, source, layer: Option<&str>| {
            if done == 0 || done >= total || reported.is_none_or(|t| t.elapsed() >= PROGRESS_EVERY)
            {
                reported = Some(Instant::now());
                herald.emit(Event::TeacherOutputs {
                    done,
                    total,
                    source,
                    layer: layer.map(String::from),
                });
            }
        };
        let targets = super::threads::for_forward(
            threads,
            teacher,
            &data.input,
            super::targets::CHUNK as usize,
            run.threads,
            || {
                TeacherTargets::new(
                    teacher,
                    &data.train.features,
                    plan,
                    &guided,
                    cache.as_ref(),
                    world,
                    &mut progress,
                )
            },
        );
        if let Some(why) = targets.cache_rejected.clone() {
            self.log(crate::protocol::LogLevel::Warn, why);
        }
        let distilling = Distilling { targets: &targets };
        let mut trained = self.train_epochs(run, model, opt, Some(distilling))?;
        let regressor_params = run.head.as_ref().map(|h| h.head.params());
        trained.teacher_outputs = Some(targets.outputs);
        trained.regressor_params = regressor_params;
        Ok(trained)
    }

    /// The method's head (`hint`'s regressor, `crd`'s heads and banks), shaped from one
    /// example's outputs of the two layers.
    fn head_kit(
        &self,
        spec: HeadSpec,
        cfg: &NetConfig,
        teacher: &Model,
        student: &Model,
        teacher_layer: &str,
        student_layer: &str,
    ) -> Result<HeadKit, PhaseEnd> {
        let one = self.data.train.features.narrow(0, 1);
        let shape = |m: &Model, layer: &str| {
            let f = tch::no_grad(|| feature(m.net.forward_features(&one, false).1, layer));
            f.size()[1..].to_vec()
        };
        let head = Head::new(
            spec,
            self.device,
            &shape(student, student_layer),
            &shape(teacher, teacher_layer),
            self.data.train.len() as i64,
        );
        let opt = Optimizer::new(cfg, head.vs());
        Ok(HeadKit { head, opt })
    }

    /// What the teacher-output cache keys the data by: source, preprocessing, split and seed,
    /// and the data's fingerprint (an image folder's listing, which the preset does not name);
    /// for the views of augmented inputs, the augmentation.
    fn data_key(&self, plan: &Plan) -> String {
        let views = match plan {
            Plan::Views { augment, .. } => {
                format!("|views shift {} flip {}", augment.shift, augment.flip)
            }
            Plan::Once | Plan::PerBatch => String::new(),
        };
        format!(
            "{}|seed {}|train {}{}{views}",
            serde_json::to_string(&self.preset.data).unwrap_or_default(),
            self.preset.seed,
            self.data.train.len(),
            self.data
                .fingerprint
                .as_ref()
                .map_or(String::new(), |f| format!("|data {f}"))
        )
    }
}
