//! yt-dlp in long-lived Python workers (`--ytdlp-mode api`): the command line's work without a Python
//! start and a yt-dlp import per clip.
//!
//! Each worker runs `extractor.py` (embedded here, handed to `python -c` in the environment) with the Python that has
//! yt-dlp, and speaks one JSON object a line on its pipes: a request carries the very arguments the
//! command line would get (`YtDlp::args`), and the answer carries what yt-dlp printed to stdout and stderr
//! and the exit code, so both paths end in the same parsing and the same classifier. One pool per egress:
//! a worker only ever serves its egress's arguments (source address, proxy, cookies). A worker that dies
//! or does not answer within the timeout is stopped and its request goes once more to a new worker, so the
//! clip is not charged an attempt for it; a worker is retired after a bounded number of requests. The
//! worker that answered the run's first ping waits, idle, for the first egress that asks. Workers are
//! children like any other (`tools/process.rs`): own process group, death with us.

use super::process::{self, Spawned, StopSignal};
use super::Failure;
use crate::classify::Category;
use serde::Deserialize;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{ChildStdin, ChildStdout, Command};

/// The worker's program, shipped inside the binary.
pub const SCRIPT: &str = include_str!("extractor.py");

/// What `python -c` runs: the script, from the environment variable that carries it.
pub const BOOT: &str =
    "import os; exec(compile(os.environ.pop('KINETICS_DL_EXTRACTOR'), 'kinetics-dl-extractor', 'exec'))";

/// The worker's `sys.argv[1]`, which `ps` shows after `python -c ...`.
pub const WORKER_NAME: &str = "kinetics-dl-extractor";

/// What to do when the workers' Python is missing.
const PYTHON_HINT: &str = "install yt-dlp with pip (`pip install -U \"yt-dlp[default]\"`) or pass --ytdlp-python PATH";

/// How long a retiring worker may take to close its YoutubeDLs (saving cookies) before it is stopped.
const RETIRE_GRACE: Duration = Duration::from_secs(5);

/// The key of a worker that has served no egress yet (the run's first, which answered its ping): any
/// egress may take it.
const FRESH: &str = "";

/// The Python that runs the workers, and the yt-dlp zipapp to import from when yt-dlp is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Python {
    pub program: PathBuf,
    pub zipapp: Option<PathBuf>,
}

/// Bounds of a worker's life.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A request not answered within this is a hung worker: it is stopped and replaced.
    pub timeout: Duration,
    /// Requests a worker serves before it is replaced by a fresh one.
    pub recycle_after: u32,
    /// Idle workers kept over all egresses (the least recently used goes first): with many egresses, a
    /// worker for each would hold memory for nothing.
    pub max_idle: usize,
}

/// The Python of the yt-dlp program `ytdlp` (a name looked up on `path`, or a path): the interpreter its
/// `#!` line names (a yt-dlp zipapp is imported from the file itself), or the `python3` beside a shim
/// (pyenv's `shims/yt-dlp` picks the same version as `shims/python3`). `Err` says why there is none: a
/// wrapper script or a frozen binary runs only as a command line.
pub fn find_python(ytdlp: &Path, path: Option<&OsStr>) -> Result<Python, String> {
    let program = if ytdlp.components().count() > 1 {
        ytdlp.to_owned()
    } else {
        std::env::split_paths(path.ok_or("no PATH to look for yt-dlp on")?)
            .map(|dir| dir.join(ytdlp))
            .find(|p| p.is_file())
            .ok_or_else(|| format!("{} is not on PATH", ytdlp.display()))?
    };
    let mut head = vec![0u8; 512];
    let n = {
        use std::io::Read;
        let mut f = std::fs::File::open(&program).map_err(|e| format!("cannot read {}: {e}", program.display()))?;
        let mut n = 0;
        while n < head.len() {
            match f.read(&mut head[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) => return Err(format!("cannot read {}: {e}", program.display())),
            }
        }
        n
    };
    head.truncate(n);
    if !head.starts_with(b"#!") {
        return Err(format!("{} is not a script (a frozen binary runs only as a command line)", program.display()));
    }
    let end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    let (line, after) = (&head[2..end], head.get(end + 1..).unwrap_or_default());
    let words: Vec<String> = String::from_utf8_lossy(line).split_whitespace().map(str::to_owned).collect();
    // `#!/usr/bin/env python3` names the interpreter by its second word.
    let interpreter = match words.as_slice() {
        [env, name, ..] if env.ends_with("/env") => Some(PathBuf::from(name)),
        [exe, ..] => Some(PathBuf::from(exe)),
        [] => None,
    };
    let is_python = |p: &Path| p.file_name().and_then(OsStr::to_str).is_some_and(|n| n.starts_with("python"));
    match interpreter {
        Some(exe) if is_python(&exe) => {
            let zipapp = after.starts_with(b"PK\x03\x04").then(|| program.clone());
            Ok(Python { program: exe, zipapp })
        }
        _ => {
            let dir = program.parent().filter(|d| d.file_name() == Some(OsStr::new("shims")));
            match dir.map(|d| d.join("python3")).filter(|p| p.is_file()) {
                Some(python) => Ok(Python { program: python, zipapp: None }),
                None => Err(format!("{} is not a Python script", program.display())),
            }
        }
    }
}

