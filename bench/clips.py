"""Benchmark 1: bytes, time and CPU per clip for kinetics-dl, the seed's whole-video approach and yt-dlp's
naive --download-sections, each with YouTube's open-range throttle off and on, on a short and an hour-long
video. Every number comes from this run: /_stats of the test source, RUSAGE_CHILDREN deltas, wall clocks.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import common as c

PROFILES = {
    # As the demo: near YouTube's 360p.
    "short": {"duration_secs": 300, "width": 640, "height": 360, "fps": 30, "gop_secs": 2, "audio": True,
              "video_kbps": 700},
    # "short" with B-frames as most of YouTube's H.264 has them: x264's default three, with a pyramid (frames
    # decoded up to two before they are shown). Not in the default set.
    "short-bf": {"duration_secs": 300, "width": 640, "height": 360, "fps": 30, "gop_secs": 2, "audio": True,
                 "video_kbps": 700, "bframes": 3},
    # An hour; 15 fps and 400 kb/s keep the one-time encode to ~10 minutes on 2 cores.
    "long": {"duration_secs": 3600, "width": 640, "height": 360, "fps": 15, "gop_secs": 2, "audio": True,
             "video_kbps": 400},
}
# YouTube's behaviour: open-ended ranges with more than ~10 MB left trickle at ~32 KiB/s.
OPEN_RANGE_THROTTLE = {"enabled": True, "threshold": 10_000_000, "rate": 32768}
APPROACHES = {
    "a": "kinetics-dl --trim exact (DASH video + audio, the default format choice)",
    "a18": "kinetics-dl --trim exact on itag 18 (progressive)",
    # Not in the default set: how a smaller cap on the relay's pieces changes what is read ahead.
    "a1": "kinetics-dl --trim exact --request-size 1MiB",
    # Not in the default set: --trim smart (the default trim) beside the exact cut (run with a,as,a18,as18 to
    # compare CPU/clip).
    "as": "kinetics-dl --trim smart (DASH; the default)",
    "as18": "kinetics-dl --trim smart on itag 18",
    # Not in the default set: no --trim at all, each build's default (exact before issue 10, smart since).
    "ad": "kinetics-dl with its default trim (DASH)",
    # Not in the default set: extraction by one yt-dlp command line a clip (the path before API workers).
    "acli": "kinetics-dl --trim exact --ytdlp-mode cli",
    "b": "seed: whole video + ffmpeg",
    "c": "naive --download-sections",
}
KDL = ("a", "a18", "a1", "as", "as18", "ad", "acli")
# What each kinetics-dl approach adds to its command line. The trim is always named: the default was
# `exact` before issue 10 and is `smart` since, and the a* approaches measure the exact cut in every build.
EXACT = ["--trim", "exact"]
KDL_ARGS = {"a": EXACT, "a18": ["--ytdlp-arg=-f", "--ytdlp-arg=18", *EXACT],
            "a1": ["--request-size", "1048576", *EXACT],
            "as": ["--trim", "smart"], "as18": ["--ytdlp-arg=-f", "--ytdlp-arg=18", "--trim", "smart"],
            "ad": [], "acli": ["--ytdlp-mode", "cli", *EXACT]}


def baseline(approach: str) -> str:
    """The same approach run with `--baseline-bin-dir`'s build."""
    return approach + "@base"


def kind(approach: str) -> str:
    """The approach an `X@base` run repeats."""
    return approach.removesuffix("@base")


def label(approach: str) -> str:
    return APPROACHES[kind(approach)] + (" [baseline build]" if approach != kind(approach) else "")


def page(url: str, youtube_id: str) -> str:
    """The watch page, as on YouTube: it offers itag 18 and the DASH formats; `-f`/`-S` choose."""
    return f"{url}/watch?v={youtube_id}"


def remap(profile: str):
    """Fits a real row's start into the synthetic video: anywhere in the short one, the middle of the long."""
    if profile == "long":
        return lambda s: 1500 + s % 590  # 25:00 .. 34:50 of 60:00
    dur = PROFILES[profile]["duration_secs"]
    return lambda s: s % (dur - c.MAX_CLIP_SECS - 2)


