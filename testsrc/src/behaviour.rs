//! Scripted per-id behaviours: how the server answers requests for one video id.
//!
//! Written either as compact strings (`"status:404"`, `"fail_then_ok:503:2"`, `"truncate:0.5"`) on the
//! command line and in JSON, or as tagged JSON objects (`{"fail_then_ok": {"status": 503, "count": 2}}`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How the server answers requests for one id.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(try_from = "BehaviourInput", into = "String")]
pub enum Behaviour {
    /// Serve the video with full Range support.
    #[default]
    Ok,
    /// Answer every request with this status and a short text body.
    Status(u16),
    /// The first `count` requests for the id get `status`, later ones are served normally. The count is
    /// shared by all of the id's resources (`.mp4`, `.mpd` and the DASH tracks): whichever comes first fails.
    FailThenOk { status: u16, count: u32 },
    /// Promise the full Content-Length but close after this fraction of each media body (never the manifest).
    Truncate { fraction: f64 },
    /// A 200 HTML page without any video, as when a video page changed.
    Html,
    /// Serve at most this many media body bytes per second on each connection.
    Slow { bytes_per_sec: u64 },
    /// Ignore Range on media and never advertise it: always 200 with the full body.
    NoRange,
    /// A media server stuck at a place in the file: a media body that reaches `fraction` of the file
    /// promises its full Content-Length, sends the bytes before that point, then neither sends nor closes
    /// (until the client hangs up, or 10 minutes), so the client's read timeout has to notice. Bodies
    /// that end before the point are served whole. With a count, only the id's first `count` bodies
    /// reaching the point stall, later ones are whole.
    Stall { fraction: f64, count: Option<u32> },
    /// A damaged file: every media body is served in full, but the [`GARBLE_LEN`] bytes of the file from
    /// `fraction` of its length on are replaced (each XORed with 0xA5), as bytes damaged at rest would be.
    /// Headers and lengths are unchanged, so only a decoder notices.
    Garble { fraction: f64 },
}

/// How many bytes [`Behaviour::Garble`] damages.
pub const GARBLE_LEN: u64 = 512;

impl Behaviour {
    /// Rejects values the server cannot act on.
    pub fn validate(&self) -> Result<(), String> {
        match *self {
            Behaviour::Status(s) | Behaviour::FailThenOk { status: s, .. } if !(100..=599).contains(&s) => {
                Err(format!("status {s} is not an HTTP status"))
            }
            Behaviour::Status(s) | Behaviour::FailThenOk { status: s, .. } if (100..200).contains(&s) => {
                Err(format!("status {s} is informational and cannot end a response"))
            }
            Behaviour::Truncate { fraction } if !(0.0..1.0).contains(&fraction) => {
                Err(format!("truncate fraction {fraction} is not in [0, 1)"))
            }
            Behaviour::Slow { bytes_per_sec: 0 } => Err("slow rate must be positive".into()),
            Behaviour::Stall { fraction, .. } if !(0.0..1.0).contains(&fraction) => {
                Err(format!("stall fraction {fraction} is not in [0, 1)"))
            }
            Behaviour::Garble { fraction } if !(0.0..1.0).contains(&fraction) => {
                Err(format!("garble fraction {fraction} is not in [0, 1)"))
            }
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Behaviour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Behaviour::Ok => f.write_str("ok"),
            Behaviour::Status(s) => write!(f, "status:{s}"),
            Behaviour::FailThenOk { status, count } => write!(f, "fail_then_ok:{status}:{count}"),
            Behaviour::Truncate { fraction } => write!(f, "truncate:{fraction}"),
            Behaviour::Html => f.write_str("html"),
            Behaviour::Slow { bytes_per_sec } => write!(f, "slow:{bytes_per_sec}"),
            Behaviour::NoRange => f.write_str("no_range"),
            Behaviour::Stall { fraction, count: None } => write!(f, "stall:{fraction}"),
            Behaviour::Stall { fraction, count: Some(n) } => write!(f, "stall:{fraction}:{n}"),
            Behaviour::Garble { fraction } => write!(f, "garble:{fraction}"),
        }
    }
}

