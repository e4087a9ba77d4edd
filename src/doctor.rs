//! `kinetics-dl doctor`: checks the machine (yt-dlp, ffmpeg, a JS runtime, disk) and says how to fix it.
//!
//! YouTube changes monthly and yt-dlp follows, so most failed runs trace back to the environment; this
//! is the first thing to run. Every check is ok / warn / fail with a message and, unless ok, a fix.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// yt-dlp releases older than this are likely to miss a YouTube change.
const MAX_YTDLP_AGE_DAYS: i64 = 90;
/// Below this much free space at the output folder the disk check warns.
const MIN_FREE_BYTES: u64 = 10 << 30;
/// A tool that does not answer `--version` within this is as good as missing.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);
/// Minimum versions yt-dlp accepts for each runtime (yt_dlp/utils/_jsruntime.py, 2026.10).
const JS_RUNTIMES: &[(&str, &str, &[u64])] = &[
    ("deno", "deno", &[2, 3, 0]),
    ("node", "node", &[22, 0, 0]),
    ("bun", "bun", &[1, 2, 11]),
    ("quickjs", "qjs", &[2023, 12, 9]),
];

/// How bad a check's finding is; only `Fail` makes `doctor` exit non-zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub message: String,
    /// What to run or change; `None` when there is nothing to fix.
    pub fix: Option<String>,
}

/// Every check, in the order printed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DoctorReport {
    pub checks: Vec<Check>,
}

/// Where to find the tools and what day it is; `Default` means "look on PATH, today".
#[derive(Debug, Clone, Default)]
pub struct DoctorOptions {
    /// yt-dlp executable; `None` tries `yt-dlp` on PATH, then `<python> -m yt_dlp`.
    pub yt_dlp: Option<PathBuf>,
    pub ffmpeg: Option<PathBuf>,
    pub ffprobe: Option<PathBuf>,
    /// Interpreter for the `python -m yt_dlp` fallback and the yt-dlp-ejs import (default `python3`).
    pub python: Option<PathBuf>,
    /// `--ytdlp-python`: the Python of the API workers (default: the one the yt-dlp program names).
    pub ytdlp_python: Option<PathBuf>,
    /// Search path for yt-dlp and the JS runtimes (default: `PATH`).
    pub path: Option<OsString>,
    /// (year, month, day) to compute the yt-dlp release's age against (default: the system clock).
    pub today: Option<(i32, u32, u32)>,
}

/// Runs every check with tools from PATH; `out` is the dataset folder whose disk is checked (cwd if none).
pub fn run(out: Option<&Path>) -> DoctorReport {
    run_with(out, &DoctorOptions::default())
}

/// [`run`] with explicit tool paths and date (tests point these at missing or fake tools).
pub fn run_with(out: Option<&Path>, opts: &DoctorOptions) -> DoctorReport {
    let python = opts.python.clone().unwrap_or_else(|| "python3".into());
    let today = opts.today.map(|(y, m, d)| days_from_civil(y, m, d)).unwrap_or_else(today_days);
    let path = opts.path.clone().or_else(|| std::env::var_os("PATH"));
    let checks = vec![
        check_ytdlp(opts.yt_dlp.as_deref(), &python, path.as_deref(), today),
        check_api(opts.yt_dlp.as_deref(), opts.ytdlp_python.as_deref(), path.as_deref()),
        check_ffmpeg("ffmpeg", opts.ffmpeg.as_deref()),
        check_ffmpeg("ffprobe", opts.ffprobe.as_deref()),
        check_js_runtime(path.as_deref()),
        check_ejs(&python),
        check_formats(&python),
        check_disk(out.unwrap_or(Path::new("."))),
    ];
    DoctorReport { checks }
}

impl DoctorReport {
    /// True when something is broken enough that downloads cannot work (exit code 2).
    pub fn has_failures(&self) -> bool {
        self.count(Status::Fail) > 0
    }

