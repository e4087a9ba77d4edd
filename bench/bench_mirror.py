"""Benchmark: `kinetics-dl download --source mirror` against the CVDF mirror's own recipe, on a local
synthetic K700-2020-style mirror served by `kinetics-testsrc --static`.

The recipe is what the mirror's README scripts and torchvision do: `wget -c -i <path list> -P dl/` (one
process, one tarball after the other), then `tar xzf` of each tarball, then moving every clip into
`train/<class>/`. Tarballs stay on disk until the end, as the scripts leave them. Because kinetics-dl
verifies every clip (ffprobe + a full decode), a third row runs the same checks after the recipe.

Metrics per approach: wall time, clips/s, peak bytes on disk (sum of file sizes of its output and work
folders, polled every 0.2 s in this process, so no `du` child pollutes the CPU count), CPU seconds of
reaped children (RUSAGE_CHILDREN deltas; the test source is reaped only at the end, so never counted), and
the bytes the source sent. Writes a Markdown table to bench/RESULTS-mirror.md.

    cargo build --release --bins
    python3 bench/bench_mirror.py                 # 300 clips in 6 tarballs, ~2.5 min on a busy 2-core box
    python3 bench/bench_mirror.py --rounds 2      # alternating order, ~3.5 min (what RESULTS-mirror.md holds)

Python 3.11 standard library only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import TestSource, children_cpu
from common import dir_size as tree_bytes

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "RESULTS-mirror.md"
REAL_BASE = "https://s3.amazonaws.com/kinetics"
CLIP_SECS = 10
# Same length as every clip id below: each packed copy carries its own id as its title, so every clip has
# distinct bytes while the clip is encoded only once.
PLACEHOLDER = b"@@@@@@@@@@@"
# K700-2020 tarballs are one per class, numbered in sorted class order, holding `<class name>/<clip>.mp4`.
CLASSES = sorted(
    [
        "abseiling",
        "air drumming",
        "massaging person's head",
        "passing American football (in game)",
        "skiing (not slalom or crosscountry)",
        "zumba",
    ]
)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clips", type=int, default=300, help="synthetic clips (default 300)")
    p.add_argument("--tarballs", type=int, default=6, help="class tarballs, at most %d" % len(CLASSES))
    p.add_argument("--mirror-jobs", type=int, default=2, help="kinetics-dl --mirror-jobs (default 2)")
    p.add_argument("--verify-jobs", type=int, default=os.cpu_count() or 2, help="parallel checks after the recipe")
    p.add_argument("--rounds", type=int, default=1, help="repeat, alternating which approach goes first")
    p.add_argument("--bin-dir", type=Path, default=REPO / "target" / "release")
    p.add_argument("--work", type=Path, help="work folder (default: a temp dir, removed at the end)")
    p.add_argument("--no-write", action="store_true", help=f"print only; leave {RESULTS.name} alone")
    a = p.parse_args(argv)
    if not 1 <= a.tarballs <= len(CLASSES) or a.clips < a.tarballs:
        p.error("need 1..6 tarballs and at least one clip per tarball")
    return a


def run(cmd: list[str], timeout: float, **kw) -> subprocess.CompletedProcess:
    """A child bounded in time; its output is captured. Raises on a non-zero exit or the timeout."""
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, **kw)
    if r.returncode != 0:
        raise SystemExit(f"{cmd[0]} exited {r.returncode}: {r.stderr.strip()[-2000:]}")
    return r


# ------------------------------------------------------------------------------------------------ the mirror


def base_clip(cache: Path) -> bytes:
    path = cache / "clip-10s-160x90.mp4"
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = cache / f"clip.{os.getpid()}.tmp.mp4"
        run(
            ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
            + ["-f", "lavfi", "-i", f"testsrc2=size=160x90:rate=15:duration={CLIP_SECS}"]
            + ["-f", "lavfi", "-i", f"sine=frequency=440:duration={CLIP_SECS}"]
            + ["-c:v", "libx264", "-preset", "ultrafast", "-g", "15", "-pix_fmt", "yuv420p", "-c:a", "aac"]
            + ["-b:a", "32k", "-shortest", "-fflags", "+bitexact", "-metadata", f"title={PLACEHOLDER.decode()}"]
            + [str(tmp)],
            timeout=120,
        )
        tmp.rename(path)
    data = path.read_bytes()
    if data.count(PLACEHOLDER) != 1:
        raise SystemExit(f"{path}: the title placeholder must occur exactly once")
    return data


def build_mirror(root: Path, n_clips: int, n_tarballs: int, clip: bytes) -> list[tuple[str, str, int]]:
    """Writes `700_2020/train/k700_train_NNN.tar.gz` and the path list; returns (id, label, start) per clip."""
    classes = CLASSES[:n_tarballs]
    rows = []
    for i in range(n_clips):
        rows.append((f"bm{i:09d}", classes[i % len(classes)], 10 * (i % 30)))
    train = root / "700_2020" / "train"
    train.mkdir(parents=True, exist_ok=True)
    lines = []
    for n, label in enumerate(classes, start=1):
        name = f"k700_train_{n:03d}.tar.gz"
        with tarfile.open(train / name, "w:gz", compresslevel=6) as tar:
            folder = tarfile.TarInfo(label)
            folder.type, folder.mode, folder.mtime = tarfile.DIRTYPE, 0o755, 1_600_000_000
            tar.addfile(folder)
            for yid, lab, start in rows:
                if lab != label:
                    continue
                data = clip.replace(PLACEHOLDER, yid.encode())
                info = tarfile.TarInfo(f"{label}/{clip_name(yid, start)}")
                info.size, info.mode, info.mtime = len(data), 0o644, 1_600_000_000
                tar.addfile(info, io.BytesIO(data))
        lines.append(f"{REAL_BASE}/700_2020/train/{name}")
    (train / "k700_2020_train_path.txt").write_text("\n".join(lines) + "\n")
    return rows


def clip_name(yid: str, start: int) -> str:
    return f"{yid}_{start:06d}_{start + CLIP_SECS:06d}.mp4"


def write_annotations(path: Path, rows: list[tuple[str, str, int]]) -> None:
    text = ["label,youtube_id,time_start,time_end,split"]
    for yid, label, start in rows:
        shown = f'"{label}"' if " " in label else label
        text.append(f"{shown},{yid},{start},{start + CLIP_SECS},train")
    path.write_text("\n".join(text) + "\n")


# ----------------------------------------------------------------------------------------------- measuring


class DiskPeak:
    """Polls the summed file sizes of `dirs` every 0.2 s on a thread; `peak` after `stop`."""

    def __init__(self, dirs: list[Path]):
        self.dirs, self.peak, self._stop = dirs, 0, threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while True:
            self.peak = max(self.peak, sum(tree_bytes(d) for d in self.dirs))
            if self._stop.wait(0.2):
                return

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(30)
        self.peak = max(self.peak, sum(tree_bytes(d) for d in self.dirs))
        return self.peak


def bytes_sent(source: TestSource) -> int:
    return int(source.idle_stats()["bytes_sent"])


def measure(name: str, dirs: list[Path], source: TestSource, body) -> dict:
    sent0, cpu0 = bytes_sent(source), children_cpu()
    disk = DiskPeak(dirs)
    t0 = time.monotonic()
    clips = body()
    wall = time.monotonic() - t0
    peak = disk.stop()
    return {
        "name": name,
        "clips": clips,
        "wall": wall,
        "cpu": children_cpu() - cpu0,
        "peak": peak,
        "end": sum(tree_bytes(d) for d in dirs),
        "sent": bytes_sent(source) - sent0,
    }


def mp4s(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*.mp4")}


# --------------------------------------------------------------------------------------------- approaches


def kinetics_dl(binary: Path, out: Path, annotations: Path, source: TestSource, jobs: int) -> int:
    cmd = [str(binary), "download", "--out", str(out), "--annotations", str(annotations), "--source", "mirror"]
    cmd += ["--mirror-dataset", "k700-2020", "--split", "train", "--mirror-url", source.url + "/files"]
    cmd += ["--mirror-jobs", str(jobs), "--class-dirs", "raw", "-q"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise SystemExit(f"kinetics-dl exited {r.returncode}:\n{r.stderr[-3000:]}")
    return len(mp4s(out))


def journal_done(binary: Path, out: Path) -> int:
    """Clips the journal says are done (read after the timing, so `status` is not measured)."""
    status = run([str(binary), "status", "--out", str(out), "--json"], timeout=60)
    return int(json.loads(status.stdout)["done"])


def recipe(work: Path, out: Path, source: TestSource, labels: dict[str, str]) -> int:
    """wget -c -i LIST -P dl, tar xzf each, move clips into train/<class>/, as the mirror's scripts do."""
    dl, extract = work / "dl", work / "extract"
    for d in (dl, extract):
        d.mkdir(parents=True)
    text = (work / "list.txt").read_text().replace(REAL_BASE, source.url + "/files")
    (work / "list.txt").write_text(text)
    if shutil.which("wget"):
        run(["wget", "-c", "-q", "-i", str(work / "list.txt"), "-P", str(dl)], timeout=600)
    else:
        for url in text.split():
            run(["curl", "-fsS", "-C", "-", "-o", str(dl / url.rsplit("/", 1)[1]), url], timeout=600)
    for tarball in sorted(dl.glob("*.tar.gz")):
        run(["tar", "xzf", str(tarball), "-C", str(extract)], timeout=600)
    moved = 0
    for clip in extract.rglob("*.mp4"):
        dest = out / "train" / labels[clip.name] / clip.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        clip.rename(dest)
        moved += 1
    return moved