impl FromStr for Behaviour {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.trim().split(':');
        let kind = parts.next().unwrap_or_default();
        let args: Vec<&str> = parts.collect();
        let num = |i: usize| -> Result<&str, String> {
            args.get(i).copied().ok_or_else(|| format!("behaviour {s:?} misses argument {}", i + 1))
        };
        let bad = |what: &str| format!("behaviour {s:?}: bad {what}");
        let behaviour = match (kind, args.len()) {
            ("ok", 0) => Behaviour::Ok,
            ("html", 0) => Behaviour::Html,
            ("no_range", 0) => Behaviour::NoRange,
            ("status", 1) => Behaviour::Status(num(0)?.parse().map_err(|_| bad("status"))?),
            ("fail_then_ok", 1 | 2) => Behaviour::FailThenOk {
                status: num(0)?.parse().map_err(|_| bad("status"))?,
                count: args.get(1).map_or(Ok(1), |c| c.parse()).map_err(|_| bad("count"))?,
            },
            ("truncate", 1) => Behaviour::Truncate { fraction: num(0)?.parse().map_err(|_| bad("fraction"))? },
            ("slow", 1) => Behaviour::Slow { bytes_per_sec: num(0)?.parse().map_err(|_| bad("rate"))? },
            ("stall", 1 | 2) => Behaviour::Stall {
                fraction: num(0)?.parse().map_err(|_| bad("fraction"))?,
                count: args.get(1).map(|c| c.parse()).transpose().map_err(|_| bad("count"))?,
            },
            ("garble", 1) => Behaviour::Garble { fraction: num(0)?.parse().map_err(|_| bad("fraction"))? },
            _ => {
                return Err(format!(
                    "unknown behaviour {s:?}; expected ok, html, no_range, status:N, fail_then_ok:N[:COUNT], \
                     truncate:FRACTION, slow:BYTES_PER_SEC, stall:FRACTION[:COUNT] or garble:FRACTION"
                ))
            }
        };
        behaviour.validate()?;
        Ok(behaviour)
    }
}

impl From<Behaviour> for String {
    fn from(b: Behaviour) -> String {
        b.to_string()
    }
}

/// The JSON shapes accepted for a behaviour: a compact string or a tagged object.
#[derive(Deserialize)]
#[serde(untagged)]
enum BehaviourInput {
    Text(String),
    Tagged(Tagged),
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Tagged {
    Ok,
    Status(u16),
    FailThenOk { status: u16, count: u32 },
    Truncate { fraction: f64 },
    Html,
    Slow { bytes_per_sec: u64 },
    NoRange,
    Stall { fraction: f64, count: Option<u32> },
    Garble { fraction: f64 },
}

impl TryFrom<BehaviourInput> for Behaviour {
    type Error = String;

    fn try_from(input: BehaviourInput) -> Result<Self, String> {
        let behaviour = match input {
            BehaviourInput::Text(s) => return s.parse(),
            BehaviourInput::Tagged(Tagged::Ok) => Behaviour::Ok,
            BehaviourInput::Tagged(Tagged::Status(s)) => Behaviour::Status(s),
            BehaviourInput::Tagged(Tagged::FailThenOk { status, count }) => Behaviour::FailThenOk { status, count },
            BehaviourInput::Tagged(Tagged::Truncate { fraction }) => Behaviour::Truncate { fraction },
            BehaviourInput::Tagged(Tagged::Html) => Behaviour::Html,
            BehaviourInput::Tagged(Tagged::Slow { bytes_per_sec }) => Behaviour::Slow { bytes_per_sec },
            BehaviourInput::Tagged(Tagged::NoRange) => Behaviour::NoRange,
            BehaviourInput::Tagged(Tagged::Stall { fraction, count }) => Behaviour::Stall { fraction, count },
            BehaviourInput::Tagged(Tagged::Garble { fraction }) => Behaviour::Garble { fraction },
        };
        behaviour.validate()?;
        Ok(behaviour)
    }
}

/// What one id does and which profile's video it serves.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(from = "EntryInput")]
pub struct ScenarioEntry {
    pub behaviour: Behaviour,
    /// A name from `Config::profiles`; `None` means the default profile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Media URLs are signed, as googlevideo's are: the watch page hands out URLs carrying the client's
    /// IP, an expiry (`Config::url_ttl_secs` on) and a signature over both, and the manifest and media
    /// answer 403 to a request without a valid signature, from another IP, or after the expiry.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub signed: bool,
    /// Media requests (`/v/{id}.mp4` and the DASH tracks) first get a 302 to the same URL with `hop=1`
    /// added to the query, as googlevideo redirects to another host.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub redirect: bool,
}

impl ScenarioEntry {
    pub fn new(behaviour: Behaviour) -> Self {
        ScenarioEntry { behaviour, ..ScenarioEntry::default() }
    }

    pub fn signed(mut self) -> Self {
        self.signed = true;
        self
    }

    pub fn redirected(mut self) -> Self {
        self.redirect = true;
        self
    }