    pub fn count(&self, status: Status) -> usize {
        self.checks.iter().filter(|c| c.status == status).count()
    }
}

impl fmt::Display for DoctorReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self.checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
        for check in &self.checks {
            let mark = match check.status {
                Status::Ok => "✓",
                Status::Warn => "!",
                Status::Fail => "✗",
            };
            writeln!(f, "{mark} {:width$}  {}", check.name, check.message)?;
            if let Some(fix) = &check.fix {
                writeln!(f, "  {:width$}  fix: {fix}", "")?;
            }
        }
        let (warns, fails) = (self.count(Status::Warn), self.count(Status::Fail));
        match (warns, fails) {
            (0, 0) => writeln!(f, "\nAll {} checks passed.", self.checks.len()),
            _ => writeln!(
                f,
                "\n{} ok, {} {}, {} {}",
                self.count(Status::Ok),
                warns,
                plural(warns, "warning"),
                fails,
                plural(fails, "failure")
            ),
        }
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        word.to_owned()
    } else {
        format!("{word}s")
    }
}

fn check(name: &'static str, status: Status, message: String, fix: Option<&str>) -> Check {
    Check { name, status, message, fix: fix.map(str::to_owned) }
}

fn check_ytdlp(explicit: Option<&Path>, python: &Path, path: Option<&OsStr>, today: i64) -> Check {
    const FIX: &str = "pip install -U \"yt-dlp[default]\"";
    let mut tried = Vec::new();
    let mut found = None;
    let mut candidates: Vec<(PathBuf, Vec<&str>, String)> = Vec::new();
    match explicit {
        Some(p) => candidates.push((p.to_owned(), vec!["--version"], p.display().to_string())),
        None => {
            match which("yt-dlp", path) {
                Some(exe) => candidates.push((exe.clone(), vec!["--version"], exe.display().to_string())),
                None => tried.push("yt-dlp on PATH".to_owned()),
            }
            let module = format!("{} -m yt_dlp", python.display());
            candidates.push((python.to_owned(), vec!["-m", "yt_dlp", "--version"], module));
        }
    }
    for (program, args, label) in candidates {
        match probe(&program, &args) {
            Some(out) if out.status.success() => {
                found = Some((String::from_utf8_lossy(&out.stdout).trim().to_owned(), label));
                break;
            }
            _ => tried.push(label),
        }
    }
    let Some((version, via)) = found else {
        return check("yt-dlp", Status::Fail, format!("not found (tried {})", tried.join(", ")), Some(FIX));
    };
    let Some(released) = version_date(&version) else {
        return check("yt-dlp", Status::Warn, format!("{version} via {via}: cannot tell its release date"), Some(FIX));
    };
    if explicit.is_none() && via.ends_with(" -m yt_dlp") {
        let message = format!("{version} only as `{via}`; kinetics-dl runs the `yt-dlp` command");
        let fix = format!("{FIX}, or set --yt-dlp / KINETICS_DL_YTDLP to a yt-dlp executable");
        return check("yt-dlp", Status::Warn, message, Some(&fix));
    }
    // A release newer than the clock (clock skew, injected dates) is simply fresh.
    let age = (today - released).max(0);
    if age > MAX_YTDLP_AGE_DAYS {
        let message = format!("{version} is {age} days old; YouTube changes monthly and old releases break");
        return check("yt-dlp", Status::Warn, message, Some(FIX));
    }
    check("yt-dlp", Status::Ok, format!("{version}, {age} days old ({via})"), None)
}

