//! The failure taxonomy: yt-dlp's and ffmpeg's stderr into a category and what to do about it.
//!
//! Exit codes never say why yt-dlp failed (it exits 1 for everything), so the reason is read from stderr:
//! the last `ERROR:` line, the `WARNING:` lines before it and, for section downloads, ffmpeg's own lines.
//! The substrings and their order follow `shared/docs/youtube-and-ytdlp.md`; the exact texts, several of
//! them captured from the installed yt-dlp and ffmpeg against a local server, are the case table
//! `tests/data/classify.tsv` that the unit tests below read.

use std::fmt;
use std::str::FromStr;

/// Failure categories. Names (snake_case) match ../shared/docs/youtube-and-ytdlp.md; the last two are ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    RemovedByUser,
    AccountTerminated,
    Copyright,
    GeoBlocked,
    TermsViolation,
    Private,
    AgeRestricted,
    MembersOnly,
    LiveNotStarted,
    Drm,
    Unavailable,
    BotCheck,
    RateLimited,
    ExtractFailed,
    // snake_case alone would say `http403`.
    #[serde(rename = "http_403")]
    Http403,
    #[serde(rename = "http_404")]
    Http404,
    ServerError,
    Network,
    FormatUnavailable,
    Environment,
    UnsupportedUrl,
    /// The produced clip failed verification (no video stream, wrong duration, undecodable).
    Corrupt,
    /// `--source mirror`: the CVDF mirror has no clip for this row.
    MissingFromMirror,
    Other,
}

/// What the scheduler should do with a clip that failed in a given [`Category`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Disposition {
    /// The video will not become downloadable by retrying: mark the clip failed.
    Permanent,
    /// Transient: retry with bounded exponential backoff, up to [`Category::max_attempts`].
    RetryLater,
    /// The egress is being throttled: cool the egress down and put the clip back to pending without
    /// counting the attempt; the video itself is fine.
    Throttle,
    /// The machine is broken (missing JS runtime, ffmpeg, outdated yt-dlp): stop scheduling and never
    /// mark the clip failed for it.
    Environment,
    /// Only an age-verified account's cookies help: fail now, retry when the user passes `--cookies`.
    NeedsCookies,
}

/// Returned by [`Category::from_str`] for a name that is not in the taxonomy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown failure category `{0}`")]
pub struct UnknownCategory(pub String);

impl Category {
    /// Every category, in declaration order (reports iterate this to print stable tables).
    pub const ALL: [Category; 24] = [
        Category::RemovedByUser,
        Category::AccountTerminated,
        Category::Copyright,
        Category::GeoBlocked,
        Category::TermsViolation,
        Category::Private,
        Category::AgeRestricted,
        Category::MembersOnly,
        Category::LiveNotStarted,
        Category::Drm,
        Category::Unavailable,
        Category::BotCheck,
        Category::RateLimited,
        Category::ExtractFailed,
        Category::Http403,
        Category::Http404,
        Category::ServerError,
        Category::Network,
        Category::FormatUnavailable,
        Category::Environment,
        Category::UnsupportedUrl,
        Category::Corrupt,
        Category::MissingFromMirror,
        Category::Other,
    ];

