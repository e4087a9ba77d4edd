//! Running external tools as children that never outlive us.
//!
//! Every child gets its own process group (so a stop reaches the grandchildren yt-dlp may spawn) and the
//! Linux parent-death signal (so a SIGKILL of kinetics-dl takes its children with it). Stopping a child is
//! SIGTERM to the group, a grace period, then SIGKILL, like nextest does.

use std::io;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::process::Command;
use tokio::sync::watch;

/// How long a stopped child may take to exit after SIGTERM before it gets SIGKILL.
const GRACE: Duration = Duration::from_secs(2);

/// Keep at most this much of a child's stderr: the end is where the reason is.
pub const STDERR_KEEP: usize = 64 * 1024;

/// Process groups of the children running now, so that a second Ctrl-C can take them all along (the
/// parent-death signal reaches only direct children, not what yt-dlp starts itself).
static GROUPS: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());

/// SIGKILL to every running child's process group: for exiting at once.
pub fn kill_all() {
    let groups = GROUPS.lock().map(|g| g.clone()).unwrap_or_default();
    for pid in groups {
        // SAFETY: plain syscall on a process group we created.
        unsafe { libc::killpg(pid as libc::pid_t, libc::SIGKILL) };
    }
}

/// Keeps a child's group in `GROUPS` while it runs.
struct Tracked(Option<u32>);

impl Tracked {
    fn new(pid: Option<u32>) -> Tracked {
        if let (Some(pid), Ok(mut g)) = (pid, GROUPS.lock()) {
            g.push(pid);
        }
        Tracked(pid)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if let (Some(pid), Ok(mut g)) = (self.0, GROUPS.lock()) {
            g.retain(|p| *p != pid);
        }
    }
}

/// What a finished child left behind.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    /// The last `STDERR_KEEP` bytes of stderr, lossily decoded.
    pub stderr: String,
    /// User + system CPU of the child and of the descendants it waited for (zero if the kernel would not
    /// say). Also added to the `cpu::measure` running in the caller's task.
    pub cpu: Duration,
}

/// Why a child did not produce an `Output`.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("`{program}` was not found on PATH; {hint}")]
    NotFound { program: String, hint: &'static str },
    #[error("failed to start `{program}`")]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("`{program}` was stopped")]
    Cancelled { program: String },
    #[error("failed to wait for `{program}`")]
    Wait {
        program: String,
        #[source]
        source: io::Error,
    },
}

/// A signal every running child listens to: when it turns `true`, children are stopped.
pub type StopSignal = watch::Receiver<bool>;

/// Prepares a command so that its child is in its own process group and dies with us.
pub fn harden(cmd: &mut Command) {
    cmd.process_group(0).kill_on_drop(true).stdin(Stdio::null());
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl.
            if libc::getppid() == 1 {
                libc::raise(libc::SIGKILL);
            }
            Ok(())
        });
    }
}

/// Runs a prepared command to completion, capturing stdout and the tail of stderr; stops it (and its
/// process group) when `stop` turns true.
pub async fn run(cmd: &mut Command, hint: &'static str, stop: &mut StopSignal) -> Result<Output, RunError> {
    let program = cmd.as_std().get_program().to_string_lossy().into_owned();
    harden(cmd);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => RunError::NotFound { program: program.clone(), hint },
        _ => RunError::Spawn { program: program.clone(), source },
    })?;
    let pid = child.id();
    let _tracked = Tracked::new(pid);
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out_task = tokio::spawn(async move {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf).await;
        buf
    });
    let err_task = tokio::spawn(async move { read_tail(&mut stderr, STDERR_KEEP).await });

    // The child's CPU is read once it has exited and before it is reaped (`child.wait()` reaps it, and
    // the kernel forgets a reaped child's usage apart from the whole process's RUSAGE_CHILDREN).
    let exited = pid.map(|pid| tokio::task::spawn_blocking(move || exited_cpu(pid as libc::pid_t)));
    let cpu = if *stop.borrow() {
        None
    } else {
        tokio::select! {
            cpu = async {
                match exited {
                    Some(task) => task.await.ok().and_then(Result::ok).unwrap_or_default(),
                    None => Duration::ZERO,
                }
            } => Some(cpu),
            _ = stop.wait_for(|s| *s) => None,
        }
    };
    let Some(cpu) = cpu else {
        terminate(&mut child, pid).await;
        return Err(RunError::Cancelled { program });
    };
    let status = child.wait().await.map_err(|source| RunError::Wait { program: program.clone(), source })?;
    crate::cpu::add_child(cpu);
    let stdout = out_task.await.unwrap_or_default();
    let stderr = err_task.await.unwrap_or_default();
    Ok(Output { status, stdout, stderr, cpu })
}