/// `download --ytdlp-mode api` (the default): the worker script starts with the Python of yt-dlp and
/// answers a ping with yt-dlp's version.
fn check_api(ytdlp: Option<&Path>, python: Option<&Path>, path: Option<&OsStr>) -> Check {
    use crate::tools::extractor;
    const NAME: &str = "yt-dlp API";
    let program = ytdlp.unwrap_or(Path::new("yt-dlp"));
    let python = match python {
        Some(p) => extractor::Python { program: p.to_owned(), zipapp: None },
        None => match extractor::find_python(program, path) {
            Ok(python) => python,
            Err(why) => {
                let message = format!("{why}: downloads start yt-dlp's command line for every clip");
                let fix = "pip install -U \"yt-dlp[default]\" (or pass --ytdlp-python PATH)";
                return check(NAME, Status::Warn, message, Some(fix));
            }
        },
    };
    let mut cmd = Command::new(&python.program);
    cmd.arg("-c").arg(extractor::BOOT).arg(extractor::WORKER_NAME).env("KINETICS_DL_EXTRACTOR", extractor::SCRIPT);
    if let Some(zip) = &python.zipapp {
        cmd.env("KINETICS_DL_YTDLP_ZIP", zip);
    }
    let fix = Some("pip install -U \"yt-dlp[default]\" for this Python, or pass --ytdlp-python PATH");
    let who = python.program.display();
    let Some(out) = probe_cmd(cmd, Some(b"{\"id\": 1, \"op\": \"ping\"}\n")) else {
        return check(NAME, Status::Fail, format!("{who} did not start or did not answer"), fix);
    };
    let answer = String::from_utf8_lossy(&out.stdout);
    match serde_json::from_str::<extractor::Ping>(answer.lines().next().unwrap_or_default()) {
        Ok(ping) => {
            let message =
                format!("the worker answers: yt-dlp {} in {} (one worker pool per egress)", ping.version, ping.python);
            check(NAME, Status::Ok, message, None)
        }
        Err(_) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no answer");
            check(NAME, Status::Fail, format!("the worker under {who} did not answer: {}", last.trim()), fix)
        }
    }
}

fn check_ffmpeg(tool: &'static str, explicit: Option<&Path>) -> Check {
    let program = explicit.map(Path::to_path_buf).unwrap_or_else(|| tool.into());
    let fix = Some("apt-get install ffmpeg");
    match probe(&program, &["-hide_banner", "-version"]) {
        Some(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            let first = text.lines().next().unwrap_or_default();
            let prefix = format!("{tool} version ");
            let version = first.strip_prefix(&prefix).and_then(|v| v.split_whitespace().next()).unwrap_or(first);
            check(tool, Status::Ok, version.to_owned(), None)
        }
        Some(out) => {
            check(tool, Status::Fail, format!("{} -version exited with {}", program.display(), out.status), fix)
        }
        None => check(tool, Status::Fail, format!("{} not found", program.display()), fix),
    }
}

fn check_js_runtime(path: Option<&OsStr>) -> Check {
    const FIX: &str = "pip install deno";
    let mut too_old = Vec::new();
    for &(name, binary, minimum) in JS_RUNTIMES {
        let Some(exe) = which(binary, path) else {
            continue;
        };
        // quickjs has no --version; its --help names the version and exits 1.
        let args: &[&str] = if binary == "qjs" { &["--help"] } else { &["--version"] };
        let Some(out) = probe(&exe, args) else {
            continue;
        };
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        let version = js_version(name, &text).unwrap_or_default();
        // QuickJS-ng numbers its releases 0.x; yt-dlp accepts any of them.
        let ng = text.contains("QuickJS-ng");
        if !ng && version_numbers(&version).as_slice() < minimum {
            too_old.push(format!("{name} {version}"));
        } else if name == "deno" {
            return check("js runtime", Status::Ok, format!("deno {version} (yt-dlp's default)"), None);
        } else {
            let message = format!("{name} {version} found, but yt-dlp enables only deno by default");
            let fix = format!("pass --ytdlp-arg=--js-runtimes={name} to kinetics-dl download, or {FIX}");
            return check("js runtime", Status::Warn, message, Some(&fix));
        }
    }
    let message = if too_old.is_empty() {
        "none of deno, node, bun, quickjs found; YouTube formats will go missing".to_owned()
    } else {
        format!(
            "{} too old for yt-dlp (needs deno ≥ 2.3, node ≥ 22, bun ≥ 1.2.11); YouTube formats will go missing",
            too_old.join(", ")
        )
    };
    check("js runtime", Status::Warn, message, Some(FIX))
}

