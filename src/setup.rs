//! Set-up before any training: the preset (a file, the embedded default, or a stopped run's),
//! the device, the data, the models checked against the data, and the run folder. Everything
//! here that fails is bad input: exit code 2, before a run folder exists where it can be known.

use crate::config::{self, DataSource, Override, Preset};
use crate::data::Splits;
use crate::exit::Failure;
use crate::protocol::InputShape;
use crate::run::checkpoint::Checkpoint;
use crate::run::RunFolder;
use crate::train::TrainerSetup;
use std::path::Path;
use tch::Device;

/// A preset file (or a shipped preset's name: `config::shipped::load_named`), or the embedded
/// default, with overrides.
pub fn read_preset(
    path: Option<&Path>,
    overrides: &[Override],
) -> Result<Preset, config::PresetError> {
    match path {
        Some(path) => config::shipped::load_named(path, overrides),
        None => config::load(
            config::DEFAULT_PRESET,
            config::DEFAULT_PRESET_NAME,
            overrides,
        ),
    }
}

/// What `--resume` takes: a stopped run (not a completed one), with `--set` only of what may
/// change in a run's course (lr, batch size, epochs, the method and its hyperparameters).
pub fn check_resume(
    dir: &Path,
    ckpt: &Checkpoint,
    overrides: &[Override],
    world_size: usize,
) -> Result<(), String> {
    if ckpt.world_size != world_size {
        return Err(format!(
            "{} was trained by {} process(es) and would go on with {world_size}: its global batch \
             (batch_size x processes) would change; resume it with {}",
            dir.display(),
            ckpt.world_size,
            match ckpt.world_size {
                1 => "no --nproc".to_string(),
                n => format!("--nproc {n} (or as many ranks)"),
            }
        ));
    }
    if let Some(summary) = crate::run::completed_summary(dir) {
        // A completed run goes on only for more student epochs (from where each student
        // ended); its teacher stays: the students learned from it.
        let trained = [&summary.baseline, &summary.distilled]
            .into_iter()
            .flatten()
            .filter(|r| r.end_state.is_some())
            .map(|r| r.epochs_run)
            .max();
        let asked = overrides
            .iter()
            .find(|o| o.key == "student.epochs")
            .and_then(|o| o.value.parse::<usize>().ok());
        let teacher_kept = !overrides.iter().any(|o| o.key.starts_with("teacher."));
        match (trained, asked) {
            (Some(done), Some(more)) if more > done && teacher_kept => {}
            _ => {
                // A TorchScript teacher is its file (weights and code), not teacher.safetensors.
                let live = ckpt.live_preset(dir, &[]).ok();
                let teacher = match live
                    .as_ref()
                    .and_then(|p| p.teacher.model.torchscript_file())
                {
                    Some(path) => format!(
                        "teacher.model='{{ kind = \"torchscript\", path = \"{}\" }}'",
                        path.display()
                    ),
                    None => format!(
                        "teacher.checkpoint='\"{}\"'",
                        dir.join("teacher.safetensors").display()
                    ),
                };
                return Err(format!(
                    "{} completed; there is nothing to resume. To train its students longer: \
                     --set student.epochs=N (more than {}); to train on from its teacher, a new \
                     run with --set {teacher}",
                    dir.display(),
                    trained.map_or("the epochs they ran".into(), |d| d.to_string()),
                ));
            }
        }
    }
    let preset = ckpt.live_preset(dir, &[]).map_err(|e| e.to_string())?;
    let live = preset.live_keys();
    if let Some(o) = overrides
        .iter()
        .find(|o| !live.contains(&o.key) && !o.key.starts_with("distill."))
    {
        return Err(format!(
            "--set {}: a resumed run keeps its data, seed and models; it takes only {}",
            o.key, "lr, batch_size, epochs and distill.* keys"
        ));
    }
    // Errors in the overrides themselves are reported where the preset is loaded.
    let Ok(resumed) = ckpt.live_preset(dir, overrides) else {
        return Ok(());
    };
    let (asked, begun) = (resumed.student.epochs, ckpt.student_epochs_begun());
    if asked < begun {
        return Err(format!(
            "student.epochs = {asked}: a student of {} has begun {begun} epochs, and both \
             students end with the same number; resume with --set student.epochs={begun} or more",
            dir.display()
        ));
    }
    match ckpt.missing_files(dir, asked).as_slice() {
        [] => Ok(()),
        missing => Err(format!(
            "{} cannot be resumed: {} needs {}, which {} not there (nothing was changed)",
            dir.display(),
            crate::run::checkpoint::FILE,
            missing.join(", "),
            if missing.len() == 1 { "is" } else { "are" }
        )),
    }
}