@dataclass
class Result:
    profile: str
    approach: str
    throttle: bool
    n: int
    done: int = 0
    failed: int = 0
    timed_out: int = 0
    wall: float = 0.0
    cpu: float = 0.0
    bytes_sent: int = 0
    requests: int = 0
    peak_tmp: int = 0
    window: float = 0.0  # mean window bytes per clip
    extra: dict = field(default_factory=dict)

    @property
    def per_clip(self) -> float:
        return self.bytes_sent / self.n if self.n else 0.0

    @property
    def ratio(self) -> float:
        return self.per_clip / self.window if self.window else 0.0


class Bench:
    def __init__(self, args, kdl: Path, src_bin: Path, work: Path):
        self.args, self.kdl, self.src_bin, self.work = args, kdl, src_bin, work

    # -------------------------------------------------------------------------------------------- approaches

    def run_kinetics_dl(self, url: str, clips: list[c.Clip], tmp: Path, res: Result, approach: str) -> Path:
        ann = tmp / "clips.csv"
        c.write_annotations(clips, ann)
        out = tmp / "kdl-out"
        kdl = self.args.baseline_kdl if approach != kind(approach) else self.kdl
        extra = KDL_ARGS[kind(approach)]
        cmd = [str(kdl), "download", "--annotations", str(ann), "--out", str(out),
               "--url-template", page(url, "{youtube_id}"), "-j", str(self.args.jobs), "-q", *extra]
        with c.MemorySampler() as mem:
            ran = c.run_bounded(cmd, self.args.run_timeout, grace_signal=signal.SIGTERM, started=mem.started)
        res.extra["exit"] = ran.code
        res.extra["peak_rss"] = mem.peak_leader
        res.extra["peak_tree_rss"] = mem.peak_tree
        if ran.code not in (0,):
            res.extra["stderr"] = ran.stderr.strip()[-2000:]
        return out

    def run_seed(self, url: str, clips: list[c.Clip], tmp: Path, res: Result, throttle: bool) -> None:
        outdir = tmp / "seed-out"
        outdir.mkdir(parents=True, exist_ok=True)
        chunk = ["--http-chunk-size", "10M"] if throttle else []
        errors: list[str] = []

        def one(clip: c.Clip) -> str:
            work = tmp / "seed" / clip.youtube_id
            work.mkdir(parents=True, exist_ok=True)
            r1 = c.run_bounded(["yt-dlp", "--ignore-config", "--no-progress", "-q", "-f", "b", "-o", "whole.mp4",
                                *chunk, page(url, clip.youtube_id)], self.args.seed_timeout, cwd=work)
            if r1.code != 0 or not (work / "whole.mp4").is_file():
                shutil.rmtree(work, ignore_errors=True)
                errors.append(r1.stderr.strip()[-300:])
                return "timeout" if r1.code is None else "failed"
            out = outdir / f"{clip.youtube_id}.mp4"
            r2 = c.run_bounded(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
                                "-ss", str(clip.start), "-i", "whole.mp4", "-t", str(clip.end - clip.start),
                                "-c:v", "libx264", "-preset", "veryfast", "-c:a", "aac", str(out)],
                               self.args.seed_timeout, cwd=work)
            shutil.rmtree(work, ignore_errors=True)
            if r2.code != 0 or not out.is_file():
                errors.append(r2.stderr.strip()[-300:])
                return "failed"
            return "done"

        self._pool(one, clips, res)
        if errors:
            res.extra["stderr"] = errors[0]

    def run_naive(self, url: str, clips: list[c.Clip], tmp: Path, res: Result) -> None:
        outdir = tmp / "naive-out"
        outdir.mkdir(parents=True, exist_ok=True)
        errors: list[str] = []

        def one(clip: c.Clip) -> str:
            work = tmp / "naive" / clip.youtube_id
            work.mkdir(parents=True, exist_ok=True)
            r = c.run_bounded(["yt-dlp", "--ignore-config", "--no-progress", "-q", "--download-sections",
                               f"*{clip.start}-{clip.end}", "-f", "b", "-o", "clip.mp4",
                               page(url, clip.youtube_id)], self.args.naive_timeout, cwd=work)
            produced = work / "clip.mp4"
            ok = r.code == 0 and produced.is_file() and produced.stat().st_size > 0
            if ok:
                produced.rename(outdir / f"{clip.youtube_id}.mp4")
            else:
                errors.append(r.stderr.strip()[-300:])
            shutil.rmtree(work, ignore_errors=True)
            return "done" if ok else ("timeout" if r.code is None else "failed")

        self._pool(one, clips, res)
        if any(errors):
            res.extra["stderr"] = next(e for e in errors if e)

    def _pool(self, one, clips: list[c.Clip], res: Result) -> None:
        with ThreadPoolExecutor(max_workers=self.args.jobs) as pool:
            outcomes = list(pool.map(one, clips))
        res.done = outcomes.count("done")
        res.timed_out = outcomes.count("timeout")
        res.failed = len(outcomes) - res.done

    # ----------------------------------------------------------------------------------------------- driver

    def measure(self, src: c.TestSource, profile: str, approach: str, throttle: bool, clips: list[c.Clip],
                window: float) -> Result:
        res = Result(profile, approach, throttle, len(clips), window=window)
        tmp = c.fresh_dir(self.work / f"{profile}-{approach}-{'on' if throttle else 'off'}")
        kdl_tmp = tmp / "kdl-out" / ".kinetics-dl" / "tmp"
        sampled = {"b": tmp / "seed", "c": tmp / "naive"}.get(approach, kdl_tmp)
        before = src.idle_stats()
        started_ms = int(time.time() * 1000)
        cpu0, t0 = c.children_cpu(), time.monotonic()
        with c.DiskSampler(sampled) as disk:
            if kind(approach) in KDL:
                out = self.run_kinetics_dl(src.url, clips, tmp, res, approach)
            elif approach == "b":
                self.run_seed(src.url, clips, tmp, res, throttle)
            else:
                self.run_naive(src.url, clips, tmp, res)
        res.wall = time.monotonic() - t0
        res.cpu = c.children_cpu() - cpu0
        res.peak_tmp = disk.peak
        after = src.idle_stats()
        res.bytes_sent = after["bytes_sent"] - before["bytes_sent"]
        res.requests = after["total_requests"] - before["total_requests"]
        log = [e for e in after["log"] if e["time_ms"] >= started_ms - 50
               and (e["path"].startswith("/v/") or e["path"] == "/watch")]
        # yt-dlp's extraction: the watch page (and a manifest, if yt-dlp had to fetch one).
        res.extra["page_bytes"] = sum(e["bytes"] for e in log if e["path"] == "/watch" or e["path"].endswith(".mpd"))
        # yt-dlp's page GET is open-ended and so throttled too; it reads only the head, so it does not matter.
        res.extra["throttled_requests"] = sum(1 for e in log if e["throttled"] and e["range"] is not None)
        if kind(approach) in KDL:
            # After the CPU reading: status is a child too.
            st = c.run_bounded([str(self.kdl), "status", "--out", str(out), "--json"], 60)
            try:
                status = json.loads(st.stdout)
                res.done = status["done"]
                res.failed = res.n - res.done
                res.extra["relay_bytes"] = status["bytes_fetched"]
                res.extra["failed_categories"] = status["failed"]
                res.extra["whole_video_fallbacks"] = status["whole_video_fallbacks"]
                res.extra["cpu_per_clip"] = status.get("cpu_per_clip")
            except (json.JSONDecodeError, KeyError):
                res.extra["status_error"] = st.stderr.strip()[-500:]
            res.extra["trims"], res.extra["clip_bytes"] = journal_trims(out)
            res.extra["clip_sha256"] = clip_hashes(out)
            res.extra["sample_log"] = [
                f"{e['method']} {e['path']} range={e['range']} -> {e['status']} {e['bytes']} B"
                f"{' throttled' if e['throttled'] else ''}{'' if e['complete'] else ' (cut)'}"
                for e in log[:6]
            ]
        if not self.args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        return res

    def run(self) -> list[Result]:
        self.load_before = c.load_average()
        results = []
        for profile in self.args.profiles:
            clips = c.kinetics_rows(self.args.n, remap(profile))
            for throttle in (False, True):
                config = {"profile": PROFILES[profile], "bandwidth": self.args.bandwidth}
                # The test source throttles open-ended ranges by default; "off" must say so.
                config["open_range_throttle"] = OPEN_RANGE_THROTTLE if throttle else {"enabled": False}
                name = f"{profile}-{'on' if throttle else 'off'}"
                print(f"==> starting the test source ({name}; the first start encodes the video)", flush=True)
                src = c.TestSource(self.src_bin, config, self.work, name)
                try:
                    index = PACKETS.get(profile) or PACKETS.setdefault(profile, c.PacketIndex(src.media_path()))
                    HEADERS[(profile, "progressive")] = index.header_bytes
                    HEADERS[(profile, "dash")] = sum(c.header_bytes(p) for p in src.dash_paths())
                    window = sum(index.window_bytes(k.start, k.end) for k in clips) / len(clips)
                    for approach in self.args.approaches:
                        print(f"--> {profile} video, open-range throttle {'on' if throttle else 'off'}: "
                              f"{label(approach)}, {len(clips)} clips", flush=True)
                        r = self.measure(src, profile, approach, throttle, clips, window)
                        print(f"    {r.done}/{r.n} done in {r.wall:.1f} s, {c.human_bytes(r.per_clip)}/clip "
                              f"({r.ratio:.2f}x window), {r.cpu / r.n:.2f} CPU s/clip", flush=True)
                        if r.extra.get("stderr") and r.done < r.n:
                            print("    stderr: " + r.extra["stderr"].replace("\n", "\n    "), flush=True)
                        results.append(r)
                finally:
                    src.close()
        self.load_after = c.load_average()
        return results


