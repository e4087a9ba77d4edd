//! yt-dlp in long-lived Python workers (`--ytdlp-mode api`): the command line's work without a Python
//! start and a yt-dlp import per clip.
//!
//! Each worker runs `extractor.py` (embedded here, handed to `python -c` in the environment) with the Python that has
//! yt-dlp, and speaks one JSON object a line on its pipes: a request carries the very arguments the
//! command line would get (`YtDlp::args`), and the answer carries what yt-dlp printed to stdout and stderr
//! and the exit code, so both paths end in the same parsing and the same classifier. One pool per egress:
//! a worker only ever serves its egress's arguments (source address, proxy, cookies). A worker that dies
//! or does not answer within the timeout is stopped and its request goes once more to a new worker, so the
//! clip is not charged an attempt for it; a worker is retired after a bounded number of requests. A pool
//! grows with its demand, not with the run's slots: a request waits for a busy worker of its egress for as
//! long as a new worker takes to start, and only then starts one ([`spawns`]); the worker that answered the
//! run's first ping serves the first egress that asks. A 429 that yt-dlp meets in a worker is told the
//! moment it comes, in a note ahead of the answer ([`OnThrottled`]), so that the egress holds before yt-dlp
//! has given up. Workers are children like any other (`tools/process.rs`): own process group, death with us.

use super::process::{self, Spawned, StopSignal};
use super::Failure;
use crate::classify::Category;
use serde::Deserialize;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
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

/// How long a request waits for a busy worker before it starts one while no worker has yet served its first
/// extraction: at least this, and at least two starts to a ping (a worker's first extraction builds its
/// YoutubeDL and loads the extractors, about as long again as the start).
const START_UNKNOWN: Duration = Duration::from_secs(1);
/// Bounds of that wait once starts are timed: a start measured on an idle machine (or a slow one) does not
/// make requests start workers all the time (or wait for ever).
const PATIENCE_MIN: Duration = Duration::from_millis(200);
const PATIENCE_MAX: Duration = Duration::from_secs(10);

/// Whether a request that found no idle worker of its egress starts one: when its egress has no worker
/// at all (busy or starting), or when it has waited as long as a new worker takes to be ready (`patience`),
/// so that starting one can no longer be slower than waiting. Below that, a worker that finishes its
/// extraction serves the request: a run whose extractions are quick (a local source, a paced egress) keeps
/// one worker an egress, while one whose extractions queue gets as many as its slots keep busy.
pub fn spawns(live: usize, waited: Duration, patience: Duration) -> bool {
    live == 0 || waited >= patience
}

/// The wait of [`spawns`]: how long the last worker that served its first extraction took from its spawn to
/// that answer (`served`), or before one has, twice the last worker's start to a ping (`start`), and at
/// least [`START_UNKNOWN`]; within [`PATIENCE_MIN`] and [`PATIENCE_MAX`].
pub fn patience(start: Option<Duration>, served: Option<Duration>) -> Duration {
    let patience = served.unwrap_or_else(|| start.map_or(START_UNKNOWN, |s| (2 * s).max(START_UNKNOWN)));
    patience.clamp(PATIENCE_MIN, PATIENCE_MAX)
}

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
    /// A request was not sent while the egress's hold lasted, to this Unix millisecond.
    #[serde(default)]
    held: Option<u64>,
    error: Option<String>,
}

/// A note ahead of an answer: one of the request's HTTP requests was answered 429, or (when asked for) is
/// being sent.
#[derive(Debug, Deserialize)]
struct RawNote {
    id: u64,
    #[serde(default)]
    sending: bool,
    retry_after: Option<u64>,
}

/// What a worker tells of an extraction before its answer ([`Claim::on_note`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Note {
    /// One of its HTTP requests goes now (past the egress's hold).
    Sending,
    /// One of its HTTP requests was answered 429, with this `Retry-After`; yt-dlp has not failed the
    /// extraction yet.
    Throttled(Option<Duration>),
}

