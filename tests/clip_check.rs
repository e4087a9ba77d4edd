//! The download's clip check reads a finished clip once (`Ffmpeg::check_clip`: one ffmpeg decode that also
//! describes the streams and the duration) instead of ffprobe and then a decode. Every damaged file that the
//! two-step check (`probe` + `decode_check`) rejects, the one-step check rejects too: a real clip encoded by
//! ffmpeg as the cut writes it, damaged the ways a transfer or a disk damages files. Both now decode without
//! the loop filter (`tools::ffmpeg::CHECK_DECODE`): they must reject exactly what a decode with it rejects.
//!
//! An exact cut is checked without a decode (`Ffmpeg::check_packets`, and first in process,
//! `tools::mp4clip`): the cut hands over the packets it wrote, and the file must hold exactly those. The same damaged files, made from a real cut, must all fail
//! it, those a decoder conceals too; and the cut's clip must be byte for byte the one its command line wrote
//! before it had that second output.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::ffmpeg;

use kinetics_dl::tools::ffmpeg::{Encode, Ffmpeg};
use kinetics_dl::tools::mp4clip;

/// `good` with `damage` applied, written next to it as `name`.
fn damaged(good: &Path, name: &str, damage: impl Fn(&mut Vec<u8>)) -> PathBuf {
    let mut bytes = std::fs::read(good).unwrap();
    damage(&mut bytes);
    let path = good.with_file_name(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// What the two-step check says: `Ok(duration)` when ffprobe reads a video stream and the decode is clean.
async fn two_step(f: &Ffmpeg, path: &Path) -> Result<Option<f64>, String> {
    let (_tx, mut stop) = tokio::sync::watch::channel(false);
    let probe = f.probe(path, &mut stop).await.map_err(|e| e.message)?;
    if !probe.has_video {
        return Err("no video".into());
    }
    f.decode_check(path, &mut stop).await.map_err(|e| e.message)?;
    Ok(probe.duration)
}

/// A whole decode with the loop filter, as the check decoded before it skipped deblocking
/// (`tools::ffmpeg::CHECK_DECODE`): any complaint rejects the file.
fn deblocked_decode(path: &Path) -> Result<(), String> {
    let o = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-nostats", "-loglevel", "error", "-threads", "1", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    let stderr = String::from_utf8_lossy(&o.stderr);
    if o.status.success() && stderr.trim().is_empty() {
        Ok(())
    } else {
        Err(stderr.into_owned())
    }
}

async fn one_step(f: &Ffmpeg, path: &Path) -> Result<Option<f64>, String> {
    let (_tx, mut stop) = tokio::sync::watch::channel(false);
    let check = f.check_clip(path, &mut stop).await.map_err(|e| e.message)?;
    if !check.has_video {
        return Err("no video".into());
    }
    Ok(check.duration)
}

/// `good` damaged the ways a transfer or a disk damages files, each written next to it, and `audio` (a file
/// without video), with whether each must pass a check: `Some(false)` never, `None` as a decode with
/// deblocking says (single bytes flipped across the video data: whether a decoder notices each depends on
/// where it lands).
fn damages(good: &Path, audio: &Path) -> Vec<(PathBuf, Option<bool>)> {
    let len = std::fs::metadata(good).unwrap().len() as usize;
    let cases: Vec<(PathBuf, Option<bool>)> = vec![
        (good.to_path_buf(), Some(true)),
        (damaged(good, "truncated-half.mp4", |b| b.truncate(b.len() / 2)), Some(false)),
        (damaged(good, "truncated-tail.mp4", |b| b.truncate(b.len() * 97 / 100)), Some(false)),
        (
            damaged(good, "garbled-middle.mp4", |b| b[len / 4..len * 3 / 4].iter_mut().for_each(|x| *x = 0x5a)),
            Some(false),
        ),
        (
            damaged(good, "flipped-bytes.mp4", |b| {
                (len / 2..len / 2 + 2000).step_by(97).for_each(|i| b[i] ^= 0xff);
            }),
            Some(false),
        ),
        (damaged(good, "zeroed-tail.mp4", |b| b[len * 95 / 100..].iter_mut().for_each(|x| *x = 0)), Some(false)),
        (damaged(good, "no-header.mp4", |b| b[..4096].iter_mut().for_each(|x| *x = 0)), Some(false)),
        (damaged(good, "empty.mp4", Vec::clear), Some(false)),
        (damaged(good, "not-media.mp4", |b| *b = b"<html>429 Too Many Requests</html>\n".to_vec()), Some(false)),
        (audio.to_path_buf(), Some(false)),
    ];
    let flips = (1..=9).map(|k| damaged(good, &format!("one-flip-{k}.mp4"), |b| b[len * k / 10] ^= 0x55)).chain(
        (1..=4).map(|k| {
            damaged(good, &format!("few-flips-{k}.mp4"), |b| {
                (0..5).for_each(|i| b[len * k / 5 - 1000 + 211 * i] ^= 0x0f);
            })
        }),
    );
    cases.into_iter().chain(flips.map(|p| (p, None))).collect()
}

/// Whether a whole decode with the loop filter passes the file and finds a video stream in it.
async fn decodes(f: &Ffmpeg, path: &Path) -> bool {
    f.probe(path, &mut tokio::sync::watch::channel(false).1).await.is_ok_and(|p| p.has_video)
        && deblocked_decode(path).is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_one_step_clip_check_rejects_every_file_the_probe_and_decode_reject() {
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("good.mp4");
    let (video, tone) = ("testsrc2=size=320x180:rate=15", "sine=frequency=440:sample_rate=44100");
    let g = good.to_str().unwrap();
    ffmpeg(
        &["-f", "lavfi", "-i", video, "-f", "lavfi", "-i", tone, "-t", "10", "-c:v", "libx264"]
            .into_iter()
            .chain(["-preset", "veryfast", "-threads", "1", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k"])
            .chain(["-movflags", "+faststart", g])
            .collect::<Vec<_>>(),
    );
    let audio = tmp.path().join("audio-only.m4a");
    ffmpeg(&["-f", "lavfi", "-i", tone, "-t", "5", "-c:a", "aac", audio.to_str().unwrap()]);

    let f = Ffmpeg::default();
    let mut rejected_flips = 0;
    for (path, passes) in damages(&good, &audio) {
        let name = path.file_name().unwrap().to_string_lossy();
        let (two, one) = (two_step(&f, &path).await, one_step(&f, &path).await);
        let deblocked = decodes(&f, &path).await;
        println!("{name}: probe + decode {two:?}; one decode {one:?}; with deblocking {deblocked}");
        let passes = passes.unwrap_or(deblocked);
        rejected_flips += usize::from(name.contains("flip") && !deblocked);
        assert_eq!(deblocked, passes, "{name}: the decode with deblocking");
        assert_eq!(two.is_ok(), passes, "{name}: the two-step check");
        assert_eq!(one.is_ok(), passes, "{name}: the one-step check");
        if let (Ok(Some(a)), Ok(Some(b))) = (&two, &one) {
            assert!((a - b).abs() <= 0.01, "{name}: duration {a} by ffprobe, {b} from the decode");
        }
    }
    assert!(rejected_flips >= 3, "the flips must damage frames for the comparison to mean anything: {rejected_flips}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exact_cut_is_checked_against_the_packets_its_encoder_wrote() {
    let tmp = tempfile::tempdir().unwrap();
    // A window as the fetch writes one: H.264 and AAC in Matroska, the clip 1 s in.
    let window = tmp.path().join("window.mkv");
    let (video, tone) = ("testsrc2=size=320x180:rate=15", "sine=frequency=440:sample_rate=44100");
    ffmpeg(
        &["-f", "lavfi", "-i", video, "-f", "lavfi", "-i", tone, "-t", "12", "-c:v", "libx264", "-g", "30"]
            .into_iter()
            .chain(["-preset", "veryfast", "-threads", "1", "-pix_fmt", "yuv420p", "-c:a", "aac", "-f", "matroska"])
            .chain([window.to_str().unwrap()])
            .collect::<Vec<_>>(),
    );
    // The tee muxer's list of outputs has a syntax of its own: the path must reach it whole.
    let dir = tmp.path().join("we|ird [dir] it's a\\path");
    std::fs::create_dir(&dir).unwrap();
    let clip = dir.join("clip.mp4");
    let f = Ffmpeg::default();
    let (_tx, mut stop) = tokio::sync::watch::channel(false);
    let written = f
        .cut(&window, 0.999, 10.0, &Encode::default(), &clip, &mut stop)
        .await
        .unwrap()
        .expect("an encode gives the packets it wrote");
    assert_eq!(written.len(), 150 + 431 + 1, "10 s at 15 fps, and 10 s of 44.1 kHz AAC (a priming frame before it)");

    // The command line of the cut before it had the second output: the same bytes.
    let before = tmp.path().join("before.mp4");
    let b = before.to_str().unwrap();
    let w = window.to_str().unwrap();
    ffmpeg(&[
        "-seek_timestamp",
        "1",
        "-threads",
        "1",
        "-ss",
        "0.999",
        "-i",
        w,
        "-t",
        "10.000",
        "-map",
        "0:v:0",
        "-map",
        "0:a:0?",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-crf",
        "23",
        "-pix_fmt",
        "yuv420p",
        "-threads",
        "1",
        "-filter_threads",
        "1",
        "-c:a",
        "aac",
        "-b:a",
        "128k",
        "-ac",
        "2",
        "-fflags",
        "+bitexact",
        "-flags:v",
        "+bitexact",
        "-flags:a",
        "+bitexact",
        "-map_metadata",
        "-1",
        "-map_chapters",
        "-1",
        "-movflags",
        "+faststart",
        "-f",
        "mp4",
        b,
    ]);
    assert!(std::fs::read(&clip).unwrap() == std::fs::read(&before).unwrap(), "the clip's bytes changed");

    // A good clip passes, described as the decode describes it; read in process too, to the same packets
    // and the same description.
    let read = f.check_packets(&clip, &written, &mut stop).await.expect("the clip as written passes");
    assert_eq!(read, f.check_clip(&clip, &mut stop).await.unwrap());
    assert!(read.has_video && read.has_audio && (read.duration.unwrap() - 10.0).abs() < 0.1, "{read:?}");
    let (packets, described) = mp4clip::read(&clip).expect("the in-process read takes the cut's MP4");
    assert_eq!(written.difference(&packets), None);
    assert_eq!(described, read);
    assert_eq!(mp4clip::check(&f, &clip, &written, &mut stop).await.unwrap(), read);
    // Other settings of the cut: no sound; scaled and at another rate.
    for (name, encode) in [
        ("no-audio.mp4", Encode { no_audio: true, ..Default::default() }),
        ("scaled.mp4", Encode { short_side: Some(90), fps: Some(10.0), ..Default::default() }),
    ] {
        let path = dir.join(name);
        let written = f.cut(&window, 0.999, 10.0, &encode, &path, &mut stop).await.unwrap().unwrap();
        let by_ffmpeg = f.check_packets(&path, &written, &mut stop).await.expect(name);
        let (packets, described) = mp4clip::read(&path).expect(name);
        assert_eq!(written.difference(&packets), None, "{name}");
        assert_eq!(described, by_ffmpeg, "{name}");
    }

    // Every damaged file fails, whatever a decode says of it.
    let good = tmp.path().join("good.mp4");
    std::fs::copy(&clip, &good).unwrap();
    let audio = tmp.path().join("audio-only.m4a");
    ffmpeg(&["-f", "lavfi", "-i", tone, "-t", "5", "-c:a", "aac", audio.to_str().unwrap()]);
    let (mut concealed, mut caught_by_decode) = (0, 0);
    for (path, passes) in damages(&good, &audio) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let by_packets = f.check_packets(&path, &written, &mut stop).await.map_err(|e| e.message);
        let by_decode = decodes(&f, &path).await;
        // The in-process read passes a file only if it finds the packets as written.
        let in_process = mp4clip::read(&path).map(|(back, _)| written.difference(&back));
        let combined = mp4clip::check(&f, &path, &written, &mut stop).await.map_err(|e| e.message);
        println!("{name}: packets {by_packets:?}; decode passes {by_decode}; in process {in_process:?}");
        if passes == Some(true) {
            assert!(by_packets.is_ok() && by_decode && combined.is_ok(), "{name}");
            assert_eq!(in_process, Ok(None), "{name}");
            continue;
        }
        assert!(by_packets.is_err(), "{name} passed the packets' check");
        assert!(!matches!(in_process, Ok(None)), "{name} passed the in-process read");
        assert_eq!(combined, by_packets, "{name}: the check with the in-process read first");
        if passes.is_none() {
            concealed += usize::from(by_decode);
            caught_by_decode += usize::from(!by_decode);
        }
    }
    assert!(caught_by_decode >= 3, "the flips must damage frames a decode notices: {caught_by_decode}");
    // Flipped bits in AAC data seldom make a decoder complain; the packets' check sees every one.
    assert!(concealed >= 1, "some flips pass a decode and fail the packets' check: {concealed}");

    // Another clip of the same length is not this one.
    let other = dir.join("other.mp4");
    let others = f.cut(&window, 1.999, 10.0, &Encode::default(), &other, &mut stop).await.unwrap().unwrap();
    assert_eq!(others.len(), written.len());
    let err = f.check_packets(&other, &written, &mut stop).await.unwrap_err();
    assert!(err.message.starts_with("the clip is not what its encoder wrote: stream 0's packet"), "{}", err.message);

    // A keyframe copy gives no packets to check against: its packets are the source's.
    let copy = Encode { copy: true, ..Default::default() };
    assert!(f.cut(&window, 0.999, 10.0, &copy, &dir.join("copy.mp4"), &mut stop).await.unwrap().is_none());
}
