"""Benchmark 5: AudioSet rows as audio only and as video (issue 11). The same N AudioSet segments (a
segments CSV as published, `#` comments, float times, several labels a row) are downloaded twice from the
same test source, once with `--audio-only` (16 kHz mono FLAC, the AudioSet example of the README) and once
as video with audio (the default). Every number comes from this run: /_stats of the test source, the
journal through `status --json`, RUSAGE_CHILDREN deltas, wall clocks.
"""

from __future__ import annotations

import json
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import clips as k
import common as c

PROFILE = "short"
CASES = {
    "audio": ["--audio-only", "--sample-rate", "16000", "--channels", "1"],
    "video": [],
}
CASE_NAMES = {
    "audio": "`--audio-only --sample-rate 16000 --channels 1` (FLAC)",
    "video": "video with audio (the default)",
}
# AudioSet's label ids and names (class_labels_indices.csv) the rows use.
LABELS = [("/m/09x0r", "Speech"), ("/m/04rlf", "Music"), ("/m/0jbk", "Animal"), ("/m/07yv9", "Vehicle"),
          ("/m/05zppz", "Male speech, man speaking")]


@dataclass
class Row:
    youtube_id: str
    start: float
    end: float
    labels: list[str]


def audioset_rows(n: int) -> list[Row]:
    """`n` made-up AudioSet segments: 10 s each, fractional starts spread over the short video, one to three
    labels a row."""
    dur = k.PROFILES[PROFILE]["duration_secs"]
    step = (dur - c.MAX_CLIP_SECS - 5) / n
    rows = []
    for i in range(n):
        start = round(3.25 + i * step, 3)
        labels = [LABELS[(i + j) % len(LABELS)][0] for j in range(1 + i % 3)]
        rows.append(Row(f"audioset-b{i:02d}", start, start + c.MAX_CLIP_SECS, labels))
    return rows


def write_segments(rows: list[Row], path: Path) -> None:
    lines = ["# Segments csv created by bench/audio.py", f"# num_ytids={len(rows)}, num_segs={len(rows)}",
             "# YTID, start_seconds, end_seconds, positive_labels"]
    lines += [f'{r.youtube_id}, {r.start:.3f}, {r.end:.3f}, "{",".join(r.labels)}"' for r in rows]
    path.write_text("\n".join(lines) + "\n")


def write_labels(path: Path) -> None:
    lines = ["index,mid,display_name"] + [f'{i},{mid},"{name}"' for i, (mid, name) in enumerate(LABELS)]
    path.write_text("\n".join(lines) + "\n")


@dataclass
class Result:
    case: str
    n: int
    done: int = 0
    wall: float = 0.0
    cpu: float = 0.0
    bytes_sent: int = 0
    requests: int = 0
    relay_bytes: int = 0
    kept: int = 0
    window: float = 0.0  # mean bytes per clip of the packets the case needs
    extra: dict = field(default_factory=dict)

    def per(self, x: float) -> float:
        return x / self.n if self.n else 0.0


