//! kd-tui: a terminal training cockpit for knowledge distillation.
//!
//! Flow, one direction: `config` -> `data` -> `model` -> `distill` (losses) -> `train` (its own
//! OS thread, `protocol` in and out) -> `run` (the run folder) -> front ends (`tui`, `batch`, both
//! over `consumer`; `export`). See ARCHITECTURE.md.

pub mod cli;
pub mod collective;
pub mod config;
pub mod data;
pub mod device;
pub mod distill;
pub mod doctor;
pub mod exit;
pub mod export;
pub mod fault;
pub mod front;
pub mod inspect;
pub mod malloc;
pub mod model;
pub mod protocol;
pub mod random;
pub mod remote;
pub mod run;
pub mod series;
pub mod setup;
pub mod train;
