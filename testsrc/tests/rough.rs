//! The rough edges of YouTube's encodes, switched on per profile: B-frames (composition offsets),
//! keyframes at irregular times, a tag strip telling videos apart, and ~5 s DASH fragments whose audio
//! and video boundaries do not line up. Checked on the real files with ffprobe and ffmpeg.

mod common;

use std::path::Path;
use std::process::Command;

use common::start;
use kinetics_testsrc::mp4;
use kinetics_testsrc::{clip_frame_numbers, clip_tags, frame_number_at, Config, Profile, ScenarioEntry};

/// `(pts, dts, keyframe)` of every video packet, in file (decode) order.
fn video_packets(path: &Path) -> Vec<(f64, f64, bool)> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time,dts_time,flags"])
        .args(["-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.split(',');
            Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?, f.next()?.starts_with('K')))
        })
        .collect()
}

fn rough_profile(tag: u32) -> Profile {
    Profile {
        duration_secs: 40.0,
        bframes: 2,
        irregular_keyframes: true,
        tag,
        dash_fragment_secs: 5.0,
        ..Profile::default()
    }
}

#[test]
fn rough_profiles_have_b_frames_irregular_keyframes_tags_and_unaligned_long_fragments() {
    let config = Config::for_tests()
        .with_profile("rough", rough_profile(77))
        .with_profile("other", Profile { tag: 78, ..rough_profile(0) })
        .with_entry("rough", ScenarioEntry::default().with_profile("rough"))
        .with_entry("other", ScenarioEntry::default().with_profile("other"));
    let server = start(config);
    let path = server.video_path("rough");
    let fps = 15.0;

    // B-frames: decode order differs from display order, so presentation times are not monotonic.
    let packets = video_packets(path);
    assert_eq!(packets.len(), 40 * 15);
    assert!(packets.iter().any(|(pts, dts, _)| (pts - dts).abs() > 0.5 / fps), "composition offsets");
    assert!(packets.windows(2).any(|w| w[1].0 < w[0].0), "frames stored out of display order");

    // Keyframes at every forced time, never more than 10 s apart, with gaps of 5 s and more.
    let mut keys: Vec<f64> = packets.iter().filter(|p| p.2).map(|p| p.0).collect();
    keys.sort_by(f64::total_cmp);
    let first_pts = packets.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
    for t in server.profile_for("rough").irregular_keyframe_secs() {
        assert!(keys.iter().any(|k| (k - first_pts - t).abs() < 0.5 / fps), "a keyframe at {t} s in {keys:?}");
    }
    let gaps: Vec<f64> = keys.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.iter().all(|g| *g <= 10.0 + 1e-6), "gaps {gaps:?}");
    assert!(gaps.iter().any(|g| *g >= 7.0), "long gaps {gaps:?}");

    // Every frame still shows its number where it is displayed, and the tag tells the videos apart.
    assert_eq!(clip_frame_numbers(path).unwrap(), (0, 40 * 15 - 1));
    assert_eq!(frame_number_at(path, 12.0).unwrap(), 180);
    assert!(clip_tags(path).unwrap().iter().all(|t| *t == Some(77)));
    assert!(clip_tags(server.video_path("other")).unwrap().iter().all(|t| *t == Some(78)));

    // DASH: video fragments start on keyframes at least 5 s apart; audio fragments are 5 s long, and
    // some audio boundaries fall where no video boundary is.
    let dash = server.dash_media("rough");
    let video = mp4::sidx_fragments(&dash.video.path).unwrap();
    let audio = mp4::sidx_fragments(&dash.audio.as_ref().unwrap().path).unwrap();
    let starts = |f: &[mp4::Fragment]| f.iter().map(|f| f.start_secs).collect::<Vec<_>>();
    let (vs, as_) = (starts(&video), starts(&audio));
    assert!(vs.windows(2).all(|w| w[1] - w[0] >= 5.0 - 0.5 / fps), "video fragments {vs:?}");
    assert!(as_.windows(2).all(|w| (w[1] - w[0] - 5.0).abs() < 0.05), "audio fragments {as_:?}");
    let unaligned = as_.iter().filter(|a| vs.iter().all(|v| (*a - v).abs() > 0.1)).count();
    assert!(unaligned >= 2, "audio {as_:?} vs video {vs:?}");
    assert_eq!(clip_frame_numbers(&dash.video.path).unwrap(), (0, 40 * 15 - 1));
    // The DASH video has the progressive file's edit list: frame n is shown at n / fps in both, in step
    // with the audio, although its first decode time comes a composition offset earlier.
    let dash_packets = video_packets(&dash.video.path);
    assert!(dash_packets.iter().any(|(pts, dts, _)| (pts - dts).abs() > 0.5 / fps), "composition offsets");
    assert_eq!(dash_packets.iter().map(|p| p.0).fold(f64::INFINITY, f64::min), first_pts);
    assert_eq!(frame_number_at(&dash.video.path, 12.0).unwrap(), 180);
    assert_eq!(frame_number_at(&dash.video.path, 17.2).unwrap(), 258);
}
