//! Checks one extracted clip the way YouTube clips are checked: not empty, readable by ffprobe, has video,
//! long enough, decodes without a single error.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tokio::process::Command;
use tokio::sync::watch;

use super::report::SHORT_TOLERANCE;
use crate::tools::process::{self, RunError};

const INSTALL_HINT: &str = "install it with `apt-get install ffmpeg`";

/// A decode of a 10 s clip takes about a second; this only catches a wedged tool.
const TOOL_TIMEOUT: Duration = Duration::from_secs(300);

/// The outcome for a clip.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Verdict {
    Good { duration: f64 },
    Bad(String),
    Stopped,
}

/// The tools could not run at all: the machine is broken, not the clip.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("`{program}` was not found; install it with `apt-get install ffmpeg`")]
    NotFound { program: String },
    #[error("failed to run `{program}`")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct Verifier {
    pub ffmpeg: PathBuf,
    pub ffprobe: PathBuf,
}

struct Ran {
    success: bool,
    stdout: Vec<u8>,
    stderr: String,
}

impl Verifier {
    pub async fn check(
        &self,
        path: &Path,
        expected: f64,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<Verdict, ToolError> {
        let size = tokio::fs::metadata(path).await.map(|m| m.len()).unwrap_or(0);
        if size == 0 {
            return Ok(Verdict::Bad("zero-byte clip".into()));
        }
        let mut probe = Command::new(&self.ffprobe);
        probe.args(["-v", "error", "-print_format", "json", "-show_format", "-show_streams"]).arg(path);
        let Some(ran) = run(probe, &self.ffprobe, stop).await? else {
            return Ok(Verdict::Stopped);
        };
        if !ran.success {
            return Ok(Verdict::Bad(format!("ffprobe failed: {}", headline(&ran.stderr, path))));
        }
        let duration = match parse_probe(&ran.stdout) {
            Ok(Probed { has_video: false, .. }) => return Ok(Verdict::Bad("no video stream".into())),
            Ok(Probed { duration: None, .. }) => return Ok(Verdict::Bad("no duration in the container".into())),
            Ok(Probed { duration: Some(d), .. }) => d,
            Err(e) => return Ok(Verdict::Bad(format!("unreadable ffprobe output: {e}"))),
        };
        if duration < expected - SHORT_TOLERANCE {
            return Ok(Verdict::Bad(format!("too short: {duration:.2} s of {expected:.2} s")));
        }
        let mut decode = Command::new(&self.ffmpeg);
        decode.args(["-nostdin", "-hide_banner", "-nostats", "-v", "error"]);
        decode.args(crate::tools::ffmpeg::CHECK_DECODE).arg("-i").arg(path);
        decode.args(["-f", "null", "-"]);
        let Some(ran) = run(decode, &self.ffmpeg, stop).await? else {
            return Ok(Verdict::Stopped);
        };
        if !ran.success || !ran.stderr.trim().is_empty() {
            return Ok(Verdict::Bad(format!("decoding failed: {}", headline(&ran.stderr, path))));
        }
        Ok(Verdict::Good { duration })
    }
}

/// Runs a tool to the end through `tools::process` (own process group, dies with us, stopped with the
/// run); `None` when the stop signal came first.
async fn run(mut cmd: Command, program: &Path, stop: &mut watch::Receiver<bool>) -> Result<Option<Ran>, ToolError> {
    let failed = |stderr: String| Some(Ran { success: false, stdout: Vec::new(), stderr });
    let program = program.display().to_string();
    match tokio::time::timeout(TOOL_TIMEOUT, process::run(&mut cmd, INSTALL_HINT, stop)).await {
        Ok(Ok(o)) => Ok(Some(Ran { success: o.status.success(), stdout: o.stdout, stderr: o.stderr })),
        Ok(Err(RunError::Cancelled { .. })) => Ok(None),
        Ok(Err(RunError::NotFound { .. })) => Err(ToolError::NotFound { program }),
        Ok(Err(RunError::Spawn { source, .. })) => Err(ToolError::Spawn { program, source }),
        Ok(Err(RunError::Wait { source, .. })) => Ok(failed(format!("failed to wait: {source}"))),
        Err(_) => Ok(failed(format!("no answer in {TOOL_TIMEOUT:?}"))),
    }
}

/// The first line of a tool's complaint, without ffmpeg's `[demuxer @ 0x...]` tag or the file name.
fn headline(stderr: &str, path: &Path) -> String {
    let Some(line) = stderr.lines().map(str::trim).find(|l| !l.is_empty()) else {
        return "no message".into();
    };
    let mut line = line;
    if line.starts_with('[') {
        if let Some(end) = line.find("] ") {
            line = &line[end + 2..];
        }
    }
    let shown = format!("{}: ", path.display());
    let line = line.strip_prefix(shown.as_str()).unwrap_or(line);
    line.chars().take(300).collect()
}

#[derive(Debug, PartialEq)]
struct Probed {
    has_video: bool,
    duration: Option<f64>,
}

#[derive(Deserialize)]
struct ProbeJson {
    #[serde(default)]
    streams: Vec<StreamJson>,
    format: Option<FormatJson>,
}

#[derive(Deserialize)]
struct StreamJson {
    codec_type: Option<String>,
    duration: Option<String>,
}

#[derive(Deserialize)]
struct FormatJson {
    duration: Option<String>,
}

/// The container's duration, else the longest stream's.
fn parse_probe(json: &[u8]) -> Result<Probed, serde_json::Error> {
    let p: ProbeJson = serde_json::from_slice(json)?;
    let num = |s: &Option<String>| s.as_deref().and_then(|d| d.parse::<f64>().ok()).filter(|d| d.is_finite());
    let streams = p
        .streams
        .iter()
        .filter_map(|s| num(&s.duration))
        .fold(None, |m: Option<f64>, d| Some(m.map_or(d, |m| m.max(d))));
    Ok(Probed {
        has_video: p.streams.iter().any(|s| s.codec_type.as_deref() == Some("video")),
        duration: p.format.as_ref().and_then(|f| num(&f.duration)).or(streams),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_json_table() {
        let table: [(&str, Probed); 4] = [
            (
                r#"{"streams":[{"codec_type":"video","duration":"9.9"},{"codec_type":"audio"}],"format":{"duration":"10.0"}}"#,
                Probed { has_video: true, duration: Some(10.0) },
            ),
            (
                r#"{"streams":[{"codec_type":"audio","duration":"3.5"}],"format":{}}"#,
                Probed { has_video: false, duration: Some(3.5) },
            ),
            (r#"{"streams":[{"codec_type":"video","duration":"N/A"}]}"#, Probed { has_video: true, duration: None }),
            ("{}", Probed { has_video: false, duration: None }),
        ];
        for (json, want) in table {
            assert_eq!(parse_probe(json.as_bytes()).unwrap(), want, "{json}");
        }
        assert!(parse_probe(b"not json").is_err());
    }

    #[test]
    fn headline_drops_tags_and_file_names() {
        let p = Path::new("/tmp/x.mp4");
        let table = [
            (
                "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55b5a2c101c0] moov atom not found\n/tmp/x.mp4: Invalid data",
                "moov atom not found",
            ),
            ("\n/tmp/x.mp4: Invalid data found when processing input\n", "Invalid data found when processing input"),
            ("", "no message"),
        ];
        for (stderr, want) in table {
            assert_eq!(headline(stderr, p), want);
        }
    }
}
