//! The `kinetics-testsrc` binary: ready line, flags and config file, and both ways of stopping it.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{get, scratch_dir, wait_for};

fn spawn_bin(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_kinetics-testsrc"))
        .args(["--listen", "127.0.0.1:0", "--duration", "30"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// Reads the one `listening on http://ADDR` line, with a deadline in case the binary hangs.
fn ready_addr(child: &mut Child) -> SocketAddr {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(120)).expect("ready line within the deadline");
    let addr = line.trim_end().strip_prefix("listening on http://").unwrap_or_else(|| panic!("line {line:?}"));
    addr.parse().unwrap()
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let status = wait_for(Duration::from_secs(20), || child.try_wait().unwrap());
    status.unwrap_or_else(|| {
        let _ = child.kill();
        panic!("the server did not exit");
    })
}

#[test]
fn exits_when_stdin_closes() {
    let mut child = spawn_bin(&["--exit-on-stdin-eof", "--scenario", "gone=status:410"]);
    let addr = ready_addr(&mut child);
    assert_eq!(get(addr, "/v/abc.mp4", &[("Range", "bytes=0-9")]).status, 206);
    assert_eq!(get(addr, "/v/gone.mp4", &[]).status, 410);
    drop(child.stdin.take());
    assert!(wait_exit(&mut child).success());
}

#[test]
fn config_file_and_sigterm() {
    let dir = scratch_dir("cli");
    let config = dir.join("config.json");
    std::fs::write(&config, r#"{"scenario": {"flaky": "fail_then_ok:503:1"}, "ip_throttle": {"enabled": false}}"#)
        .unwrap();
    std::fs::write(dir.join("a.txt"), "hello").unwrap();
    let mut child = spawn_bin(&["--config", config.to_str().unwrap(), "--static", dir.to_str().unwrap()]);
    let addr = ready_addr(&mut child);
    assert_eq!(get(addr, "/v/flaky.mp4", &[]).status, 503);
    assert_eq!(get(addr, "/v/flaky.mp4", &[("Range", "bytes=0-0")]).status, 206);
    assert_eq!(get(addr, "/files/a.txt", &[]).body, b"hello");
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    assert!(wait_exit(&mut child).success(), "SIGTERM is a clean shutdown");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_config_is_an_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_kinetics-testsrc"))
        .args(["--listen", "127.0.0.1:0", "--duration", "0"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    assert!(String::from_utf8_lossy(&output.stderr).contains("duration must be positive"));
}