    /// The snake_case name used in the journal, reports and the serde form.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::RemovedByUser => "removed_by_user",
            Category::AccountTerminated => "account_terminated",
            Category::Copyright => "copyright",
            Category::GeoBlocked => "geo_blocked",
            Category::TermsViolation => "terms_violation",
            Category::Private => "private",
            Category::AgeRestricted => "age_restricted",
            Category::MembersOnly => "members_only",
            Category::LiveNotStarted => "live_not_started",
            Category::Drm => "drm",
            Category::Unavailable => "unavailable",
            Category::BotCheck => "bot_check",
            Category::RateLimited => "rate_limited",
            Category::ExtractFailed => "extract_failed",
            Category::Http403 => "http_403",
            Category::Http404 => "http_404",
            Category::ServerError => "server_error",
            Category::Network => "network",
            Category::FormatUnavailable => "format_unavailable",
            Category::Environment => "environment",
            Category::UnsupportedUrl => "unsupported_url",
            Category::Corrupt => "corrupt",
            Category::MissingFromMirror => "missing_from_mirror",
            Category::Other => "other",
        }
    }

    /// The "what to do" column of the taxonomy table; what it means for a clip (attempts, verdicts) is
    /// decided in `retry.rs`.
    ///
    /// `geo_blocked` is permanent for the egress that saw it (another country's egress may work; the
    /// scheduler may re-queue it there), `private` is permanent without an authorised account.
    pub fn disposition(self) -> Disposition {
        use Category::*;
        match self {
            RemovedByUser | AccountTerminated | Copyright | GeoBlocked | TermsViolation | Private | MembersOnly
            | Drm | Unavailable | FormatUnavailable | UnsupportedUrl | MissingFromMirror => Disposition::Permanent,
            AgeRestricted => Disposition::NeedsCookies,
            BotCheck | RateLimited => Disposition::Throttle,
            Environment => Disposition::Environment,
            LiveNotStarted | ExtractFailed | Http403 | Http404 | ServerError | Network | Corrupt | Other => {
                Disposition::RetryLater
            }
        }
    }

    /// Verdicts YouTube states about the video itself; said in the final error they outrank everything.
    fn is_verdict(self) -> bool {
        use Category::*;
        matches!(
            self,
            RemovedByUser
                | AccountTerminated
                | Copyright
                | GeoBlocked
                | TermsViolation
                | Private
                | AgeRestricted
                | MembersOnly
                | LiveNotStarted
                | Drm
                | Unavailable
        )
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Category {
    type Err = UnknownCategory;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Category::ALL.into_iter().find(|c| c.as_str() == s).ok_or_else(|| UnknownCategory(s.to_owned()))
    }
}

/// One row of the taxonomy: lowercase needles, matched as substrings of the normalised text.
/// `vague` rows name a symptom rather than a cause, so the rest of stderr is consulted for a better one.
struct Rule {
    category: Category,
    needles: &'static [&'static str],
    vague: bool,
}

const fn rule(category: Category, needles: &'static [&'static str]) -> Rule {
    Rule { category, needles, vague: false }
}

const fn vague(category: Category, needles: &'static [&'static str]) -> Rule {
    Rule { category, needles, vague: true }
}

const ENVIRONMENT: &[&str] = &[
    "no supported javascript runtime",
    "n challenge solving failed",
    "signature solving failed",
    "ffmpeg is not installed",
];

const WHOLE_DOWNLOAD: &str = "cannot be partially downloaded";

