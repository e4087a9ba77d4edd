#!/usr/bin/env python3
"""Benchmark 3: Kinetics-700 scale (issue 10). Python 3.11 standard library only.

    python3 bench/scale.py [--rows 650000] [--work DIR] [--keep] [--no-write] [--section scale]

Generates (never commits) a Kinetics-700-sized input of --rows clips in DeepMind's CSV and JSON shapes, then
times whole processes on this machine, in one run, beside Python reading the same files:

- Python `json.load` of the JSON file and `list(csv.reader(...))` of the CSV file (the yardsticks);
- the first `kinetics-dl download` of each file into a fresh folder, from its start until it starts its first
  fetch (the moment it runs yt-dlp on the first clip: `--ytdlp` is a two-line shell wrapper that writes the
  time and execs the real yt-dlp; `yt-dlp --version`, the tool check, is passed through untouched);
- the journal is then filled the way a long run leaves it (most clips done with a file of their own in OUT,
  some failed for good, a few pending; one attempt per finished clip over three runs): the download wrote
  the schema and the 650k planned clips, this script only sets states and writes the files;
- a rerun of the same download over that folder until its first fetch (its clips all journaled), and a rerun
  over the CSV folder (every clip journaled and pending);
- `status --json`, `report`, `manifest` and `export --format F` for every format, on the filled folder.

Wall time and peak RSS come from `wait4` on each child (the whole process: its peak resident set, the largest
of it and the children it reaped). Before each measured process the benchmark calls `sync`, untimed: the
kernel's writes of what came before (the fill's 566k files, the previous step's output) would otherwise run
in the background of the next step, which a real export, run days after the download, never sees. A download
is SIGKILLed once its first fetch started (SIGKILL-safe by design); the yt-dlp it started dies with it.
`json.load` runs --repeat times before the kinetics-dl steps and as many times after them, and the targets are
judged against the median of all those runs: this machine's speed moves by a third within minutes, and one
measure taken at the start judged steps run minutes later. Targets are printed as PASS/MISS, never asserted.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shlex
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

sys.dont_write_bytecode = True  # no __pycache__ inside the repository
sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

INPUT_VERSION = 1  # bump when the generated rows change, so cached inputs are rebuilt
EXPORT_FORMATS = ["torchvision", "mmaction2", "pytorchvideo", "slowfast", "csv", "webdataset"]
MB = 1024 * 1024
RSS_LIMIT_MB = 300

# ------------------------------------------------------------------------------------------------- inputs

_ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_WORDS = (
    "playing riding making throwing cutting washing climbing dancing juggling pushing eating brushing "
    "folding swinging catching shooting skating surfing tying peeling"
).split()
_OBJECTS = (
    "guitar bike cake ball paper dishes rope tree hair teeth clothes baseball basketball ice waves shoes "
    "apple violin drums horse cello kite snow sand bread glass carrots wood tire door"
).split()


def labels(n: int = 700) -> list[str]:
    """700 distinct labels shaped like Kinetics' (`[A-Za-z '()]`, some with parentheses)."""
    out = []
    for w in _WORDS:
        for o in _OBJECTS:
            out.append(f"{w} {o}")
            out.append(f"{w} {o} (not in game)")
    return sorted(out[:n])


@dataclass
class Inputs:
    csv: Path
    json: Path
    rows: int


def generate(dest: Path, rows: int, seed: int = 700) -> Inputs:
    """K700-2020-like: ~83.5% train, ~5.3% validate, ~11.2% test (unlabelled), one clip per video (the JSON is
    keyed by video), integer 10 s windows. Reused when already generated with the same parameters."""
    dest.mkdir(parents=True, exist_ok=True)
    csv_path, json_path, stamp = dest / "k700.csv", dest / "k700.json", dest / "inputs.stamp"
    want = f"v{INPUT_VERSION} rows={rows} seed={seed}"
    if stamp.exists() and stamp.read_text() == want and csv_path.exists() and json_path.exists():
        return Inputs(csv_path, json_path, rows)
    rng = random.Random(seed)
    names = labels()
    seen: set[str] = set()
    t0 = time.monotonic()
    with open(csv_path, "w", newline="") as c, open(json_path, "w") as j:
        c.write("label,youtube_id,time_start,time_end,split\n")
        j.write("{")
        for i in range(rows):
            while True:
                vid = "".join(rng.choice(_ID_CHARS) for _ in range(11))
                if vid not in seen:
                    seen.add(vid)
                    break
            r = rng.random()
            split = "train" if r < 0.835 else "validate" if r < 0.888 else "test"
            label = "" if split == "test" else rng.choice(names)
            start = rng.randrange(0, 290)
            end = start + 10
            c.write(f"{label},{vid},{start},{end},{split}\n")
            entry = {
                "annotations": {"label": label, "segment": [float(start), float(end)]},
                "duration": 10.0,
                "subset": split,
                "url": f"https://www.youtube.com/watch?v={vid}",
            }
            # DeepMind's file: one line, ", " and ": " separators.
            j.write(("" if i == 0 else ", ") + json.dumps(vid) + ": " + json.dumps(entry))
        j.write("}")
    stamp.write_text(want)
    print(f"==> generated {rows} rows in {time.monotonic() - t0:.0f} s: {csv_path} "
          f"({csv_path.stat().st_size / MB:.0f} MiB), {json_path} ({json_path.stat().st_size / MB:.0f} MiB)",
          flush=True)
    return Inputs(csv_path, json_path, rows)


# ------------------------------------------------------------------------------------------------ measuring


@dataclass
class Measured:
    secs: float  # wall time; for a download, until its first fetch started
    peak_mb: float
    code: int | None  # exit code; None when we killed it (a download at its first fetch) or it timed out
    note: str = ""


def measure(cmd: list[str], timeout: float, log: Path, marker: Path | None = None, env: dict | None = None,
            want_code: int | None = 0) -> Measured:
    """Runs `cmd` in its own process group with `wait4`, for its wall time and peak RSS. With `marker`, the run
    ends when the marker file appears: its content (the wrapper's `date +%s.%N`) is the moment of the first
    fetch; the group we started is SIGKILLed then."""
    if marker is not None:
        marker.unlink(missing_ok=True)
    # What earlier steps left for the kernel to write (the fill's 566k files, an export's output) is written
    # now, untimed, not in the background of this step: each step pays for its own writes only.
    os.sync()
    with open(log, "wb") as logf:
        t0 = time.time()
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, env=env,
                             start_new_session=True)
        deadline = time.monotonic() + timeout
        fetch_at = None
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid == p.pid:
                break
            if marker is not None and fetch_at is None and marker.exists():
                text = marker.read_text().strip()
                if text:
                    fetch_at = float(text)
                    os.killpg(p.pid, signal.SIGKILL)
            if time.monotonic() > deadline and fetch_at is None:
                os.killpg(p.pid, signal.SIGKILL)
                fetch_at = float("nan")
            time.sleep(0.002)
        wall = time.time() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
    peak = ru.ru_maxrss / 1024
    if marker is not None:
        if fetch_at is None:
            tail = log.read_text(errors="replace")[-2000:]
            raise SystemExit(f"{shlex.join(cmd)} ended (exit {p.returncode}) before its first fetch:\n{tail}")
        if fetch_at != fetch_at:
            return Measured(timeout, peak, None, "timed out before its first fetch")
        return Measured(fetch_at - t0, peak, None)
    if fetch_at is not None:
        return Measured(wall, peak, None, "timed out")
    code = p.returncode
    if want_code is not None and code != want_code:
        tail = log.read_text(errors="replace")[-2000:]
        raise SystemExit(f"{shlex.join(cmd)} exited {code}:\n{tail}")
    return Measured(wall, peak, code)


def best_of(n: int, f) -> Measured:
    """The median wall time of n runs, with the largest peak RSS among them."""
    runs = [f() for _ in range(n)]
    if n > 1:
        print("      runs: " + ", ".join(f"{r.secs:.2f} s" for r in runs), flush=True)
    secs = statistics.median(r.secs for r in runs)
    return Measured(secs, max(r.peak_mb for r in runs), runs[-1].code, "; ".join(r.note for r in runs if r.note))


def ytdlp_wrapper(work: Path, marker: Path) -> Path:
    """A yt-dlp that writes the time into `marker` when asked to extract (not for `--version`), then is the
    real yt-dlp. The real one is resolved now, so the wrapper costs one `sh` and one `date`."""
    real = shutil.which("yt-dlp")
    if real is None:
        raise SystemExit("yt-dlp is not on PATH")
    w = work / "bin" / "yt-dlp-first-fetch"
    w.parent.mkdir(parents=True, exist_ok=True)
    w.write_text(
        "#!/bin/sh\n"
        f'case " $* " in *" --version "*) exec {shlex.quote(real)} "$@";; esac\n'
        f"date +%s.%N > {shlex.quote(str(marker))}.tmp && mv {shlex.quote(str(marker))}.tmp {shlex.quote(str(marker))}\n"
        f'exec {shlex.quote(real)} "$@"\n'
    )
    w.chmod(0o755)
    return w


# ------------------------------------------------------------------------------------------- filling OUT

FAILED_CATEGORIES = [  # permanent ones, as a long run leaves them (a rerun does not retry them)
    ("unavailable", 0.55, "ERROR: [youtube] {id}: Video unavailable"),
    ("private", 0.2, "ERROR: [youtube] {id}: Private video. Sign in if you've been granted access to this video"),
    ("removed_by_user", 0.1, "ERROR: [youtube] {id}: This video has been removed by the uploader"),
    ("account_terminated", 0.08, "ERROR: [youtube] {id}: This video is no longer available because the YouTube "
                                 "account associated with this video has been terminated."),
    ("copyright", 0.05, "ERROR: [youtube] {id}: This video is no longer available due to a copyright claim"),
    ("terms_violation", 0.02, "ERROR: [youtube] {id}: This video has been removed for violating YouTube's Terms "
                              "of Service"),
]


def fill(out: Path, seed: int = 10) -> dict:
    """Sets the states of the journal's planned clips as a long run leaves them: 87% done (each with its own
    small file in OUT, its size and sha256 recorded as after `verify`), 9% failed for good, 4% pending; one
    attempt per finished clip spread over three runs of two days each."""
    rng = random.Random(seed)
    db = sqlite3.connect(out / ".kinetics-dl" / "journal.sqlite")
    db.execute("PRAGMA journal_mode=WAL")
    clips = db.execute("SELECT id, youtube_id, rel_path FROM clips ORDER BY id").fetchall()
    run = db.execute("SELECT started_ms, command, settings, ytdlp_version, ffmpeg_version FROM runs ORDER BY id "
                     "LIMIT 1").fetchone()
    t_first = run[0] - 6 * 86_400_000
    run_ids = []
    for k in range(3):
        started = t_first + k * 2 * 86_400_000
        cur = db.execute(
            "INSERT INTO runs (started_ms, finished_ms, command, settings, ytdlp_version, ffmpeg_version, exit_code)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (started, started + 2 * 86_400_000 - 60_000, run[1], run[2], run[3], run[4], 1))
        run_ids.append((cur.lastrowid, started))
    done_rows, failed_rows, attempts = [], [], []
    dirs: set[Path] = set()
    cum = []
    acc = 0.0
    for cat, w, msg in FAILED_CATEGORIES:
        acc += w
        cum.append((acc, cat, msg))
    t0 = time.monotonic()
    for cid, vid, rel in clips:
        r = rng.random()
        if r >= 0.96:
            continue  # pending
        run_id, started = run_ids[min(2, int(rng.random() * 3))]
        at = started + rng.randrange(0, 2 * 86_400_000 - 120_000)
        if r < 0.87:
            body = (f"{rel}\n" * 4).encode()
            path = out / rel
            if path.parent not in dirs:
                path.parent.mkdir(parents=True, exist_ok=True)
                dirs.add(path.parent)
            path.write_bytes(body)
            dl, enc = 2 + rng.random() * 6, 0.8 + rng.random() * 0.6
            fetched = rng.randrange(700_000, 1_600_000)
            done_rows.append((fetched, len(body), 10.0 + rng.choice((0, 0.01, -0.02)), dl, enc,
                              rng.choice(("137+140", "134+140", "18")), hashlib.sha256(body).hexdigest(),
                              at, rng.randrange(6, 12), cid))
            attempts.append((cid, run_id, at - int((dl + enc) * 1000), at, "done", None, None, fetched, dl, enc,
                             "default"))
        else:
            x = rng.random()
            cat, msg = next(((c, m) for a, c, m in cum if x < a), cum[-1][1:])
            msg = msg.format(id=vid)
            failed_rows.append((cat, msg, at, cid))
            attempts.append((cid, run_id, at - 3000, at, "failed", cat, msg, 0, 0.0, 0.0, "default"))
    db.executemany(
        "UPDATE clips SET state = 'done', attempts = 1, bytes_fetched = ?, size_bytes = ?, duration_s = ?, "
        "download_s = ?, encode_s = ?, format_id = ?, source = 'youtube', sha256 = ?, updated_ms = ?, "
        "media_requests = ? WHERE id = ?", done_rows)
    db.executemany(
        "UPDATE clips SET state = 'failed', category = ?, message = ?, attempts = 1, updated_ms = ? WHERE id = ?",
        failed_rows)
    attempts.sort(key=lambda a: a[3])
    db.executemany(
        "INSERT INTO attempts (clip_id, run_id, started_ms, finished_ms, outcome, category, message, bytes_fetched,"
        " download_s, encode_s, egress) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", attempts)
    db.commit()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    states = {"done": len(done_rows), "failed": len(failed_rows),
              "pending": len(clips) - len(done_rows) - len(failed_rows)}
    print(f"==> filled the journal in {time.monotonic() - t0:.0f} s: {states}", file=sys.stderr, flush=True)
    return states


# --------------------------------------------------------------------------------------------------- the run


@dataclass
class Step:
    name: str
    cmd: str
    m: Measured
    target: str
    limit: Callable[[float], float | None]  # the step's time limit, given the yardstick J (json.load's time)
    rss: bool  # whether peak RSS must stay under RSS_LIMIT_MB

    def ok(self, J: float) -> bool | None:
        """PASS/MISS against the yardstick, known only once the run has ended; None for a step not measured."""
        if self.m.code is None and self.m.note:
            return None
        limit = self.limit(J)
        return (limit is None or self.m.secs <= limit) and (not self.rss or self.m.peak_mb < RSS_LIMIT_MB)


@dataclass
class Yardstick:
    """Python's `json.load` of the JSON, run --repeat times before the kinetics-dl steps and as many after: the
    machine's speed moves by a third within minutes here, and the steps run in between. J is the median of
    all of them."""
    before: list[Measured]
    after: list[Measured]

    @property
    def secs(self) -> float:
        return statistics.median(m.secs for m in self.before + self.after)

    @property
    def peak_mb(self) -> float:
        return max(m.peak_mb for m in self.before + self.after)

    def describe(self) -> str:
        def secs(ms: list[Measured]) -> str:
            return ", ".join(f"{m.secs:.2f}" for m in ms)
        return f"before the steps {secs(self.before)} s, after them {secs(self.after)} s"


def run(args: argparse.Namespace, kdl: Path, work: Path) -> tuple[list[Step], dict, Yardstick, Measured, Inputs]:
    # Generated in a child, for the same reason as the fill below (peak RSS is inherited across fork).
    dest = args.inputs or work / "inputs"
    subprocess.run([sys.executable, "-c", "import sys; sys.dont_write_bytecode = True; sys.path.insert(0, sys.argv[1]); "
                    "import scale; from pathlib import Path; scale.generate(Path(sys.argv[2]), int(sys.argv[3]))",
                    str(Path(__file__).resolve().parent), str(dest), str(args.rows)], check=True, timeout=args.timeout)
    inputs = Inputs(dest / "k700.csv", dest / "k700.json", args.rows)
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    marker = work / "first-fetch"
    wrapper = ytdlp_wrapper(work, marker)
    py = sys.executable
    steps: list[Step] = []

    def show(s: Step) -> None:
        print(f"    {s.name:<42} {s.m.secs:7.2f} s {s.m.peak_mb:7.0f} MB  {s.m.note}", flush=True)

    def json_load() -> list[Measured]:
        return [measure([py, "-c", "import json,sys; d = json.load(open(sys.argv[1])); print(len(d))",
                         str(inputs.json)], 600, logs / "py-json.log") for _ in range(args.repeat)]

    print("==> Python reading the same files", flush=True)
    pyjson = Yardstick(json_load(), [])
    pycsv = best_of(args.repeat, lambda: measure(
        [py, "-c", "import csv,sys; r = list(csv.reader(open(sys.argv[1], newline=''))); print(len(r) - 1)",
         str(inputs.csv)], 600, logs / "py-csv.log"))
    print(f"    json.load {pyjson.secs:.2f} s {pyjson.peak_mb:.0f} MB; csv.reader {pycsv.secs:.2f} s "
          f"{pycsv.peak_mb:.0f} MB", flush=True)

    def download(out: Path, ann: Path) -> list[str]:
        return [str(kdl), "download", "--annotations", str(ann), "--out", str(out), "-q", "--ytdlp", str(wrapper),
                "--url-template", "http://127.0.0.1:9/watch?v={youtube_id}"]

    def add(name: str, cmd: list[str], m: Measured, limit: Callable[[float], float | None], target: str,
            rss: bool = True) -> None:
        shown = shlex.join(["kinetics-dl", *cmd[1:]]).replace(str(work), "$W")
        s = Step(name, shown, m, target, limit, rss)
        steps.append(s)
        show(s)

    print("==> kinetics-dl", flush=True)
    out_json, out_csv = work / "out-json", work / "out-csv"
    for name, out, ann, factor in (("first download, JSON", out_json, inputs.json, 1.5),
                                   ("first download, CSV", out_csv, inputs.csv, None)):
        def first(out=out, ann=ann):
            common.fresh_dir(out)
            return measure(download(out, ann), args.timeout, logs / f"{out.name}-first.log", marker=marker)
        m = best_of(args.repeat, first)
        if factor is None:  # CSV: faster than the JSON run, within the same 1.5x of json.load
            json_run = steps[-1].m.secs
            add(name + " (until its first fetch)", download(out, ann), m, lambda J, j=json_run: min(1.5 * J, j),
                "< JSON run, ≤ 1.5x json.load, < 300 MB")
        else:
            add(name + " (until its first fetch)", download(out, ann), m, lambda J, f=factor: f * J,
                "≤ 1.5x json.load, < 300 MB")

    m = best_of(args.repeat, lambda: measure(download(out_csv, inputs.csv), args.timeout,
                                             logs / "out-csv-rerun.log", marker=marker))
    add("rerun, CSV, all journaled and pending", download(out_csv, inputs.csv), m, lambda J: 0.5 * J,
        "≤ 0.5x json.load")

    # In a child: the fill holds ~600k rows in Python lists, and a child forked from a big process starts with
    # its peak RSS (ru_maxrss survives fork and exec), which would show in every later measurement.
    states = json.loads(subprocess.run(
        [py, "-c", "import json, sys; sys.dont_write_bytecode = True; sys.path.insert(0, sys.argv[1]); import scale; "
                   "from pathlib import Path; print(json.dumps(scale.fill(Path(sys.argv[2]))))",
         str(Path(__file__).resolve().parent), str(out_json)],
        check=True, capture_output=True, text=True, timeout=args.timeout).stdout.strip().splitlines()[-1])
    pristine = work / "journal-filled.sqlite"
    journal = out_json / ".kinetics-dl" / "journal.sqlite"
    shutil.copy2(journal, pristine)

    def restore() -> None:
        for extra in ("-wal", "-shm"):
            Path(str(journal) + extra).unlink(missing_ok=True)
        shutil.copy2(pristine, journal)

    def rerun():
        restore()
        return measure(download(out_json, inputs.json), args.timeout, logs / "out-json-rerun.log", marker=marker)
    m = best_of(args.repeat, rerun)
    add("rerun, JSON, filled journal (mostly done)", download(out_json, inputs.json), m, lambda J: 0.5 * J,
        "≤ 0.5x json.load")
    restore()

    def cmd_step(name: str, cmd: list[str], limit: Callable[[float], float | None], target: str,
                 rss: bool = True) -> None:
        m = best_of(args.repeat, lambda: measure(cmd, args.timeout, logs / (name.replace(" ", "_") + ".log")))
        add(name, cmd, m, limit, target, rss)

    within = "≤ 1.5x json.load, < 300 MB"
    cmd_step("status --json", [str(kdl), "status", "--out", str(out_json), "--json"], lambda J: 1.0, "< 1 s",
             rss=False)
    cmd_step("report", [str(kdl), "report", "--out", str(out_json)], lambda J: 1.5 * J, within)
    cmd_step("manifest", [str(kdl), "manifest", "--out", str(out_json)], lambda J: 1.5 * J, within)
    for f in EXPORT_FORMATS:
        cmd_step(f"export --format {f}", [str(kdl), "export", "--out", str(out_json), "--format", f],
                 lambda J: 1.5 * J, within)
    print("==> Python reading the JSON again, after the steps", flush=True)
    pyjson.after = json_load()
    print(f"    json.load {pyjson.describe()}; the yardstick: {pyjson.secs:.2f} s", flush=True)
    return steps, states, pyjson, pycsv, inputs


def report(steps: list[Step], states: dict, pyjson: Yardstick, pycsv: Measured, inputs: Inputs,
           args: argparse.Namespace, loads: tuple[str, str]) -> str:
    J = pyjson.secs
    rows = [["Python `json.load` (the yardstick)", f"{pyjson.secs:.2f}", "1.00x", f"{pyjson.peak_mb:.0f}", "", ""],
            ["Python `list(csv.reader(...))`", f"{pycsv.secs:.2f}", f"{pycsv.secs / J:.2f}x", f"{pycsv.peak_mb:.0f}",
             "", ""]]
    for s in steps:
        ok = s.ok(J)
        verdict = "n/a" if ok is None else "PASS" if ok else "MISS"
        rows.append([s.name + (f" ({s.m.note})" if s.m.note else ""), f"{s.m.secs:.2f}", f"{s.m.secs / J:.2f}x",
                     f"{s.m.peak_mb:.0f}", s.target, verdict])
    cmds = "\n".join(f"- {s.name}: `{s.cmd}`" for s in steps)
    return f"""## Benchmark 3: Kinetics-700 scale (issue 10)

Run: {common.machine_line()}; 1-min load average {loads[0]} before, {loads[1]} after (a shared machine: wall times move with it)

Build: {args.build}

Command: `{args.command}` (rows {args.rows}, repeat {args.repeat}: median wall time, largest peak)

Input: {inputs.rows} generated rows (one clip per video, 700 labels, ~83.5% train, ~5.3% validate, ~11.2% unlabelled test), `k700.csv` {inputs.csv.stat().st_size / MB:.0f} MiB and `k700.json` {inputs.json.stat().st_size / MB:.0f} MiB (DeepMind's shape). Filled journal: {states['done']} done (a small file each in OUT, size and sha256 recorded as after `verify`), {states['failed']} failed for good, {states['pending']} pending; one attempt per finished clip over three runs.

Wall time and peak RSS of the whole process (`wait4`); a download's time runs until it starts yt-dlp on its first clip. Ratios are to `json.load` of the same JSON in the same run: the median of {2 * args.repeat} runs, half before the kinetics-dl steps and half after them ({pyjson.describe()}).

{common.table(["step", "wall s", "vs json.load", "peak RSS MB", "target", ""], rows)}

Commands ($W is the scratch directory; every download also gets `-q --ytdlp WRAPPER --url-template http://127.0.0.1:9/watch?v={{youtube_id}}`):

