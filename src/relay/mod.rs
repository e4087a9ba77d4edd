//! The media relay: ffmpeg reads `http://127.0.0.1:PORT/m/<token>` from us and we fetch the media URL
//! upstream in bounded `Range: bytes=a-b` pieces.
//!
//! YouTube serves open-ended ranges (`bytes=N-`, which is all ffmpeg 5.1 sends) with more than ~10 MB
//! left at ~32 KiB/s; bounded pieces are served at full speed. Sitting in the middle also gives exact
//! per-clip byte accounting, retries of upstream hiccups, and per-clip egress (the caller's client).

mod cache;
mod config;
mod http;
mod mp4;
mod registry;
mod server;
mod transfer;
mod upstream;

pub use config::RelayConfig;
pub use registry::{Expect, Registration, RelayTotals, UpstreamError};
pub use server::Relay;
