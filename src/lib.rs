//! kd-tui: a terminal training cockpit for knowledge distillation.
//!
//! One direction: `protocol` (the seam's serde types) and `distill` (losses, method registry)
//! -> `config` -> `data` -> `model` -> `run` (the run folder's files) -> `train` (its own OS
//! thread, `protocol` in and out) -> `setup` -> `series` -> `front` (`batch`, `tui`) -> `cli`,
//! which nothing imports. ARCHITECTURE.md's layers (held by tests/architecture.rs) say exactly.

pub mod cli;
pub mod collective;
pub mod config;
pub mod console;
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
pub mod memory;
pub mod model;
pub mod protocol;
pub mod random;
pub mod remote;
pub mod run;
pub mod series;
pub mod setup;
pub mod train;
pub mod user_dirs;