/// First match wins: most specific first. Verdicts come before the environment because YouTube's
/// playability status is reliable even when formats are missing for lack of a JS runtime.
const RULES: &[Rule] = &[
    rule(Category::RemovedByUser, &["has been removed by the uploader", "uploader has closed their youtube account"]),
    rule(Category::AccountTerminated, &["account associated with this video has been terminated"]),
    rule(Category::Copyright, &["due to a copyright claim"]),
    rule(
        Category::GeoBlocked,
        &[
            "blocked it in your country",
            "not made this video available in your country",
            "not available from your location",
        ],
    ),
    rule(Category::TermsViolation, &["has been removed for violating"]),
    rule(Category::Private, &["private video", "this video is private"]),
    rule(Category::AgeRestricted, &["sign in to confirm your age", "inappropriate for some users", "age-restricted"]),
    rule(Category::MembersOnly, &["members-only content", "channel's members"]),
    rule(Category::LiveNotStarted, &["this live event will begin", "premieres in", "premiere will begin"]),
    rule(Category::Drm, &["drm protected"]),
    rule(
        Category::Unavailable,
        &[
            "video unavailable",
            "this video is unavailable",
            "isn't available anymore",
            "this video is not available",
            "does not exist",
        ],
    ),
    // 410 Gone: the server says the resource is gone for good. Before the throttle rows: ffmpeg's own
    // words for a 410 (`4XX Client Error, but not one of 40{0,1,3,4}`) are those it has for a 429.
    rule(Category::Unavailable, &["http error 410", "server returned 410"]),
    rule(Category::Environment, ENVIRONMENT),
    rule(Category::BotCheck, &["confirm you're not a bot", "requiring a captcha", "your ip is likely being blocked"]),
    rule(
        Category::RateLimited,
        &[
            "http error 429",
            "server returned 429",
            // ffmpeg before 6 has no text for 429; its `[http @ ...] HTTP error 429` line usually precedes it.
            "4xx client error, but not one of 40",
            "rate-limited by youtube",
            "this content isn't available, try again later",
        ],
    ),
    vague(Category::ExtractFailed, &["failed to extract any player response"]),
    rule(Category::Http403, &["http error 403", "server returned 403"]),
    rule(Category::Http404, &["http error 404", "server returned 404"]),
    rule(Category::ServerError, &["http error 5", "server returned 5xx"]),
    rule(
        Category::Network,
        &[
            "connection reset",
            "connection refused",
            "connection aborted",
            "timed out",
            "content too short",
            "network is unreachable",
            "no route to host",
            "temporary failure in name resolution",
            "name or service not known",
            "failed to establish a new connection",
            "remote end closed connection",
            "broken pipe",
            "failed to resolve",
            "unable to connect to proxy",
            "error connecting to socks proxy",
            "sslerror",
            "unexpected tls packet",
        ],
    ),
    // yt-dlp's retry wrapper appends this to whatever failed; the cause, if known, matched above.
    rule(Category::ServerError, &["giving up after"]),
    rule(Category::FormatUnavailable, &[WHOLE_DOWNLOAD]),
    vague(Category::FormatUnavailable, &["requested format is not available"]),
    rule(Category::UnsupportedUrl, &["unsupported url", "is not a valid url"]),
    rule(Category::Corrupt, &["moov atom not found", "invalid data found when processing input"]),
    vague(Category::Network, &["ffmpeg exited with code"]),
];

/// Classifies a failed yt-dlp/ffmpeg run from its stderr (pass a tail, see [`stderr_tail`]).
///
/// Order of evidence: exit code 2 (bad options) or 100 (yt-dlp must be updated) is the environment. A
/// verdict about the video in the last `ERROR:` block wins. Otherwise an environment string anywhere
/// wins, because the machine is broken, not the video. Otherwise a specific cause in the last `ERROR:`
/// block wins; when that block only names a symptom (`ffmpeg exited with code 1`, `Requested format is
/// not available`, `Failed to extract any player response`) or there is no `ERROR:` line (plain ffmpeg),
/// the most specific pattern anywhere in the text decides.
///
/// `Failed to extract any player response` after `Unable to download webpage/API page: HTTP Error 429`
/// warnings is `rate_limited`; after the same warnings with 403 it is `bot_check`: YouTube answers its
/// own pages with 403 when it has flagged the egress, so both are throttle signals, never video faults.
///
/// `This format cannot be partially downloaded` is `format_unavailable`, not `environment`: ffmpeg is
/// there, only the chosen format's protocol cannot be cut remotely. Callers check
/// [`needs_whole_download`] first and fall back to downloading the whole video and cutting locally.
pub fn classify(stderr: &str, exit_code: Option<i32>) -> Category {
    if matches!(exit_code, Some(2) | Some(100)) {
        return Category::Environment;
    }
    let text = normalise(stderr);
    let in_error = last_error_block(&text).and_then(|block| first_rule(&block));
    if let Some(r) = in_error.filter(|r| r.category.is_verdict()) {
        return r.category;
    }
    if ENVIRONMENT.iter().any(|n| text.contains(n)) {
        return Category::Environment;
    }
    if let Some(r) = in_error.filter(|r| !r.vague) {
        return r.category;
    }
    match first_rule(&text).map(|r| r.category) {
        Some(Category::ExtractFailed) if warned_http(&text, "403") => Category::BotCheck,
        Some(category) => category,
        None => Category::Other,
    }
}