/// The device and the data of a preset, with its models checked against the data; the preset
/// comes back with what the data decided (a CSV's classes).
pub fn prepare(mut preset: Preset) -> Result<(Preset, Splits, Device), Failure> {
    crate::train::threads::keep_serial();
    let spec = crate::device::parse(&preset.device).map_err(Failure::bad_input)?;
    let device =
        crate::device::resolve(spec).map_err(|e| Failure::bad_input(format!("device: {e}")))?;
    let data = crate::data::load(&preset.data, preset.seed).map_err(Failure::bad_input)?;
    check_models(&preset, &data.input, data.num_classes).map_err(Failure::bad_input)?;
    if [DataSource::Csv, DataSource::Images].contains(&preset.data.source) {
        // The run folder's preset.toml records which label value each class index stands for.
        preset.data.classes = Some(data.classes.clone());
    }
    if let (DataSource::Images, &[c, h, w]) = (preset.data.source, data.input.dims()) {
        // ... and the size and channels an image folder's defaults chose.
        (preset.data.channels, preset.data.size) = (Some(c), Some([h, w]));
    }
    Ok((preset, data, device))
}

/// Creates the run folder `dir` (or reopens it to resume).
pub fn open_run(dir: &Path, preset: &Preset, resuming: bool) -> Result<RunFolder, Failure> {
    match resuming {
        true => RunFolder::reopen(dir),
        false => RunFolder::create(dir, preset),
    }
    .map_err(|e| Failure::bad_input(format!("run folder {}: {e}", dir.display())))
}

/// The device, the data and the run folder `dir` of a preset (reopened when resuming).
pub fn setup_in(
    preset: Preset,
    dir: &Path,
    resume: Option<Checkpoint>,
) -> Result<TrainerSetup, Failure> {
    let (preset, data, device) = prepare(preset)?;
    let run = open_run(dir, &preset, resume.is_some())?;
    if let Some(ckpt) = &resume {
        // What the stopped process recorded past its checkpoint is trained again.
        crate::run::history::cut_after(&run.path("metrics.jsonl"), |phase, step| {
            ckpt.covers(phase, step)
        })
        .map_err(|e| Failure::bad_input(format!("{}: {e}", run.path("metrics.jsonl").display())))?;
    }
    Ok(TrainerSetup {
        preset,
        data,
        device,
        run,
        resume,
        world: None,
    })
}

/// Set-up's model and data checks for several presets (a sweep's points, each with where it
/// comes from), each data configuration loaded once: a point is refused before anything trains.
pub fn check_all(presets: &[(String, Preset)]) -> Result<(), Failure> {
    crate::train::threads::keep_serial();
    let mut loaded: Vec<(String, InputShape, usize)> = Vec::new();
    for (origin, preset) in presets {
        let key = serde_json::to_string(&preset.data).unwrap_or_default();
        let (input, classes) = match loaded.iter().find(|(k, ..)| *k == key) {
            Some((_, input, classes)) => (input.clone(), *classes),
            None => {
                let data = crate::data::load(&preset.data, preset.seed)
                    .map_err(|e| Failure::bad_input(format!("{origin}: {e}")))?;
                loaded.push((key, data.input.clone(), data.num_classes));
                (data.input, data.num_classes)
            }
        };
        check_models(preset, &input, classes)
            .map_err(|e| Failure::bad_input(format!("{origin}: {e}")))?;
    }
    Ok(())
}

/// Refuses a model or an augmentation the data's shape cannot take, naming the key.
fn check_models(preset: &Preset, input: &InputShape, classes: usize) -> Result<(), String> {
    for (role, net) in [("teacher", &preset.teacher), ("student", &preset.student)] {
        crate::model::check_fits(&net.model, input)
            .map_err(|e| format!("key `{role}.model`: {e}"))?;
        crate::data::augment::check(&net.augment, input)
            .map_err(|e| format!("key `{role}.augment`: {e}"))?;
        if let Some(path) = net.model.torchscript_file() {
            crate::inspect::check_torchscript(path, input, classes)
                .map_err(|e| format!("key `{role}.model`: {}: {e}", path.display()))?;
        }
    }
    for (key, init) in [
        ("student.init", preset.student.init),
        ("student.baseline_init", preset.student.baseline_init),
    ] {
        if init == config::WeightInit::Teacher {
            crate::model::select::check(&preset.teacher.model, &preset.student.model).map_err(
                |e| {
                    format!("key `{key}`: the student cannot start from the teacher's weights: {e}")
                },
            )?;
        }
    }
    if let Some(path) = &preset.teacher.checkpoint {
        crate::inspect::check_weights(&preset.teacher.model, input, classes, path)
            .map_err(|e| format!("key `teacher.checkpoint`: {}: {e}", path.display()))?;
    }
    crate::inspect::check_feature_layers(preset, input, classes)
}