/// What a worker says of itself.
#[derive(Debug, Clone, Deserialize)]
pub struct Ping {
    pub version: String,
    pub python: String,
    pub module: String,
}

/// What one run of yt-dlp inside a worker printed, as the command line would have printed it.
#[derive(Debug)]
pub struct Answer {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
    /// The HTTP requests yt-dlp made for it (every call of `YoutubeDL.urlopen`).
    pub requests: Option<u32>,
}

#[derive(Deserialize)]
struct RawAnswer {
    id: u64,
    #[serde(default)]
    code: i32,
    #[serde(default)]
    stdout: String,
    #[serde(default)]
    stderr: String,
    #[serde(default)]
    requests: Option<u32>,
    error: Option<String>,
}

/// One worker process and its pipes.
struct Worker {
    proc: Spawned,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    stderr: Option<tokio::task::JoinHandle<String>>,
    served: u32,
    cpu_seen: Duration,
    next_id: u64,
}

impl Worker {
    fn start(python: &Python) -> Result<Worker, Failure> {
        let mut cmd = Command::new(&python.program);
        // The script travels in the environment (which it takes out again): no file to write, and a short
        // command line that names the worker in `ps`.
        cmd.arg("-c").arg(BOOT).arg(WORKER_NAME).env("KINETICS_DL_EXTRACTOR", SCRIPT);
        if let Some(zip) = &python.zipapp {
            cmd.env("KINETICS_DL_YTDLP_ZIP", zip);
        }
        let mut proc = process::spawn(&mut cmd, PYTHON_HINT)
            .map_err(|e| Failure::new(Category::Environment, format!("the yt-dlp worker did not start: {e}"), ""))?;
        let stdin = proc.child.stdin.take();
        let stdout = BufReader::new(proc.child.stdout.take().expect("piped stdout"));
        let mut stderr = proc.child.stderr.take().expect("piped stderr");
        let stderr = tokio::spawn(async move { process::read_tail(&mut stderr, 8192).await });
        tracing::debug!(pid = ?proc.pid, "yt-dlp worker started");
        Ok(Worker { proc, stdin, stdout, stderr: Some(stderr), served: 0, cpu_seen: Duration::ZERO, next_id: 1 })
    }

