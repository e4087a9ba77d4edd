"""Shared pieces of the benchmarks: the local test source, bounded child processes, CPU accounting,
temp-disk sampling, the Kinetics rows, window sizes from ffprobe, and Markdown output.

Python 3.11 standard library only.
"""

from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import json
import math
import os
import platform
import re
import resource
import shutil
import signal
import struct
import subprocess
import tempfile
import threading
import time
import urllib.request
from bisect import bisect_left
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO / "bench"
RESULTS = BENCH_DIR / "RESULTS.md"
ROWS_CSV = REPO / "tests" / "data" / "k400_validate.csv"
# Kinetics clips are 10 s; every row of the validate file is.
MAX_CLIP_SECS = 10


def binaries(bin_dir: Path, work: Path) -> tuple[Path, Path, str]:
    """Copies kinetics-dl and kinetics-testsrc into `work`, so a rebuild during the run cannot mix two
    builds into one table; returns the copies and a line naming the build (mtime, sha256 prefix)."""
    copies, names = [], []
    (work / "bin").mkdir(parents=True, exist_ok=True)
    for name in ("kinetics-dl", "kinetics-testsrc"):
        b = bin_dir / name
        if not os.access(b, os.X_OK):
            raise SystemExit(f"{b} is missing: run `cargo build --release --bins` first")
        copy = work / "bin" / name
        shutil.copy2(b, copy)
        copies.append(copy)
        names.append(describe(copy))
    return copies[0], copies[1], "; ".join(names)


def describe(binary: Path) -> str:
    """"kinetics-dl built <mtime>, sha256 <prefix>": which build a table came from."""
    digest = hashlib.sha256(binary.read_bytes()).hexdigest()[:12]
    built = _dt.datetime.fromtimestamp(binary.stat().st_mtime).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    return f"{binary.name} built {built}, sha256 {digest}"


# ---------------------------------------------------------------------------------------------- test source


def rust_f64(x: float) -> str:
    """How Rust's `Display` writes an f64 (300.0 -> "300"), for the test source's cache file names."""
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def testsrc_version(file: str, name: str) -> int:
    """A `pub const NAME: u32 = N;` of the test source's code, so the cache names below follow its versions."""
    text = (REPO / "testsrc" / "src" / file).read_text()
    m = re.search(rf"pub const {name}: u32 = (\d+);", text)
    if not m:
        raise SystemExit(f"testsrc/src/{file} has no {name}")
    return int(m.group(1))


def cache_file_name(p: dict) -> str:
    """Mirror of testsrc/src/video.rs `cache_file_name` (for the profiles the benchmarks use: no B-frames,
    regular keyframes, no tag)."""
    audio = "aac" if p.get("audio", True) else "noaudio"
    return (
        f"testsrc-v{testsrc_version('video.rs', 'FORMAT_VERSION')}-{p['width']}x{p['height']}-{p['fps']}fps"
        f"-{rust_f64(p['duration_secs'])}s-gop{rust_f64(p['gop_secs'])}s-{p['video_kbps']}k-{audio}.mp4"
    )


def default_cache_dir() -> Path:
    return Path(tempfile.gettempdir()) / "kinetics-testsrc-cache"


class TestSource:
    """A kinetics-testsrc child on 127.0.0.1 with a JSON config. It exits when our stdin pipe closes,
    so it never outlives the benchmark. It is started before any measurement and reaped after, so its
    CPU never appears in a RUSAGE_CHILDREN delta."""

    def __init__(self, binary: Path, config: dict, workdir: Path, name: str, start_timeout: float = 1800):
        workdir.mkdir(parents=True, exist_ok=True)
        self.config = dict(config)
        self.config.setdefault("cache_dir", str(default_cache_dir()))
        self.config_path = workdir / f"testsrc-{name}.json"
        self.config_path.write_text(json.dumps(self.config, indent=2))
        self.log_path = workdir / f"testsrc-{name}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(binary), "--listen", "127.0.0.1:0", "--config", str(self.config_path), "--exit-on-stdin-eof"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
        )
        self.url = self._wait_listening(timeout=start_timeout)

    def _wait_listening(self, timeout: float) -> str:
        # The first start encodes the video (minutes for the hour-long one); later starts reuse the cache.
        box: dict[str, str] = {}

        def read() -> None:
            assert self.proc.stdout is not None
            line = self.proc.stdout.readline().decode(errors="replace").strip()
            box["line"] = line

        t = threading.Thread(target=read, daemon=True)
        t.start()
        t.join(timeout)
        line = box.get("line", "")
        if not line.startswith("listening on "):
            self.close()
            raise SystemExit(f"the test source did not start ({line!r}); see {self.log_path}")
        return line.removeprefix("listening on ").strip()

    def media_path(self) -> Path:
        return Path(self.config["cache_dir"]) / cache_file_name(self.config["profile"])

    def dash_paths(self) -> list[Path]:
        """The DASH video-only and audio-only files the source made from the progressive one."""
        base = str(self.media_path()).removesuffix(".mp4")
        dash = f".dash-v{testsrc_version('dash.rs', 'DASH_VERSION')}"
        return [Path(base + dash + ".video.mp4"), Path(base + dash + ".audio.m4a")]

    def stats(self) -> dict:
        with urllib.request.urlopen(self.url + "/_stats", timeout=30) as r:
            return json.load(r)

    def idle_stats(self, limit_s: float = 10.0) -> dict:
        """Stats once no response is still being written (bounded wait)."""
        deadline = time.monotonic() + limit_s
        while True:
            s = self.stats()
            if s.get("in_flight", 0) == 0 or time.monotonic() > deadline:
                return s
            time.sleep(0.2)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (subprocess.TimeoutExpired, OSError):
                self.proc.kill()
                self.proc.wait()
        self._log.close()