    pub fn with_profile(mut self, name: &str) -> Self {
        self.profile = Some(name.to_owned());
        self
    }
}

/// A scenario entry is either a bare behaviour or `{"behaviour": ..., "profile": ...}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum EntryInput {
    Full(FullEntry),
    Bare(Behaviour),
}

/// Unknown fields must fail here so that `{"status": 404}` falls through to the bare form.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FullEntry {
    #[serde(default)]
    behaviour: Behaviour,
    #[serde(default)]
    profile: Option<String>,
    #[serde(default)]
    signed: bool,
    #[serde(default)]
    redirect: bool,
}

impl From<EntryInput> for ScenarioEntry {
    fn from(input: EntryInput) -> Self {
        match input {
            EntryInput::Full(FullEntry { behaviour, profile, signed, redirect }) => {
                ScenarioEntry { behaviour, profile, signed, redirect }
            }
            EntryInput::Bare(behaviour) => ScenarioEntry::new(behaviour),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_forms_round_trip() {
        let cases = [
            ("ok", Behaviour::Ok),
            ("html", Behaviour::Html),
            ("no_range", Behaviour::NoRange),
            ("status:404", Behaviour::Status(404)),
            ("fail_then_ok:503:2", Behaviour::FailThenOk { status: 503, count: 2 }),
            ("truncate:0.25", Behaviour::Truncate { fraction: 0.25 }),
            ("slow:65536", Behaviour::Slow { bytes_per_sec: 65536 }),
            ("stall:0.25", Behaviour::Stall { fraction: 0.25, count: None }),
            ("stall:0.5:2", Behaviour::Stall { fraction: 0.5, count: Some(2) }),
            ("garble:0.5", Behaviour::Garble { fraction: 0.5 }),
        ];
        for (text, want) in cases {
            assert_eq!(text.parse::<Behaviour>().unwrap(), want, "{text}");
            assert_eq!(want.to_string(), text);
            let json = serde_json::to_string(&want).unwrap();
            assert_eq!(serde_json::from_str::<Behaviour>(&json).unwrap(), want);
        }
        assert_eq!("fail_then_ok:429".parse::<Behaviour>().unwrap(), Behaviour::FailThenOk { status: 429, count: 1 });
    }

    #[test]
    fn bad_strings_are_rejected() {
        for text in [
            "",
            "nope",
            "status",
            "status:abc",
            "status:99",
            "status:700",
            "truncate:1.5",
            "slow:0",
            "ok:1",
            "stall:1",
            "stall:0.5:x",
            "garble:1",
            "garble",
        ] {
            assert!(text.parse::<Behaviour>().is_err(), "{text:?} should be rejected");
        }
    }

    #[test]
    fn tagged_json_forms() {
        let cases = [
            (r#""ok""#, Behaviour::Ok),
            (r#"{"status": 403}"#, Behaviour::Status(403)),
            (r#"{"fail_then_ok": {"status": 503, "count": 3}}"#, Behaviour::FailThenOk { status: 503, count: 3 }),
            (r#"{"truncate": {"fraction": 0.5}}"#, Behaviour::Truncate { fraction: 0.5 }),
            (r#"{"slow": {"bytes_per_sec": 100}}"#, Behaviour::Slow { bytes_per_sec: 100 }),
            (r#"{"garble": {"fraction": 0.25}}"#, Behaviour::Garble { fraction: 0.25 }),
        ];
        for (json, want) in cases {
            assert_eq!(serde_json::from_str::<Behaviour>(json).unwrap(), want, "{json}");
        }
        assert!(serde_json::from_str::<Behaviour>(r#"{"status": 42}"#).is_err());
    }

    #[test]
    fn entries_accept_bare_and_full_forms() {
        let bare: ScenarioEntry = serde_json::from_str(r#"{"status": 404}"#).unwrap();
        assert_eq!(bare, ScenarioEntry::new(Behaviour::Status(404)));
        let full: ScenarioEntry = serde_json::from_str(r#"{"behaviour": "html", "profile": "long"}"#).unwrap();
        assert_eq!(full, ScenarioEntry::new(Behaviour::Html).with_profile("long"));
        let back: ScenarioEntry = serde_json::from_str(&serde_json::to_string(&full).unwrap()).unwrap();
        assert_eq!(back, full);
        let flags: ScenarioEntry = serde_json::from_str(r#"{"signed": true, "redirect": true}"#).unwrap();
        assert_eq!(flags, ScenarioEntry::default().signed().redirected());
        let back: ScenarioEntry = serde_json::from_str(&serde_json::to_string(&flags).unwrap()).unwrap();
        assert_eq!(back, flags);
    }
}