class Bench:
    def __init__(self, args, kdl: Path, src_bin: Path, work: Path):
        self.args, self.kdl, self.src_bin, self.work = args, kdl, src_bin, work

    def measure(self, src: c.TestSource, case: str, rows: list[Row], window: float) -> Result:
        res = Result(case, len(rows), window=window)
        tmp = c.fresh_dir(self.work / case)
        ann = tmp / "eval_segments.csv"
        write_segments(rows, ann)
        labels = tmp / "class_labels_indices.csv"
        write_labels(labels)
        out = tmp / "out"
        cmd = [str(self.kdl), "download", "--annotations", str(ann), "--labels-file", str(labels), "--out", str(out),
               "--url-template", k.page(src.url, "{youtube_id}"), "-j", str(self.args.jobs), "-q", *CASES[case]]
        before = src.idle_stats()
        started_ms = int(time.time() * 1000)
        cpu0, t0 = c.children_cpu(), time.monotonic()
        ran = c.run_bounded(cmd, self.args.run_timeout, grace_signal=signal.SIGTERM)
        res.wall = time.monotonic() - t0
        res.cpu = c.children_cpu() - cpu0
        after = src.idle_stats()
        res.extra["exit"] = ran.code
        if ran.code != 0:
            res.extra["stderr"] = ran.stderr.strip()[-2000:]
        res.bytes_sent = after["bytes_sent"] - before["bytes_sent"]
        res.requests = after["total_requests"] - before["total_requests"]
        log = [e for e in after["log"] if e["time_ms"] >= started_ms - 50 and e["path"].startswith("/v/")]
        # Which files the media requests read: the DASH audio, the DASH video, or the progressive MP4.
        kinds: dict[str, int] = {}
        for e in log:
            kind = "audio" if e["path"].endswith(".m4a") else "video" if "/video" in e["path"] else "muxed"
            kinds[kind] = kinds.get(kind, 0) + e["bytes"]
        res.extra["media_bytes_by_file"] = kinds
        # After the CPU reading: status is a child too.
        st = c.run_bounded([str(self.kdl), "status", "--out", str(out), "--json"], 60)
        try:
            status = json.loads(st.stdout)
            res.done = status["done"]
            res.relay_bytes = status["bytes_fetched"]
            res.kept = status["bytes_on_disk"]
            res.extra["cpu_per_clip"] = status.get("cpu_per_clip")
            res.extra["classes"] = status.get("classes", {}).get("count")
        except (json.JSONDecodeError, KeyError):
            res.extra["status_error"] = st.stderr.strip()[-500:]
        exts = sorted({p.suffix for p in out.rglob("*") if p.is_file() and p.suffix in (".flac", ".mp4")})
        res.extra["files"] = ",".join(exts)
        if not self.args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        return res

    def run(self) -> list[Result]:
        self.load_before = c.load_average()
        rows = audioset_rows(self.args.n)
        config = {"profile": k.PROFILES[PROFILE], "bandwidth": self.args.bandwidth,
                  "open_range_throttle": {"enabled": False}}
        print("==> starting the test source (the first start encodes the video)", flush=True)
        src = c.TestSource(self.src_bin, config, self.work, "audio")
        results = []
        try:
            muxed = c.PacketIndex(src.media_path())
            audio = c.PacketIndex(src.dash_paths()[1])
            self.source_bytes = {"muxed": muxed.file_size, "audio": audio.file_size}
            self.headers = {"audio": audio.header_bytes, "video": sum(c.header_bytes(p) for p in src.dash_paths())}
            windows = {"audio": sum(audio.window_bytes(r.start, r.end) for r in rows) / len(rows),
                       "video": sum(muxed.window_bytes(r.start, r.end) for r in rows) / len(rows)}
            for case in self.args.cases:
                print(f"--> {CASE_NAMES[case]}, {len(rows)} AudioSet rows", flush=True)
                r = self.measure(src, case, rows, windows[case])
                print(f"    {r.done}/{r.n} done in {r.wall:.1f} s, {c.human_bytes(r.per(r.bytes_sent))}/clip fetched, "
                      f"{c.human_bytes(r.per(r.kept))}/clip kept, {r.per(r.cpu):.2f} CPU s/clip", flush=True)
                if r.extra.get("stderr"):
                    print("    stderr: " + r.extra["stderr"].replace("\n", "\n    "), flush=True)
                results.append(r)
        finally:
            src.close()
        self.load_after = c.load_average()
        return results


def git_commit() -> str:
    """The checkout's commit, and whether files differ from it (the binaries may not be of the commit)."""
    head = c.run_bounded(["git", "-C", str(c.REPO), "rev-parse", "--short", "HEAD"], 30).stdout.strip() or "unknown"
    dirty = c.run_bounded(["git", "-C", str(c.REPO), "status", "--porcelain", "--untracked-files=no"], 30).stdout
    return f"commit {head}" + (" with local changes" if dirty.strip() else "")