    /// Sends one request and reads its answer line.
    async fn ask(&mut self, mut request: serde_json::Value) -> std::io::Result<(u64, String)> {
        let id = self.next_id;
        self.next_id += 1;
        request["id"] = id.into();
        let mut line = serde_json::to_vec(&request).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let stdin = self.stdin.as_mut().ok_or_else(|| std::io::Error::other("stdin closed"))?;
        stdin.write_all(&line).await?;
        stdin.flush().await?;
        let mut answer = String::new();
        if self.stdout.read_line(&mut answer).await? == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the worker closed its stdout"));
        }
        Ok((id, answer))
    }

    /// CPU used since the last call (the first call includes the Python start and the yt-dlp import).
    fn cpu_since_last(&mut self) -> Duration {
        let Some(now) = self.proc.pid.and_then(process::cpu_so_far) else { return Duration::ZERO };
        let spent = now.saturating_sub(self.cpu_seen);
        self.cpu_seen = now;
        spent
    }

    /// Stops a worker that failed, and says what its stderr ended with.
    async fn lose(mut self) -> String {
        self.proc.kill().await;
        let tail = match self.stderr.take() {
            Some(task) => tokio::time::timeout(Duration::from_secs(2), task).await.ok().and_then(Result::ok),
            None => None,
        };
        let tail = tail.unwrap_or_default();
        tail.lines().rev().map(str::trim).find(|l| !l.is_empty()).unwrap_or("").to_owned()
    }

    /// Ends a worker politely: EOF on its stdin closes its YoutubeDLs (saving cookies) and ends it.
    async fn retire(mut self) {
        drop(self.stdin.take());
        if tokio::time::timeout(RETIRE_GRACE, self.proc.child.wait()).await.is_err() {
            self.proc.stop().await;
        }
    }
}

/// The workers of a run, one pool per egress.
pub struct Pools {
    python: Python,
    limits: Limits,
    /// Idle workers with their egress's key, the least recently used first.
    idle: Mutex<Vec<(String, Worker)>>,
    started: AtomicU64,
    lost: AtomicU64,
}

impl std::fmt::Debug for Pools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pools").field("python", &self.python).field("limits", &self.limits).finish_non_exhaustive()
    }
}

impl Pools {
    pub fn new(python: Python, limits: Limits) -> Pools {
        Pools { python, limits, idle: Mutex::default(), started: AtomicU64::new(0), lost: AtomicU64::new(0) }
    }

    pub fn python(&self) -> &Python {
        &self.python
    }

