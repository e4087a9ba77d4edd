"""Benchmark 2: kinetics-dl against per-IP 429 bans, with 1 and 3 egresses, with and without its circuit
breakers, next to the completion time the throttle rule allows.

The ideal: an egress may send B video requests in any W-second window without being banned. A clip costs R
requests (measured in an unthrottled calibration run of the same clips), so N clips over E egresses need
N*R requests, i.e. ceil(N*R / (B*E)) windows per egress: ideal_throttle = ceil(N*R / (B*E)) * W. The run can
also never beat the unthrottled run of the same clips (T0, CPU- and bandwidth-bound), so
ideal = max(ideal_throttle, T0), and ratio = wall / ideal (1.0 is perfect).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import common as c

# Cheap to cut (320x180, 15 fps) so that the throttle, not the CPU, decides the pace.
PROFILE = {"duration_secs": 120, "width": 320, "height": 180, "fps": 15, "gop_secs": 2, "audio": True,
           "video_kbps": 500}
EGRESSES = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]


@dataclass
class Run:
    name: str
    egresses: int
    breaker: bool
    wall: float = 0.0
    code: int | None = 0
    done: int = 0
    failed: int = 0
    pending: int = 0
    served: int = 0
    count_429: int = 0
    signals: int = 0
    wasted: int = 0
    attempts: int = 0
    throttled_attempts: int = 0
    per_ip: dict = field(default_factory=dict)
    ideal: float = 0.0
    timeout: float = 0.0
    stderr: str = ""
    timeline: str = ""
    bans: int = 0
    learned: dict = field(default_factory=dict)


class Bench:
    def __init__(self, args, kdl: Path, src_bin: Path, work: Path):
        self.args, self.kdl, self.src_bin, self.work = args, kdl, src_bin, work
        dur = PROFILE["duration_secs"]
        self.clips = c.kinetics_rows(args.n, lambda s: s % (dur - c.MAX_CLIP_SECS - 2))

    def config(self, throttled: bool) -> dict:
        cfg = {"profile": PROFILE, "bandwidth": self.args.bandwidth}
        if throttled:
            cfg["ip_throttle"] = {"enabled": True, "window_secs": self.args.window,
                                  "max_requests": self.args.max_requests, "ban_secs": self.args.ban,
                                  "extend_ban": self.args.extend_ban}
        return cfg

    def one(self, name: str, egresses: int, breaker: bool, throttled: bool, timeout: float) -> Run:
        run = Run(name, egresses, breaker, timeout=timeout)
        tmp = c.fresh_dir(self.work / f"throttle-{name.replace(' ', '-').replace(',', '')}")
        ann = tmp / "clips.csv"
        c.write_annotations(self.clips, ann)
        out = tmp / "out"
        # A fresh source per run: no ban or request window carries over from the previous run.
        src = c.TestSource(self.src_bin, self.config(throttled), tmp, "src")
        try:
            cmd = [str(self.kdl), "download", "--annotations", str(ann), "--out", str(out),
                   "--url-template", src.url + "/watch?v={youtube_id}", "-q", "--cooldown", f"{self.args.ban:g}s"]
            for addr in EGRESSES[:egresses]:
                cmd += ["--source-address", addr]
            if not breaker:
                cmd.append("--no-breaker")
            print(f"--> {name}: {len(self.clips)} clips, timeout {timeout:.0f} s", flush=True)
            ran = c.run_bounded(cmd, timeout, grace_signal=signal.SIGTERM)
            run.wall, run.code = ran.secs, ran.code
            run.stderr = ran.stderr.strip()[-1500:]
            stats = src.idle_stats()
        finally:
            src.close()
        if self.args.keep:
            # Every request the source saw, for reading a run's timeline beside its journal.
            (tmp / "source-log.json").write_text(json.dumps(stats["log"]))
        run.count_429 = sum(ip["count_429"] for ip in stats["ips"].values())
        run.served = stats["total_requests"] - run.count_429
        run.per_ip = {k: (v["requests"], v["count_429"]) for k, v in stats["ips"].items()}
        run.timeline = timeline(stats["log"], self.args.window)
        run.bans = count_bans(stats["log"])
        st = c.run_bounded([str(self.kdl), "status", "--out", str(out), "--json"], 60)
        try:
            status = json.loads(st.stdout)
            run.done, run.pending = status["done"], status["pending"]
            run.failed = sum(status["failed"].values())
            run.signals = sum(e["throttle_events"] for e in status["egresses"])
            run.wasted = sum(e["wasted"] for e in status["egresses"])
            run.learned = {e["egress"]: e.get("learned_rate_per_min") for e in status["egresses"]
                           if e.get("learned_rate_per_min") is not None}
        except (json.JSONDecodeError, KeyError):
            run.stderr += "\nstatus: " + st.stderr.strip()[-500:]
        run.attempts, run.throttled_attempts = journal_attempts(out / ".kinetics-dl" / "journal.sqlite")
        if not self.args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        print(f"    {run.done} done, {run.failed} failed, {run.pending} pending in {run.wall:.1f} s "
              f"(exit {run.code}); {run.count_429} answered 429; {run.wasted} requests into bans", flush=True)
        return run

    def run(self) -> tuple[Run, float, list[Run]]:
        self.load_before = c.load_average()
        n = len(self.clips)
        print("==> calibration: the same clips without per-IP throttling (1 egress)", flush=True)
        calib = self.one("calibration, unthrottled", 1, True, False, self.args.run_timeout)
        reqs_per_clip = calib.served / max(calib.done, 1)
        runs = []
        for egresses in (1, 3):
            for breaker in (True, False):
                windows = c.ceil_div(n * reqs_per_clip, self.args.max_requests * egresses)
                ideal = max(windows * self.args.window, calib.wall)
                # Bounded: generous next to the ideal, never past --run-timeout.
                timeout = min(self.args.run_timeout, 3 * ideal + 30)
                name = f"{egresses} egress{'es' if egresses > 1 else ''}, {'breaker' if breaker else '--no-breaker'}"
                r = self.one(name, egresses, breaker, True, timeout)
                r.ideal = ideal
                runs.append(r)
        self.load_after = c.load_average()
        return calib, reqs_per_clip, runs


    def run_budget(self) -> tuple[Run, float, list[Run]]:
        """The per-request budget (issue 14): calibration, then 3 egresses with the learned rate and with
        --no-breaker."""
        self.load_before = c.load_average()
        n = len(self.clips)
        print("==> calibration: the same clips without per-IP throttling (1 egress)", flush=True)
        calib = self.one("calibration, unthrottled", 1, True, False, self.args.run_timeout)
        reqs_per_clip = calib.served / max(calib.done, 1)
        windows = c.ceil_div(n * reqs_per_clip, self.args.max_requests * 3)
        ideal = max(windows * self.args.window, calib.wall)
        runs = []
        for breaker in (True, False):
            name = f"3 egresses, {'breaker + learned rate' if breaker else '--no-breaker'}"
            r = self.one(name, 3, breaker, True, min(self.args.run_timeout, 3 * ideal + 60))
            r.ideal = ideal
            runs.append(r)
        self.load_after = c.load_average()
        return calib, reqs_per_clip, runs


def count_bans(log: list[dict]) -> int:
    """Bans handed out: a 429 to an IP whose previous video request was served (a ban that is hit again, and
    so extended, is one ban)."""
    last: dict[str, int] = {}
    bans = 0
    for e in sorted(log, key=lambda e: e["time_ms"]):
        if not (e["path"].startswith("/v/") or e["path"] == "/watch"):
            continue
        if e["status"] == 429 and last.get(e["ip"], 200) != 429:
            bans += 1
        last[e["ip"]] = e["status"]
    return bans


def timeline(log: list[dict], window: float) -> str:
    """Requests per window from the source's log, as `served/429` from the first request on."""
    # The watch page and the media: every request the ban rule counts.
    video = [e for e in log if e["path"].startswith("/v/") or e["path"] == "/watch"]
    if not video:
        return ""
    t0 = min(e["time_ms"] for e in video)
    buckets: dict[int, list[int]] = {}
    for e in video:
        b = buckets.setdefault(int((e["time_ms"] - t0) / 1000 / window), [0, 0])
        b[1 if e["status"] == 429 else 0] += 1
    return " ".join(f"{buckets.get(i, [0, 0])[0]}/{buckets.get(i, [0, 0])[1]}" for i in range(max(buckets) + 1))