def verify_all(out: Path, jobs: int) -> int:
    """kinetics-dl's checks on every clip: ffprobe, then a full decode that must print nothing."""

    def check(path: Path) -> bool:
        probe = subprocess.run(
            ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(path)],
            capture_output=True,
            timeout=300,
            stdin=subprocess.DEVNULL,
        )
        if probe.returncode != 0:
            return False
        decode = subprocess.run(
            ["ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-v", "error", "-i", str(path), "-f", "null", "-"],
            capture_output=True,
            timeout=300,
        )
        return decode.returncode == 0 and not decode.stderr.strip()

    with ThreadPoolExecutor(jobs) as pool:
        return sum(pool.map(check, sorted(out.rglob("*.mp4"))))


# ------------------------------------------------------------------------------------------------- output


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def report(results: list[dict], a: argparse.Namespace, n_clips: int, mirror_bytes: int, loads: tuple) -> str:
    machine = (
        f"{dt.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}; {platform.system()} {platform.machine()}, "
        f"nproc {os.cpu_count()}; Python {platform.python_version()}; "
        f"ffmpeg {run(['ffmpeg', '-version'], timeout=30).stdout.split()[2]}; "
        f"1-min load average {loads[0]:.1f} before, {loads[1]:.1f} after (shared machine)"
    )
    header = ["round", "approach", "clips", "wall s", "clips/s", "CPU s", "CPU ms/clip", "peak disk", "disk at end", "sent"]
    rows = []
    for r in results:
        rows.append(
            [
                str(r["round"]),
                r["name"],
                f"{r['clips']}/{n_clips}",
                f"{r['wall']:.1f}",
                f"{r['clips'] / r['wall']:.1f}" if r["wall"] > 0 else "-",
                f"{r['cpu']:.1f}",
                f"{1000 * r['cpu'] / max(r['clips'], 1):.0f}",
                human(r["peak"]),
                human(r["end"]),
                human(r["sent"]),
            ]
        )
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    if a.rounds > 1:
        lines += ["", "Mean over rounds:", "", "| approach | clips/s | CPU ms/clip | peak disk |", "|---|---|---|---|"]
        for name in dict.fromkeys(r["name"] for r in results):
            mine = [r for r in results if r["name"] == name]
            rate = sum(r["clips"] / r["wall"] for r in mine) / len(mine)
            cpu = sum(1000 * r["cpu"] / max(r["clips"], 1) for r in mine) / len(mine)
            lines.append(f"| {name} | {rate:.1f} | {cpu:.0f} | {human(max(r['peak'] for r in mine))} |")
    return "\n".join(
        [
            "# Mirror benchmark: `--source mirror` against the mirror's own recipe",
            "",
            f"Run: {machine}",
            "",
            f"Command: `python3 bench/bench_mirror.py --clips {a.clips} --tarballs {a.tarballs} "
            f"--mirror-jobs {a.mirror_jobs} --verify-jobs {a.verify_jobs} --rounds {a.rounds}`",
            "",
            f"Mirror: {n_clips} synthetic clips of {CLIP_SECS} s (160x90, 15 fps, H.264 + AAC, distinct bytes each) in "
            f"{a.tarballs} gzip tarballs of K700-2020 shape (`700_2020/train/k700_train_NNN.tar.gz`, each "
            f"`<class name>/<clip>.mp4`), {human(mirror_bytes)} in all, served over loopback by "
            "`kinetics-testsrc --static` with no bandwidth cap (so this measures local overhead, not the network).",
            "",
            "\n".join(lines),
            "",
            "- kinetics-dl: `download --source mirror --mirror-dataset k700-2020 --split train --class-dirs raw "
            f"--mirror-jobs {a.mirror_jobs} -q`; every clip verified (ffprobe + full decode), journal written; "
            "tarballs deleted as soon as they are extracted.",
            "- recipe: `wget -c -q -i LIST -P dl/`, `tar xzf` each tarball, clips moved into `train/<class>/`; "
            "tarballs kept until the end, as the mirror's scripts leave them. No clip is checked.",
            "- recipe + checks: the recipe, then the same ffprobe + decode checks kinetics-dl makes, "
            f"{a.verify_jobs} at once.",
            "",
            "peak disk = largest summed size of the approach's output and work folders, polled every 0.2 s. "
            "CPU = user + system seconds of reaped children (for kinetics-dl this includes its ffprobe/ffmpeg "
            "children and the `yt-dlp --version` check at start). sent = bytes the test source wrote. clips = "
            "clips in the output tree (for kinetics-dl, and done in its journal). Wall times follow the machine's "
            "load (rounds alternate which approach goes first); CPU seconds and disk do not.",
            "",
        ]
    )