fn check_ejs(python: &Path) -> Check {
    let fix = Some("pip install -U \"yt-dlp[default]\"");
    let script = "import yt_dlp_ejs; print(getattr(yt_dlp_ejs, 'version', '?'))";
    match probe(python, &["-c", script]) {
        Some(out) if out.status.success() => {
            let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            check("yt-dlp-ejs", Status::Ok, version, None)
        }
        Some(_) => {
            check("yt-dlp-ejs", Status::Warn, "not installed: YouTube's JS challenges cannot be solved".into(), fix)
        }
        None => check("yt-dlp-ejs", Status::Warn, format!("cannot run {} to look for it", python.display()), fix),
    }
}

/// Asks the installed yt-dlp module, offline, which clients it uses for YouTube by default and which of
/// their formats its own table says need a GVS proof-of-origin token. This is yt-dlp's belief, not
/// YouTube's answer: only a download can tell that a format is cut after its first megabyte.
const FORMATS_SCRIPT: &str = "\
import yt_dlp.version as v
from yt_dlp.extractor.youtube._base import INNERTUBE_CLIENTS
from yt_dlp.extractor.youtube._video import YoutubeIE
print('version', v.__version__)
for c in YoutubeIE._DEFAULT_CLIENTS:
    p = INNERTUBE_CLIENTS.get(c, {}).get('GVS_PO_TOKEN_POLICY', {})
    print('client', c, ','.join(k.value for k, x in p.items() if x.required) or '-')
";

fn check_formats(python: &Path) -> Check {
    let fix =
        Some("pip install -U \"yt-dlp[default]\" (a PO-token provider such as bgutil-ytdlp-pot-provider for DASH)");
    match probe(python, &["-c", FORMATS_SCRIPT]) {
        Some(out) if out.status.success() => match token_needs(&String::from_utf8_lossy(&out.stdout)) {
            Some((status, message)) => {
                check("formats", status, message, (status != Status::Ok).then_some(fix).flatten())
            }
            None => check("formats", Status::Warn, "cannot tell which formats need a PO token".into(), fix),
        },
        _ => check("formats", Status::Warn, "cannot ask yt-dlp's module which formats need a PO token".into(), fix),
    }
}

/// Reads [`FORMATS_SCRIPT`]'s lines (`version V`, then `client NAME PROTOCOLS-NEEDING-A-TOKEN|-`) into a
/// status and a message: fine while some default client offers plain https (itag 18) without a token.
pub fn token_needs(text: &str) -> Option<(Status, String)> {
    let version = text.lines().find_map(|l| l.strip_prefix("version "))?.trim();
    let clients: Vec<(&str, Vec<&str>)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("client "))
        .filter_map(|l| l.split_once(' '))
        .map(|(name, needs)| (name, needs.trim().split(',').filter(|n| !n.is_empty() && *n != "-").collect()))
        .collect();
    if clients.is_empty() {
        return None;
    }
    let free = |name: &str| -> Vec<&str> {
        let needs = &clients.iter().find(|(n, _)| *n == name).expect("a listed client").1;
        [("https", "itag 18"), ("dash", "DASH")].iter().filter(|(p, _)| !needs.contains(p)).map(|(_, f)| *f).collect()
    };
    let parts: Vec<String> = clients
        .iter()
        .map(|(name, _)| match free(name).as_slice() {
            [] => format!("{name}: none"),
            formats => format!("{name}: {}", formats.join(", ")),
        })
        .collect();
    let itag18 = clients.iter().any(|(name, _)| free(name).contains(&"itag 18"));
    let message = format!(
        "yt-dlp {version}'s default clients offer without a PO token (by yt-dlp's own table) {}; a DASH format \
         YouTube cuts after its first MB is fetched again from itag 18",
        parts.join("; ")
    );
    Some((if itag18 { Status::Ok } else { Status::Warn }, message))
}