/// A long-lived child with its three pipes, started like every child (own process group, death with us,
/// reached by [`kill_all`]): for tools that serve many requests (`tools/extractor.rs`).
pub struct Spawned {
    pub child: tokio::process::Child,
    pub pid: Option<u32>,
    _tracked: Tracked,
}

/// Starts `cmd` hardened, with stdin, stdout and stderr piped.
pub fn spawn(cmd: &mut Command, hint: &'static str) -> Result<Spawned, RunError> {
    let program = cmd.as_std().get_program().to_string_lossy().into_owned();
    harden(cmd);
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => RunError::NotFound { program: program.clone(), hint },
        _ => RunError::Spawn { program, source },
    })?;
    let pid = child.id();
    Ok(Spawned { child, pid, _tracked: Tracked::new(pid) })
}

impl Spawned {
    /// Stops the child's whole group (SIGTERM, a grace period, SIGKILL) and reaps it.
    pub async fn stop(&mut self) {
        terminate(&mut self.child, self.pid).await;
    }

    /// SIGKILL to the child's whole group at once, then reaps it.
    pub async fn kill(&mut self) {
        if let Some(pid) = self.pid {
            // SAFETY: plain syscall on a process group we created.
            unsafe { libc::killpg(pid as libc::pid_t, libc::SIGKILL) };
        }
        let _ = self.child.kill().await;
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        // A child still running when its handle goes takes its group along (tokio kills only the child).
        if let (Some(pid), Ok(None)) = (self.pid, self.child.try_wait()) {
            // SAFETY: plain syscall on a process group we created.
            unsafe { libc::killpg(pid as libc::pid_t, libc::SIGKILL) };
        }
    }
}

/// CPU (user + system) a running process has used so far, with the children it has waited for, from
/// `/proc/PID/stat`; `None` when it is gone or the kernel would not say.
pub fn cpu_so_far(pid: u32) -> Option<Duration> {
    // The process's CPU clock, to the nanosecond: the id `clock_getcpuclockid` gives (glibc computes it so;
    // the libc crate does not bind it on Linux). /proc's ticks are 10 ms, and a warm extraction worker's
    // request costs about that: read from them it was often 0.
    let clock = (!(pid as libc::clockid_t) << 3) | 2;
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: plain syscall writing into a local.
    if unsafe { libc::clock_gettime(clock, &mut ts) } == 0 {
        return Some(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32));
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces and parentheses): state is field 3, utime 14.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11..15)?.iter().map(|f| f.parse::<u64>().unwrap_or(0)).sum();
    // SAFETY: plain libc query.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| Duration::from_secs_f64(ticks as f64 / hz as f64))
}

