//! One clip, start to finish: extract media URLs, fetch the padded window through the relay (or the whole
//! video when that cannot work), cut, verify, and move the clip into place.

use crate::classify::{Category, Disposition};
use crate::cpu::StageCpu;
use crate::governor::rate::{HOLD_BOUND, UNSAID_HOLD};
use crate::governor::{Demand, Gate};
use crate::journal::Done;
use crate::outdir;
use crate::relay::{Expect, Registration, Relay};
use crate::tools::extractor::{Claim, Note};
use crate::tools::ffmpeg::{ClipCheck, Encode, Ffmpeg, Packets, DURATION_TOLERANCE_S as DURATION_TOLERANCE};
use crate::tools::process::StopSignal;
use crate::tools::smartcut;
use crate::tools::ytdlp::{EgressArgs, MediaInfo, YtDlp};
use crate::tools::Failure;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Shared by every clip of a run.
pub struct Engine {
    pub ytdlp: YtDlp,
    pub ffmpeg: Ffmpeg,
    pub relay: Relay,
    /// One way out per egress, in the governor's lane order.
    pub exits: Vec<Exit>,
    pub encode: Encode,
    /// Encodes are CPU-bound: they get their own, smaller limit than fetches.
    pub encode_slots: Arc<Semaphore>,
    pub tmp_dir: PathBuf,
}

/// How one egress leaves: yt-dlp's options and the relay's upstream client.
pub struct Exit {
    pub args: EgressArgs,
    pub client: reqwest::Client,
    /// Upstream refused a DASH format through this egress after serving its first bytes (no proof-of-origin
    /// token): its clips start from itag 18, in this run and (once journaled) in later ones.
    pub dash_refused: DashRefusal,
    /// The egress's learned request rate: extraction and every relay request wait on it, and on its hold
    /// while the egress is banned.
    pub gate: Gate,
    /// The file the gate's hold is told in, for the egress's yt-dlp workers ([`Gate::watch_hold`]); none
    /// without breakers (nothing is held).
    pub hold: Option<PathBuf>,
}

/// Whether upstream refused DASH formats through an egress, and whether the journal has heard of it yet.
#[derive(Debug, Default)]
pub struct DashRefusal(AtomicU8);

const NOT_REFUSED: u8 = 0;
const NEWLY_REFUSED: u8 = 1;
const RECORDED: u8 = 2;

impl DashRefusal {
    /// Refused in an earlier run: the journal says so already.
    pub fn recorded() -> Self {
        DashRefusal(AtomicU8::new(RECORDED))
    }

    pub fn is_refused(&self) -> bool {
        self.0.load(Ordering::Relaxed) != NOT_REFUSED
    }

