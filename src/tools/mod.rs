//! One module per external tool: yt-dlp extracts, ffmpeg fetches and cuts, ffprobe checks.

pub mod extractor;
pub mod ffmpeg;
pub mod mkv;
pub mod mp4clip;
pub mod process;
pub mod smartcut;
pub mod ytdlp;

use crate::classify::Category;

/// A clip-level failure of a tool, classified.
#[derive(Debug, Clone)]
pub struct Failure {
    pub category: Category,
    /// One line that says what went wrong, for tables and `failed.csv`.
    pub message: String,
    /// The end of the tool's stderr, kept in the journal.
    pub stderr_tail: String,
}

impl Failure {
    pub fn new(category: Category, message: impl Into<String>, stderr: &str) -> Self {
        Failure { category, message: message.into(), stderr_tail: crate::classify::stderr_tail(stderr, 4096) }
    }

    /// Classifies a tool's stderr, taking the most telling line as the message.
    pub fn from_stderr(stderr: &str, exit_code: Option<i32>) -> Self {
        let category = crate::classify::classify(stderr, exit_code);
        Failure::new(category, headline(stderr, exit_code), stderr)
    }
}

/// The line of stderr that says most: the last `ERROR:` line, else the last non-empty line.
pub fn headline(stderr: &str, exit_code: Option<i32>) -> String {
    let lines: Vec<&str> = stderr.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let pick = lines.iter().rev().find(|l| l.starts_with("ERROR:")).or_else(|| lines.last()).map(|l| l.to_string());
    let mut line = pick.unwrap_or_else(|| match exit_code {
        Some(code) => format!("exited with code {code} and printed nothing"),
        None => "killed by a signal".to_string(),
    });
    if line.len() > 300 {
        let mut cut = 300;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
        line.push('…');
    }
    line
}