/// One worker process and its pipes.
struct Worker {
    proc: Spawned,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    stderr: Option<tokio::task::JoinHandle<String>>,
    served: u32,
    /// From its spawn to its answer to a ping.
    ready_in: Duration,
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
        Ok(Worker {
            proc,
            stdin,
            stdout,
            stderr: Some(stderr),
            served: 0,
            ready_in: Duration::ZERO,
            cpu_seen: Duration::ZERO,
            next_id: 1,
        })
    }

    /// Sends one request and reads its answer line; the notes before it go to `on_note`.
    async fn ask(
        &mut self,
        mut request: serde_json::Value,
        on_note: Option<&(dyn Fn(Note) + Send + Sync + '_)>,
    ) -> std::io::Result<(u64, String)> {
        let id = self.next_id;
        self.next_id += 1;
        request["id"] = id.into();
        let mut line = serde_json::to_vec(&request).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let stdin = self.stdin.as_mut().ok_or_else(|| std::io::Error::other("stdin closed"))?;
        stdin.write_all(&line).await?;
        stdin.flush().await?;
        loop {
            let mut answer = String::new();
            if self.stdout.read_line(&mut answer).await? == 0 {
                return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the worker closed its stdout"));
            }
            // The script writes a note's key first; an answer starts with its id.
            if !answer.starts_with(r#"{"throttled""#) && !answer.starts_with(r#"{"sending""#) {
                return Ok((id, answer));
            }
            let note = match serde_json::from_str::<RawNote>(&answer) {
                Ok(note) if note.id == id && note.sending => Note::Sending,
                Ok(note) if note.id == id => {
                    tracing::debug!(pid = ?self.proc.pid, retry_after = ?note.retry_after, "the extraction met a 429");
                    Note::Throttled(note.retry_after.map(Duration::from_secs))
                }
                _ => {
                    tracing::warn!(pid = ?self.proc.pid, "an odd note from a yt-dlp worker: {}", answer.trim_end());
                    continue;
                }
            };
            if let Some(tell) = on_note {
                tell(note);
            }
        }
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
    /// Claims of each egress: on a worker serving a request or starting for one.
    live: Mutex<HashMap<String, usize>>,
    /// Told when a worker is given back (idle, retired or lost): a waiting request looks again.
    returned: tokio::sync::Notify,
    /// How long the last worker took from its spawn to its answer to a ping, and the last one that served
    /// its first extraction took until that answer (its extraction's time counted from when it was asked).
    start_wall: Mutex<(Option<Duration>, Option<Duration>)>,
    started: AtomicU64,
    lost: AtomicU64,
}

/// A new worker's answer to its ping ([`Pools::spawn_pinged`]): the line, an error reading it, the timeout, or
/// `None` when the run stopped first.
type PingAnswer = Option<Result<std::io::Result<(u64, String)>, tokio::time::error::Elapsed>>;

/// What [`Pools::start_worker`] gave.
enum Started {
    Ready(Box<Worker>),
    /// Died or hung before it was ready: why.
    Lost(String),
    Cancelled,
}

/// A request's claim on one worker of its egress ([`Pools::reserve`]): an idle worker taken, or the right to
/// start one, counted in [`Pools::live`] until it drops. A worker still inside when it drops goes back idle.
pub struct Claim<'a> {
    pools: &'a Pools,
    key: String,
    worker: Option<Worker>,
    on_note: Option<OnNote<'a>>,
    /// The egress's hold file, whether this request is the probe that is to end the ban, and how long a 429
    /// without a `Retry-After` holds ([`Claim::held_at`]).
    hold: Option<(PathBuf, bool, Duration)>,
    /// The worker did not send a request of the last extraction while the hold lasted ([`Claim::held`]).
    held: Option<Held>,
}

/// An extraction of which the worker sent only some requests (perhaps none): the egress was held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// The hold's end, Unix milliseconds.
    pub until_ms: u64,
    /// The requests it did send.
    pub sent: u32,
}

/// Told the moment one of an extraction's HTTP requests goes, or is answered 429 (with its `Retry-After`),
/// before yt-dlp has answered: the worker says so in a note ahead of its answer.
pub type OnNote<'a> = Box<dyn Fn(Note) + Send + Sync + 'a>;