def one_round(n: int, work: Path, root: Path, kdl: Path, annotations: Path, labels: dict, source: TestSource, a) -> list:
    out_k, rwork, rout = work / f"kdl-out-{n}", work / f"recipe-work-{n}", work / f"recipe-out-{n}"
    rwork.mkdir()
    shutil.copy(root / "700_2020" / "train" / "k700_2020_train_path.txt", rwork / "list.txt")

    def ours() -> dict:
        r = measure("kinetics-dl", [out_k], source, lambda: kinetics_dl(kdl, out_k, annotations, source, a.mirror_jobs))
        r["clips"] = min(r["clips"], journal_done(kdl, out_k))
        return r

    def theirs() -> list[dict]:
        plain = measure("recipe", [rwork, rout], source, lambda: recipe(rwork, rout, source, labels))
        checked = measure("checks", [rout], source, lambda: verify_all(rout, a.verify_jobs))
        both = dict(plain, name="recipe + checks", clips=checked["clips"])
        both.update(wall=plain["wall"] + checked["wall"], cpu=plain["cpu"] + checked["cpu"])
        return [plain, both]

    if n % 2 == 1:
        rows = [ours()] + theirs()
    else:
        rows = theirs() + [ours()]
    if mp4s(out_k) != mp4s(rout):
        raise SystemExit("kinetics-dl and the recipe ended with different clip trees")
    for d in (out_k, rwork, rout):
        shutil.rmtree(d)
    for r in rows:
        r["round"] = n
    return rows


