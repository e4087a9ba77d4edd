//! Shared helpers for the end-to-end tests: run the real binary, serve videos with the local test source,
//! write annotation files, and inspect what a run left in OUT (journal, logs, clips, processes).
//!
//! Every test builds its own temp dirs and its own server, so tests can run in parallel processes.
#![allow(dead_code, unused_imports)]

pub mod inspect;
pub mod procs;
pub mod rows;
pub mod run;

pub use inspect::*;
pub use procs::*;
pub use rows::*;
pub use run::*;

use std::time::{Duration, Instant};

use kinetics_testsrc::{spawn, Config, TestServer};

/// Frames per second of every served video (the test source's default profile).
pub const FPS: u32 = 15;
/// Length of the default video the tests serve: long enough for real rows, short enough to encode fast.
pub const VIDEO_SECS: f64 = 60.0;
/// The pipeline's own tolerance on a clip's duration (a frame or two at each end).
pub const DURATION_TOLERANCE: f64 = 0.35;
/// Requests that reach the source this soon after one it answered with 429 were sent before that answer
/// could be back (a loaded machine's loopback round trip and the relay's reaction).
pub const IN_FLIGHT_MS: u64 = 250;

/// The default test-source config: 60 s, 320x180, 15 fps, 2 s GOP, with audio.
pub fn config() -> Config {
    Config::for_tests().with_duration(VIDEO_SECS)
}

/// Starts a test source on a free loopback port.
pub fn server(config: Config) -> TestServer {
    spawn(config, "127.0.0.1:0".parse().unwrap()).expect("the test source starts")
}

/// Polls `ready` every 50 ms until it holds; panics with `what` after `limit`.
pub fn wait_until(limit: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Requests per id seen by the server, without the log (cheap to compare).
pub fn requests_by_id(server: &TestServer) -> std::collections::BTreeMap<String, u64> {
    server.stats().ids.into_iter().map(|(id, s)| (id, s.requests)).collect()
}

/// Writes an executable `sh` script (a stand-in program wrapping the real tool) and returns its path.
pub fn write_script(dir: &std::path::Path, name: &str, body: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write the script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("make it executable");
    path
}
