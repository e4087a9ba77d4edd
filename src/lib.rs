//! kinetics-dl: build Kinetics-style datasets from annotation files.
//!
//! The binary in `main.rs` is thin; everything it does lives here so that tests and benchmarks can drive
//! the same code.

pub mod annotations;
pub mod classify;
pub mod dataset;
pub mod doctor;
pub mod exit_codes;
pub mod plan;
pub mod relay;
pub mod retry;
pub mod manifest;
pub mod report;
pub mod app;
pub mod cli;
pub mod config;
pub mod download;
pub mod journal;
pub mod progress;
pub mod summary;
pub mod tools;
pub mod mirror;
pub mod export;
pub mod verify;
pub mod governor;