/// Blocks until child `pid` has exited, leaves it unreaped, and returns the CPU it and the descendants it
/// waited for used (`waitid` with `WNOWAIT` fills the rusage of the zombie: Linux's `RUSAGE_BOTH`).
fn exited_cpu(pid: libc::pid_t) -> io::Result<Duration> {
    loop {
        // SAFETY: plain syscall writing into zeroed locals; WNOWAIT leaves the child for tokio to reap.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        let r = unsafe {
            libc::syscall(
                libc::SYS_waitid,
                libc::P_PID,
                pid,
                &mut info as *mut libc::siginfo_t,
                libc::WEXITED | libc::WNOWAIT,
                &mut ru as *mut libc::rusage,
            )
        };
        if r == 0 {
            let s = crate::cpu::timeval_s(ru.ru_utime) + crate::cpu::timeval_s(ru.ru_stime);
            return Ok(Duration::from_secs_f64(s.max(0.0)));
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// SIGTERM to the child's group, a grace period, then SIGKILL.
async fn terminate(child: &mut tokio::process::Child, pid: Option<u32>) {
    if let Some(pid) = pid {
        // SAFETY: plain syscalls on a process group we created.
        unsafe { libc::killpg(pid as libc::pid_t, libc::SIGTERM) };
        if tokio::time::timeout(GRACE, child.wait()).await.is_ok() {
            unsafe { libc::killpg(pid as libc::pid_t, libc::SIGKILL) };
            return;
        }
        unsafe { libc::killpg(pid as libc::pid_t, libc::SIGKILL) };
    }
    let _ = child.kill().await;
}

/// Reads a stream to its end, keeping only the last `keep` bytes.
pub(crate) async fn read_tail<R: tokio::io::AsyncRead + Unpin>(r: &mut R, keep: usize) -> String {
    let mut tail: Vec<u8> = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                tail.extend_from_slice(&buf[..n]);
                if tail.len() > 2 * keep {
                    tail.drain(..tail.len() - keep);
                }
            }
        }
    }
    if tail.len() > keep {
        tail.drain(..tail.len() - keep);
    }
    String::from_utf8_lossy(&tail).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Another process's CPU to the nanosecond, not in /proc's 10 ms ticks: a child that spins for about
    /// 25 ms reads so, and its reading only grows.
    #[test]
    fn cpu_so_far_reads_a_process_s_cpu_finer_than_ticks() {
        let mut child = std::process::Command::new("python3")
            .args(["-c", "import sys, time\nt = time.process_time()\nwhile time.process_time() - t < 0.025: pass\nsys.stdin.read()"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let pid = child.id();
        let mut last = Duration::ZERO;
        let mut readings = Vec::new();
        // Bounded: 100 readings 10 ms apart.
        for _ in 0..100 {
            let now = cpu_so_far(pid).expect("a running child's CPU");
            assert!(now >= last, "{now:?} after {last:?}");
            last = now;
            readings.push(now);
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(child.stdin.take());
        child.wait().unwrap();
        assert!(last >= Duration::from_millis(25), "{readings:?}");
        let off_ticks = readings.iter().filter(|r| r.subsec_nanos() % 10_000_000 != 0).count();
        assert!(off_ticks > 0, "every reading a whole tick: {readings:?}");
    }

    #[tokio::test]
    async fn captures_status_stdout_and_stderr_tail() {
        let (_tx, mut rx) = watch::channel(false);
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo out; echo err >&2; exit 3"]);
        let out = run(&mut cmd, "", &mut rx).await.unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, "err\n");
    }

    #[tokio::test]
    async fn missing_program_is_not_found_with_hint() {
        let (_tx, mut rx) = watch::channel(false);
        let mut cmd = Command::new("kinetics-dl-no-such-tool");
        let err = run(&mut cmd, "install it", &mut rx).await.unwrap_err();
        assert!(matches!(err, RunError::NotFound { .. }), "{err:?}");
        assert!(err.to_string().contains("install it"));
    }

    #[tokio::test]
    async fn stop_kills_the_whole_group() {
        let (tx, mut rx) = watch::channel(false);
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("grandchild.pid");
        let mut cmd = Command::new("sh");
        // The grandchild ignores nothing but would outlive a plain kill of `sh`.
        cmd.arg("-c").arg(format!("sleep 60 & echo $! > {}; wait", pidfile.display()));
        let handle = tokio::spawn(async move { run(&mut cmd, "", &mut rx).await });
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !pidfile.exists() || std::fs::read_to_string(&pidfile).unwrap().trim().is_empty() {
            assert!(std::time::Instant::now() < deadline, "grandchild never started");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let grandchild: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
        tx.send(true).unwrap();
        let err = handle.await.unwrap().unwrap_err();
        assert!(matches!(err, RunError::Cancelled { .. }));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while alive(grandchild) {
            assert!(std::time::Instant::now() < deadline, "grandchild {grandchild} outlived the stop");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Alive and not a zombie (a container's init may be slow to reap).
    fn alive(pid: i32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => !stat.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'),
            Err(_) => false,
        }
    }

    #[tokio::test]
    async fn reports_the_cpu_of_the_child_and_what_it_waited_for() {
        let (_tx, mut rx) = watch::channel(false);
        // The busy loop runs in a grandchild that `sh` waits for: its CPU counts too.
        let busy = "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done";
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(format!("sh -c '{busy}'; true"));
        let (out, measured) = crate::cpu::measure(run(&mut cmd, "", &mut rx)).await;
        let out = out.unwrap();
        assert!(out.status.success());
        assert!(out.cpu > Duration::from_millis(20), "a shell counting to 300000 used {:?}", out.cpu);
        assert_eq!(measured, out.cpu, "the task's measure hears of the child");
        let mut idle = Command::new("sleep");
        idle.arg("0.2");
        let out = run(&mut idle, "", &mut rx).await.unwrap();
        assert!(out.cpu < Duration::from_millis(150), "sleep used {:?}", out.cpu);
    }

    #[tokio::test]
    async fn keeps_only_the_tail() {
        let (_tx, mut rx) = watch::channel(false);
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "head -c 200000 /dev/zero | tr '\\0' a >&2; echo END >&2"]);
        let out = run(&mut cmd, "", &mut rx).await.unwrap();
        assert!(out.stderr.len() <= STDERR_KEEP);
        assert!(out.stderr.ends_with("END\n"));
    }
}