    /// Workers started so far, and workers lost (died or hung) so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.started.load(Ordering::Relaxed), self.lost.load(Ordering::Relaxed))
    }

    /// Starts a worker of no egress and asks it who it is: the check before a run. The worker then waits,
    /// idle, for the first egress that asks (it is ended with the others by [`Pools::shutdown`]).
    pub async fn ping(&self, stop: &mut StopSignal) -> Result<Ping, Failure> {
        let mut worker = Worker::start(&self.python)?;
        let asked = tokio::select! {
            r = tokio::time::timeout(self.limits.timeout, worker.ask(serde_json::json!({"op": "ping"}))) => Some(r),
            _ = stop.wait_for(|s| *s) => None,
        };
        let failed = |what: String, last: String| {
            let message = match last.is_empty() {
                true => format!("the yt-dlp worker ({}) {what}", self.python.program.display()),
                false => format!("the yt-dlp worker ({}) {what}: {last}", self.python.program.display()),
            };
            Failure::new(Category::Environment, message, "")
        };
        match asked {
            None => {
                worker.lose().await;
                Err(Failure::new(Category::Other, "cancelled", ""))
            }
            Some(Ok(Ok((_, line)))) => match serde_json::from_str::<Ping>(&line) {
                Ok(ping) => {
                    self.started.fetch_add(1, Ordering::Relaxed);
                    // Its start's CPU counts in the extraction of the first clip it serves, as any worker's.
                    self.give_back(FRESH, worker);
                    Ok(ping)
                }
                Err(e) => {
                    worker.retire().await;
                    Err(failed(format!("answered a ping oddly ({e})"), line))
                }
            },
            Some(Ok(Err(e))) => {
                let last = worker.lose().await;
                Err(failed(format!("ended before answering ({e})"), last))
            }
            Some(Err(_)) => {
                worker.lose().await;
                Err(failed(format!("did not answer within {:?}", self.limits.timeout), String::new()))
            }
        }
    }

    /// Runs yt-dlp with `argv` on `url` in a worker of egress `key`: as `yt-dlp ARGV -- URL` would.
    /// The CPU the worker spent on it is added to the `cpu::measure` running in this task.
    pub async fn run(&self, key: &str, argv: &[String], url: &str, stop: &mut StopSignal) -> Result<Answer, Failure> {
        self.serve(key, argv, url, false, stop).await
    }

    /// [`Pools::run`] for arguments used once (a whole-video download into a clip's own folder): the worker
    /// closes the YoutubeDL it made for them (saving cookies) instead of keeping it, and the request has no
    /// time limit, as the command line's download has none (yt-dlp's socket timeout bounds each read).
    pub async fn run_once(
        &self,
        key: &str,
        argv: &[String],
        url: &str,
        stop: &mut StopSignal,
    ) -> Result<Answer, Failure> {
        self.serve(key, argv, url, true, stop).await
    }

    async fn serve(
        &self,
        key: &str,
        argv: &[String],
        url: &str,
        once: bool,
        stop: &mut StopSignal,
    ) -> Result<Answer, Failure> {
        let request = serde_json::json!({"op": "run", "argv": argv, "url": url, "once": once});
        let limit = (!once).then_some(self.limits.timeout);
        let mut last = String::new();
        // A lost worker's request goes once more to a new one; a second loss is the clip's failure.
        for _ in 0..2 {
            let taken = self.idle.lock().ok().and_then(|mut idle| {
                let at =
                    idle.iter().rposition(|(k, _)| k == key).or_else(|| idle.iter().rposition(|(k, _)| k == FRESH))?;
                Some(idle.remove(at).1)
            });
            let mut worker = match taken {
                Some(w) => w,
                None => {
                    let mut w = Worker::start(&self.python)?;
                    self.started.fetch_add(1, Ordering::Relaxed);
                    // A new worker first says it is ready (Python started, yt-dlp imported), so that the
                    // request's own time limit is the extraction's alone.
                    let ready = tokio::select! {
                        r = tokio::time::timeout(self.limits.timeout, w.ask(serde_json::json!({"op": "ping"}))) => Some(r),
                        _ = stop.wait_for(|s| *s) => None,
                    };
                    let lost = match ready {
                        Some(Ok(Ok(_))) => None,
                        None => {
                            crate::cpu::add_child(w.cpu_since_last());
                            w.lose().await;
                            return Err(Failure::new(Category::Other, "cancelled", ""));
                        }
                        Some(Ok(Err(e))) => Some(format!("died before it was ready ({e})")),
                        Some(Err(_)) => Some(format!("was not ready within {:?}", self.limits.timeout)),
                    };
                    if let Some(why) = lost {
                        crate::cpu::add_child(w.cpu_since_last());
                        let tail = w.lose().await;
                        self.lost.fetch_add(1, Ordering::Relaxed);
                        last = if tail.is_empty() { why } else { format!("{why}: {tail}") };
                        tracing::warn!(url, "the yt-dlp worker {last}; its clip goes to a new worker");
                        continue;
                    }
                    w
                }
            };
            let asked = tokio::select! {
                r = within(limit, worker.ask(request.clone())) => Some(r),
                _ = stop.wait_for(|s| *s) => None,
            };
            crate::cpu::add_child(worker.cpu_since_last());
            let pid = worker.proc.pid;
            match asked {
                None => {
                    worker.lose().await;
                    return Err(Failure::new(Category::Other, "cancelled", ""));
                }
                Some(Ok(Ok((id, line)))) => {
                    let raw: RawAnswer = match serde_json::from_str(&line) {
                        Ok(raw) => raw,
                        Err(e) => {
                            worker.lose().await;
                            return Err(Failure::new(
                                Category::Other,
                                format!("unreadable yt-dlp worker answer: {e}"),
                                &line,
                            ));
                        }
                    };
                    if raw.id != id || raw.error.is_some() {
                        worker.lose().await;
                        let why = raw.error.unwrap_or_else(|| format!("answer {} to request {id}", raw.id));
                        return Err(Failure::new(
                            Category::Other,
                            format!("the yt-dlp worker misunderstood: {why}"),
                            "",
                        ));
                    }
                    worker.served += 1;
                    if worker.served >= self.limits.recycle_after {
                        tracing::debug!(?pid, served = worker.served, "yt-dlp worker retired");
                        tokio::spawn(worker.retire());
                    } else {
                        self.give_back(key, worker);
                    }
                    return Ok(Answer {
                        code: raw.code,
                        stdout: raw.stdout.into_bytes(),
                        stderr: raw.stderr,
                        requests: raw.requests,
                    });
                }
                Some(Ok(Err(e))) => {
                    let tail = worker.lose().await;
                    self.lost.fetch_add(1, Ordering::Relaxed);
                    last = format!("died ({e}){}", if tail.is_empty() { String::new() } else { format!(": {tail}") });
                    tracing::warn!(?pid, url, "the yt-dlp worker {last}; its clip goes to a new worker");
                }
                Some(Err(_)) => {
                    worker.lose().await;
                    self.lost.fetch_add(1, Ordering::Relaxed);
                    last = format!("did not answer within {:?}", self.limits.timeout);
                    tracing::warn!(?pid, url, "the yt-dlp worker {last}: stopped; its clip goes to a new worker");
                }
            }
        }
        let category = if last.contains(" within ") { Category::Network } else { Category::Other };
        Err(Failure::new(category, format!("the yt-dlp worker {last}, twice for this clip"), ""))
    }

    /// A worker that served `key` (or none yet) goes idle: the least recently used idle worker beyond
    /// `max_idle` is ended.
    fn give_back(&self, key: &str, worker: Worker) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.push((key.to_owned(), worker));
        while idle.len() > self.limits.max_idle.max(1) {
            let (_, oldest) = idle.remove(0);
            tokio::spawn(oldest.retire());
        }
    }

    /// Ends every idle worker (each closes its YoutubeDLs, saving cookies, as the command line does).
    pub async fn shutdown(&self) {
        let workers: Vec<Worker> = match self.idle.lock() {
            Ok(mut idle) => idle.drain(..).map(|(_, w)| w).collect(),
            Err(_) => Vec::new(),
        };
        futures_join(workers.into_iter().map(Worker::retire)).await;
    }
}

