//! Running the real `kinetics-dl` binary: to completion with a deadline, or in the background for tests
//! that signal it mid-run.

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kinetics_testsrc::TestServer;

/// No single run of the tests' small plans gets anywhere near this, even on a loaded 2-core machine.
pub const RUN_LIMIT: Duration = Duration::from_secs(900);

pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_kinetics-dl"))
}

/// The binary with an environment that cannot leak settings from the machine into the test.
pub fn command() -> Command {
    let mut cmd = Command::new(bin());
    for var in [
        "KINETICS_DL_YTDLP",
        "KINETICS_DL_FFMPEG",
        "KINETICS_DL_FFPROBE",
        "KINETICS_DL_PYTHON",
        "KINETICS_DL_ANNOTATIONS_URL",
        "KINETICS_DL_MIRROR_URL",
        "RUST_LOG",
    ] {
        cmd.env_remove(var);
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// `["a", "b"]` as owned OS strings, to extend argument lists.
pub fn os<const N: usize>(items: [&str; N]) -> Vec<OsString> {
    items.iter().map(OsString::from).collect()
}

/// `download --out OUT --url-template http://SRC/watch?v={youtube_id} --retry-delay 0s -j 3 --annotations
/// FILE...`: the arguments every download test starts from. The default path: yt-dlp reads the watch page
/// and the default format choice takes the DASH pair, as on YouTube.
pub fn download_args(server: &TestServer, out: &Path, annotations: &[&Path]) -> Vec<OsString> {
    template_args(&server.watch_url_template(), out, annotations)
}

/// [`download_args`] handing yt-dlp the progressive file's URL itself (`/v/{youtube_id}.mp4`): the
/// direct-URL path, where extraction is a GET of the media file.
pub fn direct_download_args(server: &TestServer, out: &Path, annotations: &[&Path]) -> Vec<OsString> {
    template_args(&server.url_template(), out, annotations)
}

fn template_args(template: &str, out: &Path, annotations: &[&Path]) -> Vec<OsString> {
    let mut args = os(["download", "--out"]);
    args.push(out.into());
    args.extend(os(["--url-template", template, "--retry-delay", "0s", "-j", "3"]));
    for file in annotations {
        args.push("--annotations".into());
        args.push(file.into());
    }
    args
}

/// Replaces the `-j` value that [`download_args`] set.
pub fn set_jobs(args: &mut [OsString], jobs: usize) {
    let at = args.iter().position(|a| a == "-j").expect("download_args sets -j");
    args[at + 1] = jobs.to_string().into();
}

#[derive(Debug)]
pub struct Output {
    /// `None` when a signal ended the process.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Asserts the exit code, showing stderr when it differs.
    #[track_caller]
    pub fn expect_code(&self, want: i32) -> &Self {
        assert_eq!(self.code, Some(want), "exit code; stderr:\n{}\nstdout:\n{}", self.stderr, self.stdout);
        self
    }
}

/// Runs the binary with `args` to completion (in `dir` when given).
pub fn run_in(dir: Option<&Path>, args: &[OsString]) -> Output {
    let mut cmd = command();
    cmd.args(args);
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    Running::start(cmd).wait(RUN_LIMIT)
}

pub fn run(args: &[OsString]) -> Output {
    run_in(None, args)
}

/// Runs the binary with plain string arguments.
pub fn run_strs<S: AsRef<OsStr>>(args: &[S]) -> Output {
    let args: Vec<OsString> = args.iter().map(|a| a.as_ref().to_owned()).collect();
    run(&args)
}

/// A process running in the background; dropped while running, it is killed, so a failed test never
/// leaves one behind.
pub struct Running {
    child: Option<Child>,
    pub stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
    stdout: Arc<Mutex<String>>,
}

impl Running {
    pub fn start(mut cmd: Command) -> Running {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("kinetics-dl starts");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let readers = vec![
            drain(child.stdout.take().expect("piped"), stdout.clone()),
            drain(child.stderr.take().expect("piped"), stderr.clone()),
        ];
        Running { child: Some(child), stderr, readers, stdout }
    }

    pub fn download(args: &[OsString]) -> Running {
        let mut cmd = command();
        cmd.args(args);
        Running::start(cmd)
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("running").id() as i32
    }

    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: a plain syscall on our own child, which has not been reaped yet (we hold it).
        let rc = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(rc, 0, "failed to signal {}", self.pid());
    }

    /// What the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// True once the process has exited (it is not reaped until `wait`).
    pub fn exited(&mut self) -> bool {
        matches!(self.child.as_mut().expect("running").try_wait(), Ok(Some(_)))
    }

    /// Polls `ready` until it holds; panics with the process's stderr if it exits first or `limit` passes.
    #[track_caller]
    pub fn wait_for(&mut self, limit: Duration, what: &str, mut ready: impl FnMut() -> bool) {
        let deadline = Instant::now() + limit;
        while !ready() {
            if let Ok(Some(status)) = self.child.as_mut().expect("running").try_wait() {
                // One last look: the condition may have come true just before the exit.
                assert!(ready(), "kinetics-dl exited ({status}) before {what}; stderr:\n{}", self.stderr());
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {limit:?} waiting for {what}; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the exit; kills the process and panics after `limit`.
    pub fn wait(mut self, limit: Duration) -> Output {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for kinetics-dl") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("kinetics-dl ran longer than {limit:?}; stderr:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // A grandchild that inherited a pipe could keep it open: do not wait for the readers forever.
        let readers_deadline = Instant::now() + Duration::from_secs(10);
        while self.readers.iter().any(|r| !r.is_finished()) && Instant::now() < readers_deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        Output {
            code: status.code(),
            stdout: self.stdout.lock().unwrap().clone(),
            stderr: self.stderr.lock().unwrap().clone(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Reads a pipe to its end on a thread, appending as it goes so a test can watch stderr mid-run.
fn drain(mut pipe: impl Read + Send + 'static, into: Arc<Mutex<String>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => into.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
    })
}

/// `merge --out OUT SOURCES... EXTRA...` through the binary.
pub fn merge(out: &Path, sources: &[&Path], extra: &[&str]) -> Output {
    let mut args = os(["merge", "--out"]);
    args.push(out.into());
    args.extend(sources.iter().map(|s| OsString::from(*s)));
    args.extend(extra.iter().map(OsString::from));
    run(&args)
}

/// `diff A B --json` through the binary.
pub fn diff(a: &Path, b: &Path) -> Output {
    let mut args = os(["diff"]);
    args.push(a.into());
    args.push(b.into());
    args.push("--json".into());
    run(&args)
}
