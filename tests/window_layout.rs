//! The smart cut's plan and the exact cut's frame rate come from the window read in process
//! (`tools::mkv::read`, no ffprobe start) wherever that reader answers, and it must answer as ffprobe does:
//! windows written by the real ffmpeg the way `fetch_window` writes them (`WINDOW_MUX`), from sources the
//! real x264 encodes at YouTube's frame rates, profiles and with and without B-frames, are read both ways
//! and their streams, packets, frame rates and smart-cut plans compared. Where the reader cannot say what
//! ffprobe would (no H.264 reordering stated, field coding, another codec) it must decline, and the cut
//! asks ffprobe.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::ffmpeg;

use kinetics_dl::tools::ffmpeg::{cut_points, frames_in_window, Encode, Ffmpeg, WINDOW_MUX};
use kinetics_dl::tools::mkv;
use kinetics_dl::tools::smartcut::{plan, Layout};

/// A 12 s source encoded by x264 at `rate` with `video` options and AAC audio, and its window from 3.3 s to
/// 10.4 s written as `fetch_window` writes it.
fn window(dir: &Path, name: &str, rate: &str, video: &[&str]) -> PathBuf {
    window_with_audio_at(dir, name, rate, video, 44100)
}

/// [`window`] with its AAC at `hz`.
fn window_with_audio_at(dir: &Path, name: &str, rate: &str, video: &[&str], hz: u32) -> PathBuf {
    let source = dir.join(format!("{name}.mp4"));
    let src = format!("testsrc=size=160x96:rate={rate}");
    let sine = format!("sine=frequency=440:sample_rate={hz}");
    let mut args = vec!["-f", "lavfi", "-i", &src, "-f", "lavfi", "-i", &sine];
    args.extend(["-t", "12", "-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "ultrafast"]);
    args.extend(["-x264-params", "keyint=48:min-keyint=48:scenecut=0"]);
    args.extend(video);
    args.extend(["-c:a", "aac", "-b:a", "64k"]);
    let source_s = source.to_str().unwrap();
    args.push(source_s);
    ffmpeg(&args);
    let out = dir.join(format!("{name}.mkv"));
    let mut args = vec!["-ss", "3.300", "-to", "10.400", "-i", source_s, "-map", "0:v:0", "-map", "0:a:0?"];
    args.extend(WINDOW_MUX);
    args.push(out.to_str().unwrap());
    ffmpeg(&args);
    out
}

async fn ffprobe_layout(path: &Path) -> Layout {
    let (_tx, mut stop) = tokio::sync::watch::channel(false);
    Ffmpeg::default()
        .layout(path, &mut stop)
        .await
        .unwrap_or_else(|e| panic!("ffprobe {}: {}", path.display(), e.message))
}

/// Every field the plan reads, and every packet, the same both ways; the same frame rate (exactly: it
/// decides which frames a cut keeps); the same plan for clips starting on each frame of the window's first
/// seconds and between frames.
fn assert_same(name: &str, ours: &Layout, theirs: &Layout) {
    assert_eq!(ours.streams.len(), theirs.streams.len(), "{name}: streams");
    for (a, b) in ours.streams.iter().zip(&theirs.streams) {
        assert_eq!((a.index, &a.codec_type, &a.codec_name), (b.index, &b.codec_type, &b.codec_name), "{name}");
        if a.codec_type.as_deref() == Some("video") {
            let fields = |s: &kinetics_dl::tools::smartcut::StreamInfo| {
                (s.profile.clone(), s.level, s.pix_fmt.clone(), s.has_b_frames, s.field_order.clone())
            };
            assert_eq!(fields(a), fields(b), "{name}: the video stream's fields");
            assert_eq!(a.avg_frame_rate, b.avg_frame_rate, "{name}: avg_frame_rate");
        } else {
            // The profile decides whether the smart cut copies the sound (AAC-LC) or encodes it.
            assert_eq!(a.profile, b.profile, "{name}: the audio's profile");
        }
    }
    let packets = |l: &Layout| -> Vec<(i64, String, bool)> {
        l.packets.iter().map(|p| (p.stream_index, p.pts_time.clone().unwrap(), p.flags.starts_with('K'))).collect()
    };
    let (a, b) = (packets(ours), packets(theirs));
    assert!(a.len() > 100, "{name}: {} packets", a.len());
    // ffprobe lists packets in the order the demuxer returns them, which is the file's.
    assert_eq!(a, b, "{name}: packets");
    let fps = ours.fps().unwrap_or_else(|| panic!("{name}: no frame rate"));
    assert_eq!(Some(fps), theirs.fps(), "{name}: frame rate");
    let encode = Encode::default();
    for tenth in 0..40 {
        let t = 3.3 + tenth as f64 * 0.05;
        let (start, duration) = cut_points(&frames_in_window(t, t + 5.0, fps).unwrap(), fps);
        assert_eq!(
            plan(ours, start, duration, &encode),
            plan(theirs, start, duration, &encode),
            "{name}: the plan for a clip from {t:.2} s"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_window_read_in_process_is_what_ffprobe_lists() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // (name, frame rate, x264 options, the plan the first clip gets: Ok = smart-cut, Err = why not).
    type Case<'a> = (&'a str, &'a str, &'a [&'a str], Result<(), &'a str>);
    let cases: [Case; 8] = [
        ("high30", "30", &["-profile:v", "high", "-bf", "0"], Ok(())),
        ("ntsc", "30000/1001", &["-profile:v", "high", "-bf", "0"], Ok(())),
        ("baseline15", "15", &["-profile:v", "baseline"], Ok(())),
        ("main25", "25", &["-profile:v", "main", "-bf", "0"], Ok(())),
        ("film", "24000/1001", &["-profile:v", "high", "-bf", "2"], Ok(())),
        ("fullrange", "24", &["-profile:v", "main", "-bf", "0", "-color_range", "pc"], Err("pixel format yuvj420p")),
        ("sixty", "60", &["-profile:v", "high", "-bf", "3"], Ok(())),
        // ffprobe reads 60000/1001 back as 19001/317 (`mkv::reduce`); so must the reader.
        ("ntsc60", "60000/1001", &["-profile:v", "main", "-bf", "0"], Ok(())),
    ];
    for (name, rate, video, want) in cases {
        let path = window(dir, name, rate, video);
        let ours = mkv::read(&path, true).unwrap_or_else(|e| panic!("{name}: the reader declined: {e}"));
        let theirs = ffprobe_layout(&path).await;
        assert_same(name, &ours, &theirs);
        let fps = ours.fps().unwrap();
        let (start, duration) = cut_points(&frames_in_window(4.0, 9.0, fps).unwrap(), fps);
        match (plan(&ours, start, duration, &Encode::default()), want) {
            (Ok(_), Ok(())) => {}
            (Err(why), Err(want)) => assert!(why.contains(want), "{name}: {why} does not say {want}"),
            (got, want) => panic!("{name}: planned {got:?}, meant {want:?}"),
        }
        // The exact cut reads only the header, for the rate.
        let header = mkv::read(&path, false).unwrap();
        assert!(header.packets.is_empty(), "{name}: the header alone");
        assert_eq!(header.fps(), theirs.fps(), "{name}: the rate from the header");
        let (_tx, mut stop) = tokio::sync::watch::channel(false);
        let probed = Ffmpeg::default().probe(&path, &mut stop).await.unwrap();
        assert_eq!(header.fps(), probed.fps, "{name}: the rate ffprobe's probe gives");
    }
}

/// Where the reader cannot say what ffprobe would, it declines, and the cut asks ffprobe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reader_declines_what_it_cannot_vouch_for() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Field coding (x264's interlaced mode: the SPS allows fields, the muxer flags the track interlaced):
    // ffprobe decides what the frames are.
    let interlaced = window(dir, "interlaced", "30", &["-profile:v", "high", "-bf", "0", "-flags", "+ilme+ildct"]);
    let why = mkv::read(&interlaced, true).unwrap_err();
    assert!(why.contains("interlaced"), "{why}");
    // The header alone still gives the rate, as ffprobe does.
    let (_tx, mut stop) = tokio::sync::watch::channel(false);
    let probed = Ffmpeg::default().probe(&interlaced, &mut stop).await.unwrap();
    assert_eq!(mkv::read(&interlaced, false).unwrap().fps(), probed.fps);
    // Not Matroska (an MP4 source, as a whole-video download is): declined.
    assert!(mkv::read(&dir.join("interlaced.mp4"), false).is_err());
    // Written to a pipe, as a live muxer writes: the Segment's size is unknown (ffmpeg cannot seek back to
    // write it), and the reader declines rather than guess where the file ends.
    let piped = dir.join("piped.mkv");
    let o = Command::new("sh")
        .arg("-c")
        .arg("ffmpeg -nostdin -loglevel error -i \"$1\" -map 0 -c copy -f matroska - | cat > \"$2\"")
        .args(["sh", dir.join("interlaced.mp4").to_str().unwrap(), piped.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success() && std::fs::metadata(&piped).unwrap().len() > 1000, "{o:?}");
    let why = mkv::read(&piped, false).unwrap_err();
    assert!(why.contains("known size"), "{why}");
    // Opus trimmed at its end: ffmpeg writes the last packet's discard padding in a BlockGroup, which the
    // reader leaves to ffprobe; the header alone still gives the rate.
    let opus = dir.join("opus.mkv");
    let opus_s = opus.to_str().unwrap();
    let make = "-f lavfi -i testsrc=size=160x96:rate=30 -f lavfi -i sine=sample_rate=48000 -t 2.01 -pix_fmt yuv420p \
                -c:v libx264 -preset ultrafast -c:a libopus -f matroska";
    let mut args: Vec<&str> = make.split_whitespace().collect();
    args.push(opus_s);
    ffmpeg(&args);
    let why = mkv::read(&opus, true).unwrap_err();
    assert!(why.contains("BlockGroup"), "{why}");
    let probed = Ffmpeg::default().probe(&opus, &mut stop).await.unwrap();
    assert_eq!(mkv::read(&opus, false).unwrap().fps(), probed.fps);
    // AAC-LC at 22050 Hz: the reader cannot tell it from HE-AAC signalled in the bitstream alone, so it states
    // no profile and the smart cut encodes the sound; ffprobe, which decodes, says LC. The video is read and
    // planned the same way.
    let low = window_with_audio_at(dir, "low-rate-aac", "30", &["-profile:v", "high", "-bf", "0"], 22050);
    let (ours, theirs) = (mkv::read(&low, true).unwrap(), ffprobe_layout(&low).await);
    let profile = |l: &Layout| l.stream("audio").and_then(|a| a.profile.clone());
    assert_eq!((profile(&ours), profile(&theirs)), (None, Some("LC".to_string())));
    let (start, duration) = cut_points(&frames_in_window(4.0, 9.0, 30.0).unwrap(), 30.0);
    let (p_ours, p_theirs) = (
        plan(&ours, start, duration, &Encode::default()).unwrap(),
        plan(&theirs, start, duration, &Encode::default()).unwrap(),
    );
    assert_eq!((p_ours.copy_audio, p_theirs.copy_audio), (false, true));
    assert_eq!((p_ours.head_frames, p_ours.copied_frames), (p_theirs.head_frames, p_theirs.copied_frames));
    // A truncated window: declined, never a layout with packets missing.
    let cut = dir.join("cut.mkv");
    let high = window(dir, "high", "30", &["-profile:v", "high", "-bf", "0"]);
    let bytes = std::fs::read(&high).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let why = mkv::read(&cut, true).unwrap_err();
    assert!(why.contains("truncated") || why.contains("overruns"), "{why}");
}
