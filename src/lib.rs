//! kd-tui: a terminal training cockpit for knowledge distillation.
//!
//! Flow, one direction: `config` -> `data` -> `model` -> `distill` (losses) -> `train` (its own
//! OS thread, `protocol` in and out) -> `run` (the run folder) -> front ends (`tui`, `batch`, both
//! over `consumer`; `export`). See ARCHITECTURE.md.

pub mod batch;
pub mod cli;
pub mod config;
pub mod consumer;
pub mod data;
pub mod device;
pub mod dist;
pub mod distill;
pub mod doctor;
pub mod export;
pub mod fault;
pub mod inspect;
pub mod malloc;
pub mod model;
pub mod protocol;
pub mod remote;
pub mod run;
pub mod seed;
pub mod seeds;
pub mod series;
pub mod sweep;
pub mod train;
pub mod tui;