/// `fut` within `limit` (`Err` when it ran out), or however long it takes.
async fn within<F: std::future::Future>(
    limit: Option<Duration>,
    fut: F,
) -> Result<F::Output, tokio::time::error::Elapsed> {
    match limit {
        Some(limit) => tokio::time::timeout(limit, fut).await,
        None => Ok(fut.await),
    }
}

async fn futures_join<F: std::future::Future<Output = ()> + Send + 'static>(futures: impl Iterator<Item = F>) {
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    for h in handles {
        let _ = h.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(dir: &Path, name: &str, body: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        p
    }

    #[test]
    fn finds_the_python_of_a_ytdlp_program() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let pip = script(d, "pip-yt-dlp", b"#!/opt/py/bin/python3.12\nimport yt_dlp\n");
        let env = script(d, "env-yt-dlp", b"#!/usr/bin/env python3\nimport yt_dlp\n");
        let zip = script(d, "zip-yt-dlp", b"#!/usr/bin/env python3\nPK\x03\x04rest-of-the-zip");
        let wrapper = script(d, "wrapper", b"#!/bin/sh\nexec yt-dlp \"$@\"\n");
        let frozen = script(d, "frozen", b"\x7fELF\x02\x01\x01");
        std::fs::create_dir(d.join("shims")).unwrap();
        let shim = script(&d.join("shims"), "yt-dlp", b"#!/usr/bin/env bash\nexec pyenv exec yt-dlp \"$@\"\n");
        script(&d.join("shims"), "python3", b"#!/usr/bin/env bash\n");
        let py = |p: &str, zip: Option<&Path>| Ok(Python { program: p.into(), zipapp: zip.map(Path::to_owned) });
        assert_eq!(find_python(&pip, None), py("/opt/py/bin/python3.12", None));
        assert_eq!(find_python(&env, None), py("python3", None));
        assert_eq!(find_python(&zip, None), py("python3", Some(&zip)));
        assert_eq!(find_python(&shim, None), py(d.join("shims/python3").to_str().unwrap(), None));
        // Looked up on PATH by name.
        let path = std::env::join_paths([d.join("nothing"), d.to_owned()]).unwrap();
        assert_eq!(find_python(Path::new("pip-yt-dlp"), Some(&path)), py("/opt/py/bin/python3.12", None));
        for (program, why) in [(&wrapper, "not a Python script"), (&frozen, "not a script")] {
            let err = find_python(program, None).unwrap_err();
            assert!(err.contains(why), "{err}");
        }
        let err = find_python(Path::new("no-such-yt-dlp"), Some(&path)).unwrap_err();
        assert!(err.contains("not on PATH"), "{err}");
    }
}