def journal_trims(out: Path) -> tuple[dict[str, int], float]:
    """Which trim made the done clips (the journal's `trim` column: `exact`, `smart`, `exact (why not)`),
    counted, and the done clips' mean file size in bytes."""
    db = out / ".kinetics-dl" / "journal.sqlite"
    if not db.is_file():
        return {}, 0.0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        cols = {r[1] for r in conn.execute("PRAGMA table_info(clips)")}
        trim = "COALESCE(trim, '?')" if "trim" in cols else "'?'"
        trims = dict(conn.execute(f"SELECT {trim}, COUNT(*) FROM clips WHERE state = 'done' GROUP BY 1"))
        size = conn.execute("SELECT AVG(size_bytes) FROM clips WHERE state = 'done'").fetchone()[0]
    finally:
        conn.close()
    return trims, float(size or 0.0)


PACKETS: dict[str, c.PacketIndex] = {}
HEADERS: dict[tuple[str, str], int] = {}


def clip_hashes(out: Path) -> dict[str, str]:
    """sha256 of every clip in `out` by its path there (the journal's folder left out): a baseline build's
    clips and this build's, made from the same rows, compare byte for byte."""
    hashes = {}
    for path in sorted(out.rglob("*")):
        rel = path.relative_to(out)
        if path.is_file() and rel.parts[0] != ".kinetics-dl" and path.suffix in (".mp4", ".m4a", ".flac", ".wav"):
            hashes[str(rel)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes


def layout(approach: str) -> str:
    """Which files an approach reads: the default choice takes the DASH pair, the others itag 18."""
    return "dash" if kind(approach) in ("a", "a1", "as", "ad", "acli") else "progressive"


def report(results: list[Result], args, load: tuple[str, str]) -> str:
    def fmt_row(r: Result) -> list[str]:
        done = f"{r.done}/{r.n}" + (f" ({r.timed_out} timed out)" if r.timed_out else "")
        return [r.profile, label(r.approach), "on" if r.throttle else "off", done,
                c.human_bytes(r.per_clip), c.human_bytes(r.window), f"{r.ratio:.2f}x", f"{r.requests / r.n:.1f}",
                f"{r.wall:.1f}", f"{r.done / r.wall * 60:.1f}" if r.wall else "-", f"{r.cpu / r.n:.2f}",
                c.human_bytes(r.peak_tmp)]

    parts = [
        "## Benchmark 1: fetching only the clip (issue 2)" + (f" [{args.section}]" if args.section else ""),
        "",
        f"Run: {c.machine_line()}; 1-min load average {load[0]} before, {load[1]} after (a shared machine: wall"
        " times move with it, bytes and CPU seconds much less)",
        "",
        f"Build: {args.build}",
        "",
        f"Command: `{args.command}` (n {args.n}, jobs {args.jobs}, bandwidth {args.bandwidth} B/s, approaches"
        f" {','.join(args.approaches)}, profiles {','.join(args.profiles)}; naive per-clip timeout"
        f" {args.naive_timeout:.0f} s)",
        "",
        "Test source: " + "; ".join(
            f"`{p}` = {v['duration_secs']} s, {v['width']}x{v['height']}, {v['fps']} fps, {v['video_kbps']} kb/s "
            f"video + 64 kb/s AAC, 2 s GOP" for p, v in PROFILES.items() if p in args.profiles)
        + f". Global bandwidth cap {args.bandwidth / 1e6:.0f} MB/s. Throttle on = open-ended ranges with more than "
          "10 MB left are served at 32 KiB/s. Clips: real K400 validate ids, starts remapped anywhere into the "
          "short video and into 25:00-34:50 of the long one, 10 s each.",
        "",
        c.table(["video", "approach", "open-range throttle", "done", "fetched/clip", "window/clip",
                 "fetched/window", "requests/clip", "wall s", "clips/min", "CPU s/clip", "peak temp disk"],
                [fmt_row(r) for r in results]),
        "",
        "fetched = test source `bytes_sent` delta / N (everything: the watch page that yt-dlp reads, every"
        " media request, bytes pushed into socket buffers before a client hung up). window ="
        " bytes of the packets (audio + video) with pts in [start, end) in the source (ffprobe -show_packets; the"
        " DASH files hold the same packets as the progressive one). CPU = RUSAGE_CHILDREN delta / N (the test"
        " source is not counted). Every approach runs `--jobs` clips at once. The watch page offers itag 18 and"
        " the DASH pair, as YouTube does: kinetics-dl's format choice takes the DASH pair; the seed's and the"
        " naive approach use `-f b` (itag 18), as they did.",
        "",
        "### Targets",
        "",
    ]
    by = {(r.profile, r.approach, r.throttle): r for r in results}
    targets = []
    for p in args.profiles:
        for a in ("a", "a18"):
            for t in (False, True):
                r = by.get((p, a, t))
                if r:
                    ok = r.done == r.n and r.ratio <= 1.5
                    targets.append([f"fetched/window <= 1.5x: {APPROACHES[a]} ({p}, throttle {'on' if t else 'off'})",
                                    f"{r.ratio:.2f}x", "PASS" if ok else "MISS"])
        off, on = by.get((p, "a", False)), by.get((p, "a", True))
        if off and on and off.wall:
            ratio = on.wall / off.wall
            targets.append([f"open-range throttle wall-time cost for kinetics-dl < 1.5x ({p})",
                            f"{ratio:.2f}x ({on.wall:.1f} s vs {off.wall:.1f} s)",
                            "PASS" if ratio < 1.5 and on.done == on.n else "MISS"])
    # Issue 10's CPU goals, on the whole process tree's CPU per clip (what a machine must supply).
    for p in args.profiles:
        for a, goal in (("a", 1.5), ("a18", 1.5), ("as", 0.8), ("as18", 0.8)):
            for t in (False, True):
                r = by.get((p, a, t))
                if r and r.n:
                    per = r.cpu / r.n
                    targets.append([f"whole tree CPU <= {goal} s/clip: {APPROACHES[a]} ({p}, throttle"
                                    f" {'on' if t else 'off'})", f"{per:.2f} s",
                                    "PASS" if per <= goal and r.done == r.n else "MISS"])
    short_on, long_on = by.get(("short", "a", True)), by.get(("long", "a", True))
    if short_on and long_on:
        ratio = long_on.wall / short_on.wall
        targets.append(["mid-hour clip as fast as a short-video clip (kinetics-dl, throttle on; info only: the"
                        " long video has half the frame rate)", f"{ratio:.2f}x wall", "info"])
    parts.append(c.table(["target", "measured", "result"], targets))
    parts += ["", "### kinetics-dl bytes, broken down", ""]
    rows = []
    for r in results:
        if kind(r.approach) not in KDL:
            continue
        relay = r.extra.get("relay_bytes")
        pages = r.extra.get("page_bytes", 0)
        unread = r.bytes_sent - pages - relay if relay is not None else None
        header = HEADERS.get((r.profile, layout(r.approach)), 0)
        rows.append([r.profile, label(r.approach), "on" if r.throttle else "off", c.human_bytes(r.per_clip),
                     c.human_bytes(pages / r.n),
                     c.human_bytes(relay / r.n) if relay is not None else "?",
                     c.human_bytes(unread / r.n) if unread is not None else "?",
                     c.human_bytes(header), c.human_bytes(r.window),
                     f"{(r.bytes_sent - pages) / r.n / r.window:.2f}x",
                     f"{r.per_clip / (header + r.window):.2f}x",
                     str(r.extra.get("throttled_requests", 0))])
    parts.append(c.table(["video", "approach", "throttle", "sent by source/clip", "watch page/clip",
                          "read by relay/clip (journal bytes_fetched)", "sent, never read by relay/clip",
                          "source header", "window/clip", "media fetched/window", "fetched/(header+window)",
                          "throttled range requests"], rows))
    parts += ["", "Any reader of a window first reads the file's header: for itag 18 the whole sample table (ftyp +"
              " moov, 1.4 MB for the hour-long video, more than twice its 10 s window), for the DASH pair only"
              " ftyp + moov + sidx of each file (the sidx maps every 2 s fragment to its bytes). kinetics-dl's"
              " relay reads that header, plans the window's bytes from it, and asks for them in one bounded"
              " request; what remains is the window from the keyframe before it, ffmpeg's probe of the first"
              " fragment, and the end of the last fragment read."]
    parts += ["", "### kinetics-dl CPU per clip by stage (from the journal), clip size, memory", ""]
    rows = []
    stages = ("extract", "fetch", "encode", "verify", "total")
    for r in results:
        cpu = r.extra.get("cpu_per_clip")
        if kind(r.approach) not in KDL or not cpu or not cpu["total"]["clips"]:
            continue
        trims = ", ".join(f"{k} {v}" for k, v in sorted(r.extra.get("trims", {}).items()))
        rows.append([r.profile, label(r.approach), "on" if r.throttle else "off", str(cpu["total"]["clips"])]
                    + [f"{cpu[s]['mean_s']:.2f} / {cpu[s]['median_s']:.2f} / {cpu[s]['p95_s']:.2f}" for s in stages]
                    + [f"{r.cpu / r.n:.2f}", f"{r.done / r.wall:.2f}" if r.wall else "-",
                       c.human_bytes(r.per_clip), c.human_bytes(r.extra.get("clip_bytes", 0)),
                       c.human_bytes(r.extra.get("peak_rss", 0)), c.human_bytes(r.extra.get("peak_tree_rss", 0)),
                       trims or "?"])
    parts.append(c.table(["video", "approach", "throttle", "clips"]
                         + [f"{s} s (mean / median / p95)" for s in stages]
                         + ["whole tree CPU s/clip", "clips/s", "fetched/clip", "clip file", "peak RSS kinetics-dl",
                            "peak RSS tree", "trim (journal)"], rows))
    pairs = [(exact, smart) for exact, smart in (("a", "as"), ("a18", "as18"))]
    compare = []
    for p in args.profiles:
        for t in (False, True):
            for exact, smart in pairs:
                e, s_ = by.get((p, exact, t)), by.get((p, smart, t))
                ce, cs = (e.extra.get("cpu_per_clip") if e else None), (s_.extra.get("cpu_per_clip") if s_ else None)
                if not (ce and cs and ce["total"]["clips"] and cs["total"]["clips"]):
                    continue
                compare.append([p, "on" if t else "off", APPROACHES[exact].removeprefix("kinetics-dl "),
                                f"{ce['encode']['mean_s']:.2f} → {cs['encode']['mean_s']:.2f}",
                                f"{ce['total']['mean_s']:.2f} → {cs['total']['mean_s']:.2f}",
                                f"{e.cpu / e.n:.2f} → {s_.cpu / s_.n:.2f}",
                                f"{e.done / e.wall:.2f} → {s_.done / s_.wall:.2f}" if e.wall and s_.wall else "-",
                                f"{cs['total']['mean_s'] / ce['total']['mean_s']:.2f}x"])
    if compare:
        parts += ["", "`--trim exact` → `--trim smart`, same run, same clips (CPU s per clip, means):", ""]
        parts.append(c.table(["video", "throttle", "format", "encode stage", "stages total", "whole tree",
                              "clips/s", "stages total smart/exact"], compare))
    before_after = []
    for r in results:
        b = by.get((r.profile, baseline(r.approach), r.throttle))
        cb, cr = (b.extra.get("cpu_per_clip") if b else None), r.extra.get("cpu_per_clip")
        if not (cb and cr and cb["total"]["clips"] and cr["total"]["clips"]):
            continue
        row = [r.profile, "on" if r.throttle else "off", APPROACHES[r.approach].removeprefix("kinetics-dl ")]
        row += [f"{cb[s]['mean_s']:.2f} → {cr[s]['mean_s']:.2f}" for s in ("encode", "verify", "total")]
        row += [f"{b.cpu / b.n:.2f} → {r.cpu / r.n:.2f}", f"{(r.cpu / r.n) / (b.cpu / b.n):.2f}x",
                f"{b.done / b.wall:.2f} → {r.done / r.wall:.2f}" if b.wall and r.wall else "-"]
        hb, hr = b.extra.get("clip_sha256", {}), r.extra.get("clip_sha256", {})
        both = sorted(set(hb) & set(hr))
        row.append(f"{sum(hb[k] == hr[k] for k in both)} of {len(both)}")
        before_after.append(row)
    if before_after:
        parts += ["", "Baseline build → this build, same run, same clips, each approach's two runs back to back (CPU s"
                  " per clip, means):", ""]
        parts.append(c.table(["video", "throttle", "approach", "encode stage", "verify stage", "stages total",
                              "whole tree", "whole tree this/baseline", "clips/s",
                              "clips byte-identical to the baseline's"], before_after))
    parts += ["", "Stages as `status --json` reports them (`cpu_per_clip`): extract = yt-dlp; fetch = ffmpeg's"
              " stream copy of the window and the relay's share (thread CPU of its transfer tasks); encode ="
              " the window's layout (read in process since tools::mkv; ffprobe before, and where that reader"
              " declines) and the cut (`--trim smart`: the head's encode, the copy and the join); verify = one ffmpeg decode of the clip to its end, which"
              " also reads its streams and duration (before issue 10's item 3: ffprobe, then that decode; for the exact"
              " cut since its packets' check, one read of the clip's packets compared with those its encoder wrote,"
              " without a decode: in process since tools::mp4clip, its thread CPU counted here). Children's"
              " CPU is user + system from the kernel's rusage of each exited child. whole tree = RUSAGE_CHILDREN"
              " delta / N of the kinetics-dl process (kinetics-dl itself with every child, failed attempts and"
              " tool checks included); the difference to the stages' total is kinetics-dl's own work outside the"
              " relay's transfers (reqwest's upstream connections, the scheduler, the journal) and the tool"
              " checks at start. clips/s = done / wall. clip file = mean size of a done clip (journal)."
              " peak RSS kinetics-dl = the process's own VmHWM; peak RSS tree = the largest sum of resident sets"
              " over kinetics-dl and its children (yt-dlp, ffmpeg, ffprobe), sampled every 100 ms."]
    parts += ["", "First requests of each kinetics-dl run (test source request log):", ""]
    for r in results:
        if kind(r.approach) in KDL and r.extra.get("sample_log"):
            parts.append(f"- {r.profile}, {label(r.approach)}, throttle {'on' if r.throttle else 'off'}: "
                         + "; ".join(f"`{x}`" for x in r.extra["sample_log"]))
    return "\n".join(parts) + "\n"