def journal_attempts(path: Path) -> tuple[int, int]:
    """(clip attempts, attempts that ended in a throttle signal) from the journal, read-only."""
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            total = con.execute("SELECT COUNT(*) FROM attempts").fetchone()[0]
            hit = con.execute(
                "SELECT COUNT(*) FROM attempts WHERE category IN ('rate_limited', 'bot_check')").fetchone()[0]
        finally:
            con.close()
        return total, hit
    except sqlite3.Error:
        return -1, -1


def report(calib: Run, reqs_per_clip: float, runs: list[Run], args, n: int, load: tuple[str, str]) -> str:
    rows = []
    for r in runs:
        status = "timed out" if r.code is None else f"exit {r.code}"
        rows.append([r.name, f"{r.done}/{n}", f"{r.failed}/{r.pending}", f"{r.wall:.1f} ({status})",
                     f"{r.ideal:.0f}", f"{r.wall / r.ideal:.2f}x" if r.ideal else "-", str(r.served), str(r.count_429),
                     str(r.signals), str(r.wasted),
                     f"{r.throttled_attempts}/{r.attempts}"])
    per_ip = "; ".join(
        f"{r.name}: " + ", ".join(f"{ip} {req} req/{b} 429" for ip, (req, b) in sorted(r.per_ip.items()))
        for r in runs)
    lines = [f"- {r.name}: {r.timeline}" for r in runs if r.timeline]
    return "\n".join([
        "## Benchmark 2: per-IP throttling and egresses (issue 3)",
        "",
        f"Run: {c.machine_line()}; 1-min load average {load[0]} before, {load[1]} after",
        "",
        f"Build: {args.build}",
        "",
        f"Command: `{args.command}` (n {args.n}; rule: more than {args.max_requests} video "
        f"requests from one IP in a sliding {args.window:g} s window ban it for {args.ban:g} s with 429s; "
        f"kinetics-dl `--cooldown {args.ban:g}s`, default `-j`, egresses 127.0.0.2..4 via `--source-address`)",
        "",
        f"Calibration without the throttle (1 egress): {calib.done}/{n} clips in {calib.wall:.1f} s = T0; "
        f"{calib.served} requests = R = {reqs_per_clip:.2f} requests per clip (yt-dlp's GET + relay ranges). "
        f"ideal = max(ceil(N*R / (B*E)) * W, T0) with N={n}, B={args.max_requests}, W={args.window:g} s, "
        "E = egresses.",
        "",
        c.table(["run", "done", "failed/pending", "wall s", "ideal s", "wall/ideal", "requests served",
                 "answered 429", "throttle signals (journal)", "requests into bans (journal `wasted`)",
                 "clip attempts throttled/all"], rows),
        "",
        f"Per IP (requests / 429s): {per_ip}.",
        "",
        f"Requests per {args.window:g} s window from each run's first request (served/429; the rule allows"
        f" {args.max_requests} per window per egress):",
        "",
        *lines,
        "",
        "answered 429 = test source `/_stats` `ips[].count_429` summed; throttle signals and requests into bans"
        " come from `kinetics-dl status --json` (`egresses[].throttle_events`, `egresses[].wasted`: every request"
        " that was answered with a throttle signal, counted by kinetics-dl itself; it should equal the source's"
        " 429 count). Clip attempts: rows of the journal's `attempts` table (throttled = category rate_limited/bot_check).",
        "",
    ])


