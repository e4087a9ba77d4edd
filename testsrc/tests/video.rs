//! The generated videos, checked with the real ffmpeg, ffprobe and yt-dlp.

mod common;

use std::path::Path;
use std::process::Command;

use common::{scratch_dir, start};
use kinetics_testsrc::{
    clip_frame_numbers, clip_frame_sequence, frame_number_at, video, Behaviour, Config, Profile, ScenarioEntry,
};
use serde_json::Value;

fn ffprobe_json(path: &Path, extra: &[&str]) -> Value {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-of", "json"])
        .args(extra)
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn streams(path: &Path) -> Vec<Value> {
    let json = ffprobe_json(
        path,
        &["-show_entries", "stream=codec_type,codec_name,width,height,r_frame_rate:format=duration"],
    );
    json["streams"].as_array().unwrap().clone()
}

fn duration(path: &Path) -> f64 {
    let json = ffprobe_json(path, &["-show_entries", "format=duration"]);
    json["format"]["duration"].as_str().unwrap().parse().unwrap()
}

#[test]
fn default_video_is_h264_aac_with_fixed_keyframes() {
    let server = start(Config::for_tests());
    let path = server.video_path("any");
    let streams = streams(path);
    let codecs: Vec<(&str, &str)> =
        streams.iter().map(|s| (s["codec_type"].as_str().unwrap(), s["codec_name"].as_str().unwrap())).collect();
    assert_eq!(codecs, [("video", "h264"), ("audio", "aac")]);
    assert_eq!((streams[0]["width"].as_u64(), streams[0]["height"].as_u64()), (Some(320), Some(180)));
    assert_eq!(streams[0]["r_frame_rate"], "15/1");
    assert!((duration(path) - 30.0).abs() < 0.1, "duration {}", duration(path));

    let keyframes =
        ffprobe_json(path, &["-select_streams", "v:0", "-skip_frame", "nokey", "-show_entries", "frame=pts_time"]);
    let times: Vec<f64> = keyframes["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["pts_time"].as_str().unwrap().parse().unwrap())
        .collect();
    let want: Vec<f64> = (0..15).map(|i| f64::from(i) * 2.0).collect();
    assert_eq!(times, want, "a keyframe every 2 s, nowhere else");
}

#[test]
fn every_frame_shows_its_number() {
    let server = start(Config::for_tests());
    let path = server.video_path("any");
    let fps = server.fps_for("any");
    let numbers = clip_frame_sequence(path).unwrap();
    let want: Vec<Option<u32>> = (0..30 * fps).map(Some).collect();
    assert_eq!(numbers, want);
    assert_eq!(frame_number_at(path, 12.0).unwrap(), 12 * fps);
    assert_eq!(clip_frame_numbers(path).unwrap(), (0, 30 * fps - 1));
}

#[test]
fn numbers_survive_rescaling_reencoding_and_fps_change() {
    let server = start(Config::for_tests());
    let dir = scratch_dir("rescale");
    let clip = dir.join("clip.mp4");
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-ss", "12", "-i"])
        .arg(server.video_path("any"))
        .args(["-t", "3", "-vf", "scale=-2:128,fps=30", "-c:v", "libx264", "-crf", "35", "-an"])
        .arg(&clip)
        .status()
        .unwrap();
    assert!(status.success());
    let sequence = clip_frame_sequence(&clip).unwrap();
    assert_eq!(sequence.len(), 90);
    assert!(sequence.iter().all(Option::is_some), "every frame readable: {sequence:?}");
    let (first, last) = clip_frame_numbers(&clip).unwrap();
    assert_eq!(first, 180);
    assert!((223..=225).contains(&last), "last frame {last}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ffmpeg_seeks_over_http_with_ranges() {
    let server = start(Config::for_tests());
    let url = server.video_url("seekme");
    assert_eq!(frame_number_at(Path::new(&url), 12.0).unwrap(), 180);
    let stats = server.stats();
    assert!(stats.status_count("seekme", 206) >= 2, "ffmpeg seeked with ranges: {:?}", stats.id("seekme"));
}

#[test]
fn named_profiles_are_served_per_id() {
    let alt = Profile { duration_secs: 10.0, width: 256, height: 144, fps: 25, audio: false, ..Profile::default() };
    let config = Config::for_tests()
        .with_profile("alt", alt)
        .with_entry("other", ScenarioEntry::new(Behaviour::Ok).with_profile("alt"));
    let server = start(config);
    assert_ne!(server.video_path("other"), server.video_path("default"));
    assert_eq!(server.fps_for("other"), 25);
    let streams = streams(server.video_path("other"));
    assert_eq!(streams.len(), 1, "no audio stream");
    assert_eq!(streams[0]["r_frame_rate"], "25/1");
    assert_eq!(frame_number_at(server.video_path("other"), 4.0).unwrap(), 100);
    assert_eq!(server.video_len("other"), std::fs::metadata(server.video_path("other")).unwrap().len());
}

#[test]
fn concurrent_generation_yields_one_valid_file() {
    let dir = scratch_dir("gen");
    let profile = Profile { duration_secs: 4.0, width: 160, height: 96, ..Profile::default() };
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let (dir, profile) = (dir.clone(), profile.clone());
            std::thread::spawn(move || video::ensure_video(&dir, &profile).unwrap())
        })
        .collect();
    let paths: Vec<_> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    assert!(paths.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(clip_frame_numbers(&paths[0]).unwrap(), (0, 59));
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn yt_dlp_sees_a_direct_link_and_http_errors() {
    let server = start(Config::for_tests().with_behaviour("missing", Behaviour::Status(404)));
    let url = server.video_url("abc");
    let out = Command::new("yt-dlp").args(["--no-config", "--print", "url", "--print", "id"]).arg(&url).output();
    let out = out.expect("yt-dlp is installed");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{url}\nabc\n"));

    let out = Command::new("yt-dlp").args(["--no-config", "--print", "url"]).arg(server.video_url("missing")).output();
    let out = out.unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("HTTP Error 404"));
}