def main(argv: list[str]) -> int:
    a = parse_args(argv)
    kdl, testsrc = a.bin_dir / "kinetics-dl", a.bin_dir / "kinetics-testsrc"
    for b in (kdl, testsrc):
        if not os.access(b, os.X_OK):
            raise SystemExit(f"{b} is missing: run `cargo build --release --bins` first")
    work = a.work or Path(tempfile.mkdtemp(prefix="bench-mirror-"))
    if work.exists() and any(work.iterdir()):
        raise SystemExit(f"{work} is not empty")
    work.mkdir(parents=True, exist_ok=True)
    try:
        clip = base_clip(Path(tempfile.gettempdir()) / "kinetics-bench-mirror-cache")
        root = work / "mirror"
        rows = build_mirror(root, a.clips, a.tarballs, clip)
        mirror_bytes = sum(p.stat().st_size for p in root.rglob("*.tar.gz"))
        annotations = work / "train.csv"
        write_annotations(annotations, rows)
        labels = {clip_name(yid, start): label for yid, label, start in rows}
        # A 30 s default profile: the source encodes it once at start-up (cached), and nothing asks for it.
        config = {"static_dir": str(root), "profile": {"duration_secs": 30}}
        source = TestSource(testsrc, config, work, "mirror", start_timeout=300)
        load_before = os.getloadavg()[0]
        try:
            results = []
            for n in range(1, a.rounds + 1):
                # The machine is shared: alternate which approach goes first so load drifts hit both.
                results += one_round(n, work, root, kdl, annotations, labels, source, a)
        finally:
            source.close()
        text = report(results, a, len(rows), mirror_bytes, (load_before, os.getloadavg()[0]))
        print(text)
        if not a.no_write:
            RESULTS.write_text(text)
            print(f"wrote {RESULTS}", file=sys.stderr)
    finally:
        if a.work is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
