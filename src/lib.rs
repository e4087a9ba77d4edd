//! kinetics-dl: build Kinetics-style datasets from annotation files.
//!
//! The binary in `main.rs` is thin; everything it does lives here so that tests and benchmarks can drive
//! the same code.

pub mod annotations;
pub mod app;
pub mod classify;
pub mod cli;
pub mod commands;
pub mod config;
pub mod content_range;
pub mod cpu;
pub mod dataset;
pub mod doctor;
pub mod download;
pub mod exit_codes;
pub mod export;
pub mod fleet;
pub mod governor;
pub mod isobmff;
pub mod journal;
pub mod manifest;
pub mod mirror;
pub mod outdir;
pub mod plan;
pub mod progress;
pub mod relay;
pub mod report;
pub mod resumable;
pub mod retry;
pub mod shard;
pub mod summary;
pub mod tools;
pub mod units;
pub mod verify;