# ------------------------------------------------------------------------------------------------- processes


@dataclass
class Ran:
    code: int | None  # None: killed at the timeout
    stdout: str
    stderr: str
    secs: float


def run_bounded(cmd: list[str], timeout: float, cwd: Path | None = None, grace_signal: int | None = None,
                started=None) -> Ran:
    """Runs `cmd` in its own process group; at `timeout` sends `grace_signal` (if any) to the leader, waits
    20 s, then SIGKILLs the group. Only the group we created is signalled. `started(pid)`, if given, is
    called once the child runs (its pid is also its session id)."""
    t0 = time.monotonic()
    p = subprocess.Popen(
        cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    if started is not None:
        started(p.pid)
    try:
        out, err = p.communicate(timeout=timeout)
        return Ran(p.returncode, out.decode(errors="replace"), err.decode(errors="replace"), time.monotonic() - t0)
    except subprocess.TimeoutExpired:
        if grace_signal is not None:
            p.send_signal(grace_signal)
            try:
                out, err = p.communicate(timeout=20)
                return Ran(None, out.decode(errors="replace"), err.decode(errors="replace"), time.monotonic() - t0)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = p.communicate()
        return Ran(None, out.decode(errors="replace"), err.decode(errors="replace"), time.monotonic() - t0)


def children_cpu() -> float:
    """User+system CPU seconds of all reaped children so far (deltas only are meaningful)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def dir_size(path: Path) -> int:
    total = 0
    stack = [path]
    while stack:
        d = stack.pop()
        try:
            with os.scandir(d) as it:
                for e in it:
                    try:
                        if e.is_dir(follow_symlinks=False):
                            stack.append(Path(e.path))
                        elif e.is_file(follow_symlinks=False):
                            total += e.stat(follow_symlinks=False).st_size
                    except FileNotFoundError:
                        pass
        except (FileNotFoundError, NotADirectoryError):
            pass
    return total


class DiskSampler:
    """Polls the size of a directory tree every `every` seconds and keeps the peak."""

    def __init__(self, path: Path, every: float = 0.25):
        self.path, self.every, self.peak = path, every, 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, dir_size(self.path))
            self._stop.wait(self.every)

    def __enter__(self) -> "DiskSampler":
        self._t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._t.join()


class MemorySampler:
    """Polls /proc every `every` seconds for the processes of one session (a `run_bounded` child and every
    descendant that did not leave its session) and keeps two peaks: the leader's own resident set and the
    sum over the whole session. Sampling misses spikes shorter than `every`; the leader's own peak is its
    VmHWM, exact."""

    def __init__(self, every: float = 0.1):
        self.every, self.sid = every, None
        self.peak_leader, self.peak_tree = 0, 0
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)

    def started(self, pid: int) -> None:
        self.sid = pid

    def _sample(self) -> None:
        sid, total = self.sid, 0
        if sid is None:
            return
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    stat = f.read().decode(errors="replace")
                # Fields after the command name (which may hold spaces): state ppid pgrp session ... rss (24th).
                rest = stat[stat.rindex(")") + 2:].split()
                if int(rest[3]) != sid:
                    continue
                total += int(rest[21]) * self._page
                if int(entry) == sid:
                    with open(f"/proc/{entry}/status") as f:
                        for line in f:
                            if line.startswith("VmHWM:"):
                                self.peak_leader = max(self.peak_leader, int(line.split()[1]) * 1024)
            except (OSError, ValueError, IndexError):
                continue
        self.peak_tree = max(self.peak_tree, total)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.every)

    def __enter__(self) -> "MemorySampler":
        self._t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._t.join()


# ------------------------------------------------------------------------------------------------------ rows


@dataclass
class Clip:
    label: str
    youtube_id: str
    start: int
    end: int


def kinetics_rows(n: int, remap) -> list[Clip]:
    """`n` real validate rows spread evenly over the file (distinct ids), times remapped by `remap(start)`
    into the synthetic video's length; the clip keeps its length (10 s)."""
    with open(ROWS_CSV, newline="") as f:
        rows = list(csv.DictReader(f))
    step = max(1, len(rows) // max(n, 1))
    picked: list[Clip] = []
    seen: set[str] = set()
    for i in range(0, len(rows), step):
        r = rows[i]
        if r["youtube_id"] in seen:
            continue
        seen.add(r["youtube_id"])
        length = min(MAX_CLIP_SECS, int(r["time_end"]) - int(r["time_start"]))
        start = remap(int(r["time_start"]))
        picked.append(Clip(r["label"], r["youtube_id"], start, start + length))
        if len(picked) == n:
            break
    return picked


def write_annotations(clips: list[Clip], path: Path) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["label", "youtube_id", "time_start", "time_end", "split"])
        for c in clips:
            w.writerow([c.label, c.youtube_id, c.start, c.end, "validate"])


# ---------------------------------------------------------------------------------------------- window sizes


class PacketIndex:
    """Packet timestamps and sizes of a media file (all streams), to sum the bytes of a time window."""

    def __init__(self, media: Path):
        out = subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "packet=pts_time,size", "-of", "csv=p=0", str(media)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        pairs = []
        for line in out.splitlines():
            parts = line.strip().split(",")
            if len(parts) >= 2 and parts[0] not in ("", "N/A"):
                pairs.append((float(parts[0]), int(parts[1])))
        pairs.sort()
        self.times = [t for t, _ in pairs]
        self.cumulative = [0]
        for _, size in pairs:
            self.cumulative.append(self.cumulative[-1] + size)
        self.file_size = media.stat().st_size
        self.header_bytes = header_bytes(media)

    def window_bytes(self, start: float, end: float) -> int:
        """Bytes of the packets with start <= pts < end."""
        return self.cumulative[bisect_left(self.times, end)] - self.cumulative[bisect_left(self.times, start)]


def header_bytes(media: Path) -> int:
    """Bytes before the first `mdat`/`moof` box (ftyp + moov with +faststart, and the sidx of a fragmented
    file): what any reader fetches first."""
    off = 0
    with open(media, "rb") as f:
        for _ in range(64):
            f.seek(off)
            head = f.read(16)
            if len(head) < 8:
                break
            size, kind = struct.unpack(">I4s", head[:8])
            if size == 1:
                size = struct.unpack(">Q", head[8:16])[0]
            if kind in (b"mdat", b"moof") or size < 8:
                break
            off += size
    return off


# ---------------------------------------------------------------------------------------------------- output


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1000
    return f"{n:.2f} GB"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def tool_version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.splitlines()[0].strip() if out else "unknown"


def machine_line() -> str:
    ytdlp = tool_version(["yt-dlp", "--version"])
    ff = tool_version(["ffmpeg", "-version"])
    ff = " ".join(ff.split()[:3]) if ff.startswith("ffmpeg version") else ff
    mem = ""
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        mem = f", {kb / 1e6:.0f} GB RAM"
    except (OSError, AttributeError):
        pass
    return (
        f"{_dt.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}; {platform.system()} {platform.machine()}, "
        f"nproc {os.cpu_count()}{mem}; yt-dlp {ytdlp}; {ff}; Python {platform.python_version()}"
    )


def load_average() -> str:
    """The 1-minute load average: the machine may be shared, and wall times mean little without it."""
    return f"{os.getloadavg()[0]:.1f}"


def write_section(name: str, text: str, path: Path = RESULTS) -> None:
    """Replaces (or appends) the `name` section of RESULTS.md, leaving the other benchmark's section alone."""
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    block = f"{begin}\n{text.rstrip()}\n{end}\n"
    old = path.read_text() if path.exists() else "# kinetics-dl benchmarks\n\nWritten by `bench/bench.py`; see bench/README.md.\n\n"
    if begin in old and end in old:
        head, rest = old.split(begin, 1)
        _, tail = rest.split(end, 1)
        new = head + block + tail.lstrip("\n")
    else:
        new = old.rstrip("\n") + "\n\n" + block
    path.write_text(new)


def ceil_div(a: float, b: float) -> int:
    return int(math.ceil(a / b)) if b > 0 else 0


def fresh_dir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path
