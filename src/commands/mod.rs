//! The subcommands that have no module of their own elsewhere: each takes the domain's options (never
//! clap's) and returns the process exit code. `report`, `export`, `manifest`/`diff` and `verify` live in
//! their modules; `app.rs` dispatches.

pub mod download;
pub mod status;