def report_budget(calib: Run, reqs_per_clip: float, runs: list[Run], args, n: int, load: tuple[str, str]) -> str:
    rows = []
    for r in runs:
        status = "timed out" if r.code is None else f"exit {r.code}"
        total = r.served + r.count_429
        rows.append([r.name, f"{r.done}/{n}", f"{r.failed}/{r.pending}", f"{r.wall:.1f} ({status})",
                     f"{r.ideal:.0f}", f"{r.wall / r.ideal:.2f}x" if r.ideal else "-", str(r.bans),
                     f"{r.count_429} ({100 * r.count_429 / max(total, 1):.1f}%)", str(r.wasted),
                     f"{total / max(r.done, 1):.2f}", f"{r.throttled_attempts}/{r.attempts}"])
    learned = "; ".join(f"{r.name}: " + (", ".join(f"{e} {v:.1f}/min" for e, v in sorted(r.learned.items())) or "none")
                        for r in runs)
    lines = [f"- {r.name}: {r.timeline}" for r in runs if r.timeline]
    return "\n".join([
        "## Throttling against a per-request budget (issue 14)",
        "",
        f"Run: {c.machine_line()}; 1-min load average {load[0]} before, {load[1]} after",
        "",
        f"Build: {args.build}",
        "",
        f"Command: `{args.command}` (n {args.n}; rule: more than {args.max_requests} video requests (watch page, "
        f"manifest, media) from one IP in a sliding {args.window:g} s window ban it for {args.ban:g} s, and a "
        f"request into a ban extends it; kinetics-dl `--cooldown {args.ban:g}s`, default `-j`, egresses "
        "127.0.0.2..4 via `--source-address`)",
        "",
        f"Calibration without the throttle (1 egress): {calib.done}/{n} clips in {calib.wall:.1f} s = T0; "
        f"{calib.served} requests = R = {reqs_per_clip:.2f} requests per clip. ideal = max(ceil(N*R / (B*E)) * W, "
        f"T0) with N={n}, B={args.max_requests}, W={args.window:g} s, E=3: the schedule the budget allows at "
        "this build's requests per clip.",
        "",
        c.table(["run", "done", "failed/pending", "wall s", "ideal s", "wall/ideal", "bans",
                 "answered 429 (share of all requests)", "requests into bans (journal)", "requests per clip",
                 "clip attempts throttled/all"], rows),
        "",
        f"Learned rates at the end (`status --json` `learned_rate_per_min`): {learned}.",
        "",
        f"Requests per {args.window:g} s window from each run's first request (served/429; the budget allows"
        f" {args.max_requests} per window per egress):",
        "",
        *lines,
        "",
        "bans = 429s to an IP whose previous video request was served (the source's log); answered 429 = test"
        " source `/_stats` `ips[].count_429` summed, every request sent into a ban including the one that"
        " tripped it; requests into bans (journal) = `status --json` `egresses[].wasted`; requests per clip ="
        " all video requests / clips done.",
        "",
    ])