impl<'a> Claim<'a> {
    /// What to do when the claim's extraction sends a request or meets a 429 ([`OnNote`]).
    pub fn on_note(&mut self, f: impl Fn(Note) + Send + Sync + 'a) {
        self.on_note = Some(Box::new(f));
    }

    /// The egress's hold is the file at `path` (the Unix milliseconds its ban lasts to): the worker sends
    /// none of the extraction's requests while it lasts, unless this is the `probe` that is to end the ban,
    /// and a 429 pushes it later for the egress's other workers at once, by its `Retry-After` or, when it
    /// says none, by `unsaid`. A path that is not UTF-8 cannot be said on the pipe: then there is no hold.
    pub fn held_at(&mut self, path: &Path, probe: bool, unsaid: Duration) {
        self.hold = path.to_str().is_some().then(|| (path.to_owned(), probe, unsaid));
    }

    /// The worker did not send a request of the last extraction, since the egress was held. yt-dlp failed
    /// it as the ban would have, or went on without what it could not ask.
    pub fn held(&self) -> Option<Held> {
        self.held
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if let Some(n) = self.pools.live.lock().unwrap_or_else(|e| e.into_inner()).get_mut(&self.key) {
            *n = n.saturating_sub(1);
        }
        // Waiting requests look again: [`Pools::give_back`] tells them, with the worker idle.
        match self.worker.take() {
            Some(worker) => self.pools.give_back(&self.key, worker),
            None => self.pools.returned.notify_waiters(),
        }
    }
}

impl std::fmt::Debug for Pools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pools").field("python", &self.python).field("limits", &self.limits).finish_non_exhaustive()
    }
}

impl Pools {
    pub fn new(python: Python, limits: Limits) -> Pools {
        Pools {
            python,
            limits,
            idle: Mutex::default(),
            live: Mutex::default(),
            returned: tokio::sync::Notify::new(),
            start_wall: Mutex::default(),
            started: AtomicU64::new(0),
            lost: AtomicU64::new(0),
        }
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
        let (worker, asked) = self.spawn_pinged(stop).await?;
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

    /// Runs yt-dlp with `argv` on `url` in a worker of egress `key`: as `yt-dlp ARGV -- URL` would. With a
    /// `claim` of the same egress ([`Pools::reserve`]), in its worker. The CPU the worker spent on it is added
    /// to the `cpu::measure` running in this task.
    pub async fn run<'s>(
        &'s self,
        key: &str,
        argv: &[String],
        url: &str,
        claim: Option<&mut Claim<'s>>,
        stop: &mut StopSignal,
    ) -> Result<Answer, Failure> {
        self.serve(key, argv, url, false, claim, stop).await
    }