fn check_disk(out: &Path) -> Check {
    // The folder may not exist yet: measure the nearest ancestor that does.
    let at = out.ancestors().find(|p| !p.as_os_str().is_empty() && p.exists()).unwrap_or(Path::new("."));
    let Some(free) = free_bytes(at) else {
        return check("disk", Status::Warn, format!("cannot measure free space at {}", at.display()), None);
    };
    let message = format!("{} free at {} (Kinetics-700 at 360p takes about 630 GB)", gib(free), at.display());
    if free < MIN_FREE_BYTES {
        return check("disk", Status::Warn, message, Some("free some space or choose another --out"));
    }
    check("disk", Status::Ok, message, None)
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: c_path is NUL-terminated and stat points to writable memory of the right type.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), stat.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it filled the struct.
    let stat = unsafe { stat.assume_init() };
    // The field types are u32 on some platforms, u64 on others.
    #[allow(clippy::unnecessary_cast)]
    Some((stat.f_bavail as u64).saturating_mul(stat.f_frsize as u64))
}

/// Runs `program args` with a deadline; `None` when it cannot be started or hangs.
fn probe(program: &Path, args: &[&str]) -> Option<Output> {
    let mut cmd = Command::new(program);
    cmd.args(args);
    probe_cmd(cmd, None)
}

/// Runs `cmd` (with `input` on its stdin, then EOF) to its end within [`PROBE_TIMEOUT`].
fn probe_cmd(mut cmd: Command, input: Option<&[u8]>) -> Option<Output> {
    cmd.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut spawn = || cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn();
    // ETXTBSY: a script written a moment ago may still be open in a concurrently forked child.
    let mut child = (0..5)
        .map(|_| spawn())
        .find(|r| match r {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                std::thread::sleep(Duration::from_millis(50));
                false
            }
            _ => true,
        })?
        .ok()?;
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        use std::io::Write;
        // The answer is small and read after exit: the input is too (a line), so nothing blocks.
        let _ = stdin.write_all(input);
    }
    let deadline = Instant::now() + PROBE_TIMEOUT;
    // Version output is tiny, so polling before reading cannot deadlock on a full pipe.
    while child.try_wait().ok()?.is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().ok()
}

fn which(binary: &str, path: Option<&OsStr>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path?)
        .map(|dir| dir.join(binary))
        .find(|candidate| candidate.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

/// The version a runtime prints: `deno 2.5.6 (...)`, `v22.1.0`, `1.2.11`, `QuickJS version 2024-01-13`.
fn js_version(name: &str, text: &str) -> Option<String> {
    let line = text.lines().find(|l| !l.trim().is_empty())?.trim();
    let version = match name {
        "deno" => line.strip_prefix("deno ")?.split_whitespace().next()?,
        "node" => line.strip_prefix('v')?,
        "quickjs" => line.split("version").nth(1)?.split_whitespace().next()?,
        _ => line.split_whitespace().next()?,
    };
    Some(version.to_owned())
}

fn version_numbers(version: &str) -> Vec<u64> {
    version.split(['.', '-']).map_while(|part| part.parse().ok()).collect()
}

/// yt-dlp versions are release dates: `2026.10.26` (nightlies add `.123456`).
fn version_date(version: &str) -> Option<i64> {
    match version_numbers(version).as_slice() {
        &[y, m, d, ..] if (1..=12).contains(&m) && (1..=31).contains(&d) => {
            Some(days_from_civil(y as i32, m as u32, d as u32))
        }
        _ => None,
    }
}

fn today_days() -> i64 {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    (secs / 86_400) as i64
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i32, m: u32, d: u32) -> i64 {
    let y = i64::from(y) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests;
