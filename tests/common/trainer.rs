//! Driving a trainer in the test's own process, through `TrainerHandle`, as a front end does.

use kd_tui::config::{self, Override};
use kd_tui::protocol::Stamped;
use kd_tui::run::RunFolder;
use kd_tui::train::{self, TrainerHandle, TrainerSetup};
use std::path::Path;
use std::time::{Duration, Instant};

/// A trainer on the embedded digits preset with `overrides`, writing its run folder `dir`.
pub fn start(dir: &Path, overrides: &[&str]) -> TrainerHandle {
    let overrides: Vec<Override> = overrides.iter().map(|o| o.parse().unwrap()).collect();
    let preset = config::load(config::DIGITS_PRESET, "default", &overrides).unwrap();
    let data = kd_tui::data::load(&preset.data, preset.seed).unwrap();
    let run = RunFolder::create(dir, &preset).unwrap();
    train::spawn(TrainerSetup {
        preset,
        data,
        device: tch::Device::Cpu,
        run,
        resume: None,
        world: None,
    })
}

/// The next reliable event that `matches`, skipping others; panics after 60 s.
pub fn next_event(
    handle: &mut TrainerHandle,
    what: &str,
    matches: impl Fn(&Stamped) -> bool,
) -> Stamped {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        match handle.events.try_recv() {
            Ok(e) if matches(&e) => return e,
            Ok(_) => {}
            Err(tokio::sync::mpsc::error::TryRecvError::Empty) => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => panic!("event stream ended while waiting for {what}: {e}"),
        }
    }
}
