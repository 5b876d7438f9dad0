//! kd-tui: a terminal training cockpit for knowledge distillation.
//!
//! Flow, one direction: `preset` -> `data` -> `model` -> `distill` (losses) -> `trainer` ->
//! {`tui`, `batch`}. The trainer runs on its own OS thread; both front ends consume its events.

pub mod batch;
pub mod checkpoint;
pub mod cli;
pub mod data;
pub mod device;
pub mod distill;
pub mod events;
pub mod fault;
pub mod model;
pub mod plots;
pub mod preset;
pub mod run;
pub mod seed;
pub mod summary;
pub mod trainer;
pub mod tui;
