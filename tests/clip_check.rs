//! The download's clip check reads a finished clip once (`Ffmpeg::check_clip`: one ffmpeg decode that also
//! describes the streams and the duration) instead of ffprobe and then a decode. Every damaged file that the
//! two-step check (`probe` + `decode_check`) rejects, the one-step check rejects too: a real clip encoded by
//! ffmpeg as the cut writes it, damaged the ways a transfer or a disk damages files. Both now decode without
//! the loop filter (`tools::ffmpeg::CHECK_DECODE`): they must reject exactly what a decode with it rejects.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::ffmpeg;

use kinetics_dl::tools::ffmpeg::Ffmpeg;

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
    let len = std::fs::metadata(&good).unwrap().len() as usize;

    // (file, whether it must pass)
    let cases: Vec<(PathBuf, bool)> = vec![
        (good.clone(), true),
        (damaged(&good, "truncated-half.mp4", |b| b.truncate(b.len() / 2)), false),
        (damaged(&good, "truncated-tail.mp4", |b| b.truncate(b.len() * 97 / 100)), false),
        (damaged(&good, "garbled-middle.mp4", |b| b[len / 4..len * 3 / 4].iter_mut().for_each(|x| *x = 0x5a)), false),
        (
            damaged(&good, "flipped-bytes.mp4", |b| {
                (len / 2..len / 2 + 2000).step_by(97).for_each(|i| b[i] ^= 0xff);
            }),
            false,
        ),
        (damaged(&good, "zeroed-tail.mp4", |b| b[len * 95 / 100..].iter_mut().for_each(|x| *x = 0)), false),
        (damaged(&good, "no-header.mp4", |b| b[..4096].iter_mut().for_each(|x| *x = 0)), false),
        (damaged(&good, "empty.mp4", Vec::clear), false),
        (damaged(&good, "not-media.mp4", |b| *b = b"<html>429 Too Many Requests</html>\n".to_vec()), false),
        (audio, false),
    ];
    // Single bytes flipped across the video data: whether the decoder notices each depends on where it
    // lands, and the check without deblocking must notice exactly what the decode with it notices.
    let flips: Vec<PathBuf> = (1..=9)
        .map(|k| damaged(&good, &format!("one-flip-{k}.mp4"), |b| b[len * k / 10] ^= 0x55))
        .chain((1..=4).map(|k| {
            damaged(&good, &format!("few-flips-{k}.mp4"), |b| {
                (0..5).for_each(|i| b[len * k / 5 - 1000 + 211 * i] ^= 0x0f);
            })
        }))
        .collect();
    let f = Ffmpeg::default();
    let mut rejected_flips = 0;
    // (file, whether it must pass; `None`: as the decode with deblocking says)
    for (path, passes) in cases.into_iter().map(|(p, ok)| (p, Some(ok))).chain(flips.into_iter().map(|p| (p, None))) {
        let name = path.file_name().unwrap().to_string_lossy();
        let (two, one) = (two_step(&f, &path).await, one_step(&f, &path).await);
        let deblocked = f.probe(&path, &mut tokio::sync::watch::channel(false).1).await.is_ok_and(|p| p.has_video)
            && deblocked_decode(&path).is_ok();
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