/// The category of an HTTP error status a media server answered (the relay sees the status itself, so
/// no text needs reading).
pub fn http_status(status: u16) -> Category {
    match status {
        429 => Category::RateLimited,
        403 => Category::Http403,
        404 => Category::Http404,
        410 => Category::Unavailable,
        s if s >= 500 => Category::ServerError,
        _ => Category::Other,
    }
}

/// Words that say the egress reached nothing at all (no name, no connection, no proxy, no TLS
/// session), not that a transfer broke: resets, short content and read time-outs are left out, since
/// a source that cuts one video says those while the others download.
const UNREACHABLE: &[&str] = &[
    "failed to resolve",
    "temporary failure in name resolution",
    "name or service not known",
    "connection refused",
    "failed to establish a new connection",
    "unable to connect to proxy",
    "error connecting to socks proxy",
    "network is unreachable",
    "no route to host",
    "connect timeout",
    "sslerror",
    "unexpected tls packet",
];

/// True when a `network` failure says the egress could not reach the source at all (see
/// [`UNREACHABLE`]): the signal an outage is made of, as opposed to one clip's broken transfer.
pub fn unreachable(stderr: &str) -> bool {
    let text = normalise(stderr);
    UNREACHABLE.iter().any(|n| text.contains(n))
}

/// True when yt-dlp refused a section download because the format's protocol cannot be cut by ffmpeg:
/// the remedy is downloading the whole video, not stopping the run.
pub fn needs_whole_download(stderr: &str) -> bool {
    normalise(stderr).contains(WHOLE_DOWNLOAD)
}

/// The last `max_bytes` of `s`, starting at a line boundary (or a char boundary when the tail is one
/// long line), for error messages and the journal.
pub fn stderr_tail(s: &str, max_bytes: usize) -> String {
    if s.len() <= max_bytes {
        return s.to_owned();
    }
    let mut start = s.len() - max_bytes;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    let tail = &s[start..];
    if s.as_bytes()[start - 1] == b'\n' {
        return tail.to_owned();
    }
    match tail.find('\n') {
        Some(i) if i + 1 < tail.len() => tail[i + 1..].to_owned(),
        _ => tail.to_owned(),
    }
}

fn normalise(s: &str) -> String {
    s.replace('\u{2019}', "'").to_lowercase()
}

fn first_rule(text: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.needles.iter().any(|n| text.contains(n)))
}

/// The last `ERROR:` line plus its continuation lines (geo errors list countries on the next lines).
fn last_error_block(text: &str) -> Option<String> {
    let lines: Vec<&str> = text.split(['\n', '\r']).map(str::trim_start).collect();
    let start = lines.iter().rposition(|l| l.starts_with("error:"))?;
    let continuation = lines[start + 1..]
        .iter()
        .take_while(|l| !(l.starts_with("warning:") || l.starts_with("error:") || l.starts_with('[')));
    let mut block = lines[start].to_owned();
    for line in continuation {
        block.push('\n');
        block.push_str(line);
    }
    Some(block)
}

/// Whether a WARNING says the webpage or API page request failed with this HTTP status.
fn warned_http(text: &str, status: &str) -> bool {
    text.split(['\n', '\r']).any(|l| {
        l.starts_with("warning:")
            && (l.contains("unable to download webpage") || l.contains("unable to download api page"))
            && l.contains(&format!("http error {status}"))
    })
}

#[cfg(test)]
mod tests;