def report(results: list[Result], args, bench: Bench) -> str:
    p = k.PROFILES[PROFILE]
    parts = [
        "## Benchmark 5: AudioSet rows as audio only and as video (issue 11)" + (f" [{args.section}]" if args.section else ""),
        "",
        f"Run: {c.machine_line()}; 1-min load average {bench.load_before} before, {bench.load_after} after (a shared"
        " machine: wall times move with it, bytes and CPU seconds much less)",
        "",
        f"Build: {args.build}; source tree {git_commit()}",
        "",
        f"Command: `{args.command}` (n {args.n}, jobs {args.jobs}, bandwidth {args.bandwidth} B/s)",
        "",
        f"Test source: {p['duration_secs']} s, {p['width']}x{p['height']}, {p['fps']} fps, {p['video_kbps']} kb/s"
        f" video + 64 kb/s AAC (a tone whose pitch encodes the second), 2 s GOP and DASH fragments; the progressive"
        f" file is {c.human_bytes(bench.source_bytes['muxed'])}, its DASH audio-only file"
        f" {c.human_bytes(bench.source_bytes['audio'])}. Rows: {args.n} made-up AudioSet segments"
        " (`eval_segments.csv` as published: `#` comments, `YTID, start, end, \"labels\"`, fractional starts spread"
        " over the video, one to three labels each, named by a `class_labels_indices.csv`), 10 s each; both cases"
        " download the same rows from the same source, one after the other.",
        "",
    ]
    rows = []
    for r in results:
        cpu = r.extra.get("cpu_per_clip") or {}
        stages = cpu.get("total", {}).get("mean_s")
        rows.append([CASE_NAMES[r.case], f"{r.done}/{r.n}", r.extra.get("files", "?"),
                     c.human_bytes(r.per(r.bytes_sent)), c.human_bytes(r.per(r.relay_bytes)),
                     c.human_bytes(r.window), f"{r.per(r.bytes_sent) / r.window:.2f}x" if r.window else "-",
                     c.human_bytes(r.per(r.kept)), f"{r.per(r.requests):.1f}", f"{r.per(r.cpu):.2f}",
                     f"{stages:.2f}" if stages is not None else "?", f"{r.wall:.1f}"])
    parts.append(c.table(["case", "done", "files", "fetched/clip", "read by relay/clip", "window/clip",
                          "fetched/window", "kept/clip", "requests/clip", "CPU s/clip (whole tree)",
                          "CPU s/clip (stages)", "wall s"], rows))
    by = {r.case: r for r in results}
    a, v = by.get("audio"), by.get("video")
    if a and v and v.bytes_sent and v.kept and v.cpu:
        parts += ["", c.table(["audio only / video", "fetched", "read by relay", "kept", "CPU (whole tree)"],
                              [["ratio", f"{a.bytes_sent / v.bytes_sent:.2f}",
                                f"{a.relay_bytes / v.relay_bytes:.2f}" if v.relay_bytes else "-",
                                f"{a.kept / v.kept:.2f}", f"{a.cpu / v.cpu:.2f}"]])]
    parts += ["", "CPU by stage (from the journal, mean / median / p95 s a clip):", ""]
    stage_rows = []
    for r in results:
        cpu = r.extra.get("cpu_per_clip")
        if not cpu or not cpu["total"]["clips"]:
            continue
        stage_rows.append([CASE_NAMES[r.case]] + [f"{cpu[s]['mean_s']:.2f} / {cpu[s]['median_s']:.2f} / {cpu[s]['p95_s']:.2f}"
                                                   for s in ("extract", "fetch", "encode", "verify", "total")])
    parts.append(c.table(["case", "extract", "fetch", "encode", "verify", "total"], stage_rows))
    parts += ["", "Media bytes the source sent, by file: " + "; ".join(
        f"{CASE_NAMES[r.case]}: " + ", ".join(f"{kind} {c.human_bytes(r.per(n))}/clip"
                                              for kind, n in sorted(r.extra.get("media_bytes_by_file", {}).items()))
        for r in results)]
    parts += ["", "fetched = test source `bytes_sent` delta / N (the watch page yt-dlp reads and every media request,"
              " read-ahead a client dropped included). read by relay = the journal's `bytes_fetched` (`status"
              " --json`). window = bytes of the packets with pts in [start, end) that the case needs, from"
              " `ffprobe -show_packets`: the DASH audio file's for audio only, the progressive file's (audio + video,"
              " the same packets as the DASH pair) for video. The files also have a header any reader fetches"
              f" first: {c.human_bytes(bench.headers['audio'])} for the DASH audio file (ftyp, moov, sidx),"
              f" {c.human_bytes(bench.headers['video'])} for the DASH pair. kept = the done clips' sizes (journal)."
              " CPU (whole tree) = RUSAGE_CHILDREN delta / N of the kinetics-dl run (its children included; the test"
              " source is not counted); CPU (stages) = the journal's mean total of extract, fetch, encode and verify."]
    return "\n".join(parts) + "\n"