    /// A claim on a ready worker of egress `key` for a request on `url` about to be made (an idle one, or
    /// one started for it), so that the caller may look again at its egress after the wait for a worker,
    /// just before the request goes. A worker that could not be started is left to [`Pools::run`] to start
    /// again (and to say why, if it fails again). `None` when the run is stopped meanwhile.
    pub async fn reserve(&self, key: &str, url: &str, stop: &mut StopSignal) -> Option<Claim<'_>> {
        let mut claim = self.acquire(key, stop).await?;
        if claim.worker.is_none() {
            match self.start_worker(url, stop).await {
                Ok(Started::Ready(w)) => claim.worker = Some(*w),
                Ok(Started::Cancelled) => return None,
                Ok(Started::Lost(_)) | Err(_) => {}
            }
        }
        Some(claim)
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
        self.serve(key, argv, url, true, None, stop).await
    }

    async fn serve<'s>(
        &'s self,
        key: &str,
        argv: &[String],
        url: &str,
        once: bool,
        mut lent: Option<&mut Claim<'s>>,
        stop: &mut StopSignal,
    ) -> Result<Answer, Failure> {
        let request = serde_json::json!({"op": "run", "argv": argv, "url": url, "once": once});
        let limit = (!once).then_some(self.limits.timeout);
        let mut last = String::new();
        // A lost worker's request goes once more to a new one; a second loss is the clip's failure.
        for _ in 0..2 {
            // The caller's claim keeps its worker until the caller has read the answer (a 429 it brought
            // holds the egress before another clip's extraction takes the worker); one of our own, until
            // this loop's turn ends.
            let mut own = None;
            let claim: &mut Claim<'s> = match lent.take().filter(|c| c.key == key) {
                Some(c) => c,
                None => match self.acquire(key, stop).await {
                    Some(c) => own.insert(c),
                    None => return Err(Failure::new(Category::Other, "cancelled", "")),
                },
            };
            let mut worker = match claim.worker.take() {
                Some(w) => w,
                None => match self.start_worker(url, stop).await? {
                    Started::Ready(w) => *w,
                    Started::Cancelled => return Err(Failure::new(Category::Other, "cancelled", "")),
                    Started::Lost(why) => {
                        last = why;
                        continue;
                    }
                },
            };
            let mut request = request.clone();
            if let Some((path, probe, unsaid)) = &claim.hold {
                request["hold"] = path.to_str().into();
                request["probe"] = (*probe).into();
                request["unsaid_ms"] = (unsaid.as_millis() as u64).into();
            }
            if claim.on_note.is_some() {
                request["tell_sending"] = true.into();
            }
            claim.held = None;
            let asked_at = Instant::now();
            let asked = tokio::select! {
                r = within(limit, worker.ask(request, claim.on_note.as_deref())) => Some(r),
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
                    if worker.served == 0 {
                        self.timed_first_extraction(worker.ready_in + asked_at.elapsed());
                    }
                    worker.served += 1;
                    if worker.served >= self.limits.recycle_after {
                        tracing::debug!(?pid, served = worker.served, "yt-dlp worker retired");
                        tokio::spawn(worker.retire());
                    } else {
                        claim.worker = Some(worker);
                    }
                    claim.held = raw.held.map(|until_ms| Held { until_ms, sent: raw.requests.unwrap_or(0) });
                    drop(own);
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

    /// Starts a worker and waits until it says it is ready (Python started, yt-dlp imported), so that a
    /// request's own time limit is the extraction's alone. One that dies or is not ready within the timeout
    /// is lost, and said so (`url`: the clip it was for).
    async fn start_worker(&self, url: &str, stop: &mut StopSignal) -> Result<Started, Failure> {
        let (mut w, ready) = self.spawn_pinged(stop).await?;
        self.started.fetch_add(1, Ordering::Relaxed);
        let why = match ready {
            Some(Ok(Ok(_))) => return Ok(Started::Ready(Box::new(w))),
            None => {
                crate::cpu::add_child(w.cpu_since_last());
                w.lose().await;
                return Ok(Started::Cancelled);
            }
            Some(Ok(Err(e))) => format!("died before it was ready ({e})"),
            Some(Err(_)) => format!("was not ready within {:?}", self.limits.timeout),
        };
        crate::cpu::add_child(w.cpu_since_last());
        let tail = w.lose().await;
        self.lost.fetch_add(1, Ordering::Relaxed);
        let last = if tail.is_empty() { why } else { format!("{why}: {tail}") };
        tracing::warn!(url, "the yt-dlp worker {last}; its clip goes to a new worker");
        Ok(Started::Lost(last))
    }

    /// Starts a worker and asks it to ping, within the timeout: the worker and what it answered (`None` when the
    /// run stopped first). A worker that answered has its start timed ([`Pools::patience`]).
    async fn spawn_pinged(&self, stop: &mut StopSignal) -> Result<(Worker, PingAnswer), Failure> {
        let spawned = Instant::now();
        let mut worker = Worker::start(&self.python)?;
        let asked = tokio::select! {
            r = tokio::time::timeout(self.limits.timeout, worker.ask(serde_json::json!({"op": "ping"}), None)) => Some(r),
            _ = stop.wait_for(|s| *s) => None,
        };
        if let Some(Ok(Ok(_))) = &asked {
            worker.ready_in = spawned.elapsed();
            self.timed_start(worker.ready_in);
        }
        Ok((worker, asked))
    }

    /// A claim for a request of egress `key`: on an idle worker of the egress (or the fresh one of the run's
    /// ping), else, when [`spawns`] says so, on a worker to start (no worker inside); until then the request
    /// waits for a worker to be given back. `None` when the run is stopped meanwhile.
    async fn acquire(&self, key: &str, stop: &mut StopSignal) -> Option<Claim<'_>> {
        let since = Instant::now();
        loop {
            let notified = self.returned.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let patience = self.patience();
            let taken = {
                let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
                let at =
                    idle.iter().rposition(|(k, _)| k == key).or_else(|| idle.iter().rposition(|(k, _)| k == FRESH));
                at.map(|at| idle.remove(at).1)
            };
            {
                let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
                let n = live.entry(key.to_owned()).or_default();
                if taken.is_some() || spawns(*n, since.elapsed(), patience) {
                    if taken.is_none() {
                        let (busy, waited) = (*n, since.elapsed());
                        tracing::debug!(key, busy, ?waited, ?patience, "a yt-dlp worker starts");
                    }
                    *n += 1;
                    return Some(Claim {
                        pools: self,
                        key: key.to_owned(),
                        worker: taken,
                        on_note: None,
                        hold: None,
                        held: None,
                    });
                }
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(patience.saturating_sub(since.elapsed())) => {}
                _ = stop.wait_for(|s| *s) => return None,
            }
        }
    }

    /// A worker that served `key` (or none yet) goes idle: the least recently used idle worker beyond
    /// `max_idle` is ended, and waiting requests look again.
    fn give_back(&self, key: &str, worker: Worker) {
        {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            idle.push((key.to_owned(), worker));
            while idle.len() > self.limits.max_idle.max(1) {
                let (_, oldest) = idle.remove(0);
                tokio::spawn(oldest.retire());
            }
        }
        self.returned.notify_waiters();
    }

    fn timed_start(&self, took: Duration) {
        self.start_wall.lock().unwrap_or_else(|e| e.into_inner()).0 = Some(took);
    }

    fn timed_first_extraction(&self, took: Duration) {
        self.start_wall.lock().unwrap_or_else(|e| e.into_inner()).1 = Some(took);
    }

    /// How long a request waits for a busy worker before it starts one ([`patience`]).
    fn patience(&self) -> Duration {
        let (start, served) = *self.start_wall.lock().unwrap_or_else(|e| e.into_inner());
        patience(start, served)
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
    fn a_request_starts_a_worker_only_when_waiting_is_no_quicker() {
        let ms = Duration::from_millis;
        // (busy or starting workers of the egress, waited, a start's time) -> starts one
        let table = [
            (0, ms(0), ms(500), true),
            (0, ms(0), ms(10_000), true),
            (1, ms(0), ms(500), false),
            (1, ms(499), ms(500), false),
            (1, ms(500), ms(500), true),
            (3, ms(2_000), ms(500), true),
            (3, ms(100), ms(500), false),
        ];
        for (live, waited, patience, want) in table {
            assert_eq!(spawns(live, waited, patience), want, "{live} live, waited {waited:?} of {patience:?}");
        }
    }

    #[test]
    fn the_wait_is_a_new_workers_time_to_its_first_answer() {
        let ms = Duration::from_millis;
        // (a start to its ping, a start to its first extraction's answer) -> wait
        let table = [
            (None, None, ms(1_000)),
            (Some(ms(350)), None, ms(1_000)),
            (Some(ms(800)), None, ms(1_600)),
            (Some(ms(350)), Some(ms(700)), ms(700)),
            (Some(ms(350)), Some(ms(50)), ms(200)),
            (Some(ms(9_000)), None, ms(10_000)),
            (Some(ms(350)), Some(ms(300_000)), ms(10_000)),
        ];
        for (start, served, want) in table {
            assert_eq!(patience(start, served), want, "{start:?}, {served:?}");
        }
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