{cmds}
"""


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=650_000, help="clips in the generated input (default 650000)")
    p.add_argument("--repeat", type=int, default=1, help="runs per step; the median wall time is shown (default 1)")
    p.add_argument("--timeout", type=float, default=600, help="bound of one process, seconds (default 600)")
    p.add_argument("--bin-dir", type=Path, default=common.REPO / "target" / "release",
                   help="where kinetics-dl is (default: target/release)")
    p.add_argument("--work", type=Path, help="scratch directory (default: a new temp dir)")
    p.add_argument("--inputs", type=Path, help="where the generated input is kept and reused (default: WORK/inputs)")
    p.add_argument("--keep", action="store_true", help="keep the scratch directory")
    p.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    p.add_argument("--section", default="scale", help="RESULTS.md section to replace (default: scale)")
    args = p.parse_args(argv)
    if args.rows < 1 or args.repeat < 1:
        p.error("--rows and --repeat must be positive")
    args.command = shlex.join(["python3", "bench/scale.py", *argv])
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="kinetics-bench-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"==> scratch directory {work}", flush=True)
    kdl = work / "bin" / "kinetics-dl"
    src = args.bin_dir / "kinetics-dl"
    if not os.access(src, os.X_OK):
        raise SystemExit(f"{src} is missing: run `cargo build --release --bins` first")
    kdl.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, kdl)  # a rebuild during the run cannot mix two builds into one table
    digest = hashlib.sha256(kdl.read_bytes()).hexdigest()[:12]
    if args.bin_dir.resolve() == (common.REPO / "target" / "release").resolve():
        args.build = f"kinetics-dl sha256 {digest}, commit {git_head()}"
    else:  # a binary built elsewhere (a baseline): this checkout's commit says only what ran the benchmark
        args.build = f"kinetics-dl sha256 {digest}, from {args.bin_dir} (the benchmark from {git_head()})"
    print(f"==> {args.build}", flush=True)
    before = common.load_average()
    steps, states, pyjson, pycsv, inputs = run(args, kdl, work)
    text = report(steps, states, pyjson, pycsv, inputs, args, (before, common.load_average()))
    print()
    print(text)
    if not args.no_write:
        common.write_section(args.section, text)
        print(f"==> written to {common.RESULTS}")
    if not args.keep and args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def git_head() -> str:
    try:
        out = subprocess.run(["git", "-C", str(common.REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(common.REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + (" + uncommitted changes" if dirty else "")
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