    fn refuse(&self) {
        let _ = self.0.compare_exchange(NOT_REFUSED, NEWLY_REFUSED, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// `true` once after a refusal this run: the caller journals it.
    pub fn take_new(&self) -> bool {
        self.0.compare_exchange(NEWLY_REFUSED, RECORDED, Ordering::Relaxed, Ordering::Relaxed).is_ok()
    }
}

/// What to do: one clip.
#[derive(Debug, Clone)]
pub struct Task {
    pub clip_id: i64,
    pub url: String,
    pub start: f64,
    pub end: f64,
    pub dest: PathBuf,
    /// The clip is its egress's probe after a cool-off: its requests are paced but never held.
    pub probe: bool,
    /// The requests it is still expected to make through its egress (set by the scheduler as it starts):
    /// each booking is taken off, the rest released once its media is fetched.
    pub demand: Option<Demand>,
}

impl Task {
    /// The gate this clip's requests wait on: the egress's, or its probe's handle.
    fn gate(&self, exit: &Exit) -> Gate {
        let gate = if self.probe { exit.gate.for_probe() } else { exit.gate.clone() };
        gate.for_clip(self.demand.as_ref())
    }
}

/// How a clip ended.
#[derive(Debug)]
pub enum Outcome {
    Done(Done),
    Failed {
        failure: Failure,
        bytes_fetched: u64,
        download_s: f64,
        /// Requests answered with a throttle signal (429, bot check): sent into a ban.
        throttled_requests: u64,
        /// The longest `Retry-After` a media server sent with a 429.
        retry_after: Option<std::time::Duration>,
    },
    /// Stopped by Ctrl-C: the clip stays pending.
    Cancelled,
    /// A request waited for its banned (or slow) egress past its bound and was never sent: the clip goes
    /// back, uncharged; this is no signal from the host.
    Held {
        bytes_fetched: u64,
        download_s: f64,
    },
}

/// The trim recorded for a video clip cut at the window's own times because its window has no frame rate: it
/// may hold the frame on screen at `time_start`, just before the window, and the journal says so.
fn without_rate(trim: &str) -> String {
    const NOTE: &str = "no frame rate: cut at the window's times";
    match trim.strip_suffix(')') {
        Some(open) if open.contains(" (") => format!("{open}; {NOTE})"),
        _ => format!("{trim} ({NOTE})"),
    }
}

/// Requests of a clip answered 429 (or with a bot check), and the longest `Retry-After` among them.
type Throttled = (u64, Option<std::time::Duration>);

impl Engine {
    pub async fn run(&self, task: &Task, lane: usize, mut stop: StopSignal) -> Outcome {
        let work = self.tmp_dir.join(format!("clip-{}-{:08x}", task.clip_id, fastrand::u32(..)));
        if let Err(e) = std::fs::create_dir_all(&work) {
            let f =
                Failure::new(Category::Environment, format!("failed to create temp space {}: {e}", work.display()), "");
            return Outcome::Failed {
                failure: f,
                bytes_fetched: 0,
                download_s: 0.0,
                throttled_requests: 0,
                retry_after: None,
            };
        }
        let outcome = self.run_in(task, &self.exits[lane], &work, &mut stop).await;
        let _ = std::fs::remove_dir_all(&work);
        if *stop.borrow() && !matches!(outcome, Outcome::Done(_)) {
            return Outcome::Cancelled;
        }
        outcome
    }

    async fn run_in(&self, task: &Task, exit: &Exit, work: &Path, stop: &mut StopSignal) -> Outcome {
        let t0 = Instant::now();
        let mut bytes = 0u64;
        let failed = |failure: Failure, bytes: u64, (throttled, retry_after): Throttled, t0: Instant| Outcome::Failed {
            // A throttle signal came in at least one answer; the relay counts its 429s exactly.
            throttled_requests: throttled.max(u64::from(failure.category.disposition() == Disposition::Throttle)),
            retry_after,
            failure,
            bytes_fetched: bytes,
            download_s: t0.elapsed().as_secs_f64(),
        };
        let mut cpu = StageCpu::default();
        let mut itag18 = exit.dash_refused.is_refused();
        let mut refused_requests = 0;
        let mut lifted = false;
        let (info, fetched) = loop {
            let booked = exit.gate.extract_requests();
            // Its requests count as sent as they go (`Gate::went`), not while it waits for a yt-dlp worker.
            let Ok(at) = task.gate(exit).wait_pending(HOLD_BOUND, booked).await else {
                return Outcome::Held { bytes_fetched: bytes, download_s: t0.elapsed().as_secs_f64() };
            };
            // An API worker of the egress may be busy with another clip's extraction, or have to start: a ban
            // that began while this one waited for it holds this one too, as one that began while it waited
            // its turn would.
            let mut claim = match self.ytdlp.reserve(&task.url, &exit.args, stop).await {
                Ok(claim) => claim,
                Err(f) => {
                    exit.gate.sent(booked, 0, at);
                    return failed(f, bytes, (0, None), t0);
                }
            };
            if !task.probe && exit.gate.is_held() {
                exit.gate.sent(booked, 0, at);
                continue;
            }
            // A 429 the extraction met, with its `Retry-After`, as the worker told it.
            let met = Arc::new(Mutex::new(None::<Option<Duration>>));
            if let Some(claim) = claim.as_mut() {
                // Each request counts as sent when the worker says it goes (a new worker sets up first). The
                // watch page met the ban: the egress holds at once, not when yt-dlp has given up.
                let (gate, met) = (exit.gate.clone(), met.clone());
                claim.on_note(move |note| {
                    let retry_after = match note {
                        Note::Sending => return gate.went(at),
                        Note::Throttled(retry_after) => retry_after,
                    };
                    let now = Instant::now();
                    gate.throttled(now, retry_after);
                    if retry_after.is_none() {
                        // Until the breaker hears of it, as the worker holds its egress's other workers.
                        gate.held_by_workers(now + UNSAID_HOLD);
                    }
                    let mut met = met.lock().unwrap_or_else(PoisonError::into_inner);
                    *met = Some(retry_after.max(met.flatten()));
                });
                // A ban that begins once the extraction is in the worker's hands holds what it has not sent.
                if let Some(hold) = &exit.hold {
                    claim.held_at(hold, task.probe, UNSAID_HOLD);
                }
            } else {
                // The command line tells nothing before it ends: its first request counts from its start.
                exit.gate.went(at);
            }
            let (info, extract_cpu) =
                crate::cpu::measure(self.ytdlp.extract_in(&task.url, &exit.args, itag18, claim.as_mut(), stop)).await;
            cpu.extract_s += extract_cpu.as_secs_f64();
            let met = *met.lock().unwrap_or_else(PoisonError::into_inner);
            if let (Some(held), None) = (claim.as_ref().and_then(Claim::held), met) {
                // A ban began (another worker's 429, or the relay's) after this extraction was let go: the worker
                // sent no more of it, and the clip waits at the gate as it would have, uncharged, whatever
                // yt-dlp made of what it could not ask.
                let left = Duration::from_millis(held.until_ms.saturating_sub(crate::journal::now_ms() as u64));
                exit.gate.held_by_workers(Instant::now() + left);
                exit.gate.sent(booked, held.sent, at);
                tracing::debug!(clip = task.clip_id, sent = held.sent, "the extraction waits out its egress's hold");
                continue;
            }
            let info = match info {
                Ok(info) => {
                    match info.extract_requests {
                        Some(n) => exit.gate.extracted(n, booked, at),
                        // The command line does not count them: what it booked went.
                        None => exit.gate.sent(booked, booked, at),
                    }
                    info
                }
                Err(f) => {
                    // What went is what the worker told of; the command line does not say: what it booked.
                    if claim.is_some() {
                        exit.gate.settle(at);
                    } else {
                        exit.gate.sent(booked, booked, at);
                    }
                    // The breaker's cool-off is no shorter than the ban's `Retry-After`, when the worker told it.
                    let retry_after = met.flatten();
                    if f.category.disposition() == Disposition::Throttle {
                        // The watch page met the ban (the relay tells the gate of the media's 429s).
                        exit.gate.throttled(Instant::now(), retry_after);
                    }
                    return failed(f, bytes, (0, retry_after), t0);
                }
            };
            // The worker serves other clips while this one fetches and cuts.
            drop(claim);
            if task.probe && !lifted {
                // The host answered the probe: the requests its ban held may go again (once: if they met a
                // new ban, the hold it brought is the next probe's to lift, not this one's second format's).
                exit.gate.reopened(Instant::now());
                lifted = true;
            }
            let (fetched, fetch_cpu) = crate::cpu::measure(self.fetch(task, exit, &info, itag18, work, stop)).await;
            cpu.fetch_s += fetch_cpu.as_secs_f64();
            match fetched {
                Ok(f) => break (info, f),
                // The format, not the clip, was refused: the same attempt goes again from itag 18, and the
                // egress's later clips start there.
                Err(e) if e.format_refused && !itag18 => {
                    tracing::warn!(
                        clip = task.clip_id,
                        egress = ?exit.args.source_address,
                        format = %info.format_id,
                        "{}: fetching the clip again from itag 18; this egress's next clips start there",
                        e.failure.message
                    );
                    exit.dash_refused.refuse();
                    itag18 = true;
                    bytes += e.bytes;
                    refused_requests += e.requests;
                }
                Err(e) if e.held => {
                    return Outcome::Held { bytes_fetched: bytes + e.bytes, download_s: t0.elapsed().as_secs_f64() }
                }
                Err(e) => return failed(e.failure, bytes + e.bytes, e.throttled, t0),
            }
        };
        cpu.fetch_s += fetched.relay_cpu.as_secs_f64();
        bytes += fetched.bytes;
        let download_s = t0.elapsed().as_secs_f64();
        // The media is fetched: the clip asks its egress for nothing more, and the next clip may count on it.
        if let Some(demand) = &task.demand {
            demand.release();
        }

        let t1 = Instant::now();
        let clip = work.join(format!("clip.{}", crate::tools::ffmpeg::clip_ext(&self.encode)));
        // The clip holds the frames whose time t satisfies time_start <= t < time_end: the cut seeks and
        // stops on those frames' times (`frames_in_window`), also when the window's ends fall between
        // frames. A keyframe copy, or a stream whose rate is unknown, is cut at the window's own times, and
        // so is audio (`--audio-only`), to the sample.
        let (((cut, mut trim), (start, duration)), encode_cpu) = crate::cpu::measure(async {
            use crate::tools::ffmpeg::{cut_points, frames_in_window};
            let window = (task.start, task.end - task.start);
            // The window is read once: `--trim smart` lists its packets, and that listing has the rate too.
            // Both are read in process from the window's Matroska where they can be, without an ffprobe.
            let layout = match self.encode.smart {
                true => Some(match read_window(&fetched.path, true) {
                    Ok(layout) => Ok(layout),
                    Err(why) => {
                        tracing::debug!(clip = task.clip_id, "the window's layout from ffprobe: {why}");
                        self.ffmpeg.layout(&fetched.path, stop).await.map_err(|f| f.message)
                    }
                }),
                false => None,
            };
            let by_times = self.encode.copy || self.encode.audio_only.is_some();
            let rate = match layout.as_ref().and_then(|l| l.as_ref().ok()).and_then(smartcut::Layout::fps) {
                Some(fps) => Ok(Some(fps)),
                None if by_times => Ok(None),
                // The rate decides which frames the cut keeps. A window that cannot be probed fails the
                // attempt: cut at the window's own times, the clip could start on the frame before it.
                None => match read_window(&fetched.path, false).ok().and_then(|l| l.fps()) {
                    Some(fps) => Ok(Some(fps)),
                    None => self.ffmpeg.probe(&fetched.path, stop).await.map(|p| p.fps),
                },
            };
            let fps = match rate {
                Ok(fps) => fps,
                Err(f) => return ((Err(f), String::new()), window),
            };
            let (start, duration) = fps
                .and_then(|fps| Some(cut_points(&frames_in_window(task.start, task.end, fps)?, fps)))
                .unwrap_or(window);
            let _slot = self.encode_slots.acquire().await.expect("encode semaphore never closes");
            let (cut, trim) = self.cut(&fetched.path, layout, start, duration, work, &clip, stop).await;
            let trim = if fps.is_none() && !by_times { without_rate(&trim) } else { trim };
            ((cut, trim), (start, duration))
        })
        .await;
        cpu.encode_s = encode_cpu.as_secs_f64();
        let written = match cut {
            Ok(written) => written,
            Err(f) => return failed(f, bytes, (0, None), t0),
        };
        let source_duration = fetched.source_duration.or(info.duration);
        let (mut verified, verify_cpu) =
            crate::cpu::measure(self.verify(&clip, task, source_duration, written.as_ref(), stop)).await;
        cpu.verify_s = verify_cpu.as_secs_f64();
        if let (Err(f), "smart") = (&verified, trim.as_str()) {
            // A smart cut that does not pass is made again the exact way, and the journal says why.
            tracing::warn!(clip = task.clip_id, "smart cut failed verification ({}): cutting exactly", f.message);
            trim = format!("exact (smart cut failed verification: {})", f.message);
            let (recut, encode_cpu) = crate::cpu::measure(async {
                let _slot = self.encode_slots.acquire().await.expect("encode semaphore never closes");
                self.ffmpeg.cut(&fetched.path, start, duration, &self.encode, &clip, stop).await
            })
            .await;
            cpu.encode_s += encode_cpu.as_secs_f64();
            let written = match recut {
                Ok(written) => written,
                Err(f) => return failed(f, bytes, (0, None), t0),
            };
            let (again, verify_cpu) =
                crate::cpu::measure(self.verify(&clip, task, source_duration, written.as_ref(), stop)).await;
            cpu.verify_s += verify_cpu.as_secs_f64();
            verified = again;
        }
        let probe = match verified {
            Ok(p) => p,
            Err(f) => return failed(f, bytes, (0, None), t0),
        };
        let encode_s = t1.elapsed().as_secs_f64();
        let size_bytes = std::fs::metadata(&clip).map(|m| m.len()).unwrap_or(0);
        if let Err(e) = outdir::place(&clip, &task.dest) {
            let f = Failure::new(
                Category::Environment,
                format!("failed to move the clip to {}: {e}", task.dest.display()),
                "",
            );
            return failed(f, bytes, (0, None), t0);
        }
        Outcome::Done(Done {
            bytes_fetched: bytes,
            media_requests: fetched.requests + refused_requests,
            size_bytes,
            duration_s: probe.duration.unwrap_or(0.0),
            download_s,
            encode_s,
            whole_video: fetched.whole_video,
            format_id: info.format_id.clone(),
            source: "youtube".into(),
            cpu: Some(cpu),
            trim,
        })
    }

    /// Cuts the clip out of its window and says which trim made it: `exact`, `copy`, `smart`, or
    /// `exact (why not smart)` when `--trim smart` could not be used on this source. `layout` is the
    /// window's packet listing (or why there is none) when `--trim smart` asked for it. An encode of the
    /// whole clip also gives the packets it wrote, which the check compares the file with; a smart cut,
    /// whose packets are partly the source's, gives none and is decoded.
    #[allow(clippy::too_many_arguments)]
    async fn cut(
        &self,
        window: &Path,
        layout: Option<Result<smartcut::Layout, String>>,
        start: f64,
        duration: f64,
        work: &Path,
        out: &Path,
        stop: &mut StopSignal,
    ) -> (Result<Option<Packets>, Failure>, String) {
        let Some(layout) = layout else {
            let trim = if self.encode.copy { "copy" } else { "exact" };
            return (self.ffmpeg.cut(window, start, duration, &self.encode, out, stop).await, trim.into());
        };
        let planned = layout.and_then(|layout| smartcut::plan(&layout, start, duration, &self.encode));
        let why = match planned {
            Ok(plan) => match self.ffmpeg.smart_cut(window, &plan, duration, &self.encode, work, out, stop).await {
                Ok(()) => {
                    let (head, copied, tail) = (plan.head_frames, plan.copied_frames, plan.tail_frames);
                    tracing::info!("smart cut: {head} frames encoded, {copied} copied, {tail} encoded after them");
                    return (Ok(None), "smart".into());
                }
                Err(f) => format!("smart cut failed: {}", f.message),
            },
            Err(why) => why,
        };
        tracing::info!("not smart-cut ({why}): cutting exactly");
        (self.ffmpeg.cut(window, start, duration, &self.encode, out, stop).await, format!("exact ({why})"))
    }

    /// Gets the clip's window (or, failing that, the whole video) into `work`.
    async fn fetch(
        &self,
        task: &Task,
        exit: &Exit,
        info: &MediaInfo,
        itag18: bool,
        work: &Path,
        stop: &mut StopSignal,
    ) -> Result<Fetched, FetchError> {
        if info.streams.iter().all(|s| s.is_rangeable()) {
            let gate = task.gate(exit);
            let regs: Vec<Registration> = info
                .streams
                .iter()
                .map(|s| self.relay.register_paced(&s.url, &s.headers, exit.client.clone(), gate.clone()))
                .collect();
            for (reg, stream) in regs.iter().zip(&info.streams) {
                reg.set_window(task.start, task.end + crate::tools::ffmpeg::END_PAD);
                let duration = info.duration.or(stream.duration_hint);
                reg.expect(Expect { duration, fps: stream.fps, fragmented: stream.dash });
            }
            let urls: Vec<String> = regs.iter().map(Registration::url).collect();
            let audio_only = self.encode.audio_only.is_some();
            let path = work.join(if audio_only { "window.ts" } else { "window.mkv" });
            let result = self.ffmpeg.fetch_window(&urls, task.start, task.end, audio_only, &path, stop).await;
            let bytes: u64 = regs.iter().map(Registration::bytes_fetched).sum();
            let throttled = (
                regs.iter().map(Registration::throttled_responses).sum(),
                regs.iter().filter_map(Registration::retry_after).max(),
            );
            let unsupported = regs.iter().any(Registration::range_unsupported);
            // ffmpeg may exit 0 on a cut-short input, and its own words for an HTTP status are vague
            // (`4XX Client Error`): what the relay saw upstream decides.
            let requests: u64 = regs.iter().map(Registration::upstream_requests).sum();
            let upstream = info.streams.iter().zip(&regs).find_map(|(s, r)| Some((s, r, r.last_upstream_error()?)));
            match (result, upstream) {
                (_, Some((stream, reg, err))) if !unsupported => {
                    // A 429 on either stream makes the clip a throttle signal, whichever stream failed first.
                    let category = match throttled.0 {
                        0 => err.status().map_or(Category::Network, crate::classify::http_status),
                        _ => Category::RateLimited,
                    };
                    // The relay's words are the tail the classifier reads: an upstream it could not reach at
                    // all is an outage signal (`classify::unreachable`), not the clip's failure.
                    let failure = Failure::new(category, format!("media fetch failed: {err}"), &err.to_string());
                    let progressive = info.streams.len() == 1 && stream.format_id == "18";
                    let format_refused =
                        crate::retry::format_refused(err.status(), reg.bytes_fetched(), &stream.url, progressive);
                    // Held, not refused: nothing went into the ban (a 429 that did makes it a throttle signal).
                    let held = throttled.0 == 0 && regs.iter().any(Registration::held);
                    return Err(FetchError { failure, bytes, requests, throttled, format_refused, held });
                }
                (Ok(w), None) if !unsupported => {
                    return Ok(Fetched {
                        path,
                        bytes,
                        requests,
                        relay_cpu: regs.iter().map(Registration::cpu).sum(),
                        source_duration: w.source_duration,
                        whole_video: false,
                    });
                }
                (Err(failure), None) if !unsupported => {
                    return Err(FetchError { failure, bytes, requests, throttled, format_refused: false, held: false })
                }
                _ => tracing::info!(clip = task.clip_id, "media server ignores Range: downloading the whole video"),
            }
        }
        if let Err(held) = task.gate(exit).wait(HOLD_BOUND, exit.gate.extract_requests()).await {
            let failure = Failure::new(Category::RateLimited, format!("whole video held for another {:?}", held.0), "");
            return Err(FetchError {
                failure,
                bytes: 0,
                requests: 0,
                throttled: (0, None),
                format_refused: false,
                held: true,
            });
        }
        let path = self.ytdlp.download_whole(&task.url, &exit.args, itag18, work, stop).await.map_err(|failure| {
            FetchError { failure, bytes: 0, requests: 0, throttled: (0, None), format_refused: false, held: false }
        })?;
        let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let duration = self.ffmpeg.probe(&path, stop).await.ok().and_then(|p| p.duration);
        Ok(Fetched {
            path,
            bytes,
            requests: 0,
            relay_cpu: std::time::Duration::ZERO,
            source_duration: duration,
            whole_video: true,
        })
    }

    /// A clip counts only if it reads to the end without a complaint, has a video stream (an audio stream
    /// and no video for `--audio-only`) and the right duration. A clip its encoder wrote whole (`written`:
    /// the exact cut) must hold exactly the packets the encoder wrote; any other clip (the smart cut, whose
    /// packets are partly the source's, a keyframe copy, audio) is decoded to the end.
    async fn verify(
        &self,
        clip: &Path,
        task: &Task,
        source_duration: Option<f64>,
        written: Option<&Packets>,
        stop: &mut StopSignal,
    ) -> Result<ClipCheck, Failure> {
        // One ffmpeg run reads the clip to the end and describes it (streams, duration): no ffprobe first.
        let probe = match written {
            Some(written) => crate::tools::mp4clip::check(&self.ffmpeg, clip, written, stop).await?,
            None => self.ffmpeg.check_clip(clip, stop).await?,
        };
        if !self.has_main_stream(probe.has_video, probe.has_audio) {
            let kind = if self.encode.audio_only.is_some() { "audio" } else { "video" };
            return Err(Failure::new(Category::Corrupt, format!("the clip has no {kind} stream"), ""));
        }
        let want = expected_duration(task.start, task.end, source_duration);
        let got = probe.duration.unwrap_or(0.0);
        if want <= 0.0 {
            return Err(Failure::new(
                Category::Corrupt,
                format!("the video ends before the clip starts ({:.1} s)", task.start),
                "",
            ));
        }
        let too_long = !self.encode.copy && got > want + DURATION_TOLERANCE;
        if got < want - DURATION_TOLERANCE || too_long {
            return Err(Failure::new(
                Category::Corrupt,
                format!("the clip lasts {got:.2} s, expected {want:.2} s"),
                "",
            ));
        }
        Ok(probe)
    }
}

/// The window's layout read in process ([`crate::tools::mkv::read`]), unless `KINETICS_DL_WINDOW_READER=ffprobe`
/// asks for ffprobe always: the way out should that reader ever misread a file ffprobe reads right.
fn read_window(path: &Path, packets: bool) -> Result<smartcut::Layout, String> {
    static FFPROBE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *FFPROBE.get_or_init(|| std::env::var("KINETICS_DL_WINDOW_READER").is_ok_and(|v| v == "ffprobe")) {
        return Err("KINETICS_DL_WINDOW_READER=ffprobe".into());
    }
    crate::tools::mkv::read(path, packets)
}

/// How long a clip must be: its window, less only when the video ends earlier.
pub fn expected_duration(start: f64, end: f64, source_duration: Option<f64>) -> f64 {
    let full = end - start;
    match source_duration {
        Some(d) if d > 0.0 => full.min(d - start),
        _ => full,
    }
}

/// Why a fetch failed, and what it cost.
struct FetchError {
    failure: Failure,
    bytes: u64,
    requests: u64,
    throttled: Throttled,
    /// Upstream refused the format after serving some of it ([`crate::retry::format_refused`]).
    format_refused: bool,
    /// A request waited at the egress's gate past its bound and was not sent: no signal, given back.
    held: bool,
}

struct Fetched {
    path: PathBuf,
    bytes: u64,
    /// Requests the relay sent upstream (0 for a whole video: yt-dlp fetches it itself, uncounted).
    requests: u64,
    /// The relay's share of the fetch's CPU (in-process; the children's is measured around `fetch`).
    relay_cpu: std::time::Duration,
    source_duration: Option<f64>,
    whole_video: bool,
}

impl Engine {
    /// Verifies a clip already at its final name (a crash came between the rename and the journal).
    pub async fn adopt(&self, task: &Task, stop: &mut StopSignal) -> Option<Done> {
        let probe = self.ffmpeg.check_clip(&task.dest, stop).await.ok()?;
        let got = probe.duration.unwrap_or(0.0);
        let want = task.end - task.start;
        if !self.has_main_stream(probe.has_video, probe.has_audio)
            || got <= 0.0
            || (!self.encode.copy && got > want + DURATION_TOLERANCE)
        {
            return None;
        }
        Some(Done {
            size_bytes: std::fs::metadata(&task.dest).ok()?.len(),
            duration_s: got,
            source: "adopted".into(),
            ..Done::default()
        })
    }
}

impl Engine {
    /// The stream a clip is made of: video, or audio for `--audio-only` (which must have no video).
    fn has_main_stream(&self, has_video: bool, has_audio: bool) -> bool {
        match self.encode.audio_only {
            Some(_) => has_audio && !has_video,
            None => has_video,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_duration_table() {
        let table = [
            (84.0, 94.0, None, 10.0),
            (84.0, 94.0, Some(300.0), 10.0),
            (84.0, 94.0, Some(90.0), 6.0),
            (84.0, 94.0, Some(80.0), -4.0),
            (0.0, 10.0, Some(0.0), 10.0),
        ];
        for (s, e, d, want) in table {
            assert!((expected_duration(s, e, d) - want).abs() < 1e-9, "{s} {e} {d:?}");
        }
    }

    #[test]
    fn a_cut_without_a_frame_rate_says_so() {
        let table = [
            ("exact", "exact (no frame rate: cut at the window's times)"),
            ("smart", "smart (no frame rate: cut at the window's times)"),
            ("exact (codec vp9)", "exact (codec vp9; no frame rate: cut at the window's times)"),
        ];
        for (trim, want) in table {
            assert_eq!(without_rate(trim), want);
        }
    }
}
