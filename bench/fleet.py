"""Benchmark 4: a fleet of four workers, one egress each, one egress banned for the whole run, on three ways of
sharing the clips: pull through PostgreSQL (`--db`), static shards (`--shard i/4`), one process with the four
egresses. Printed side by side from one run.

The test source bans an IP for `--ban` seconds (default: an hour, longer than any run) once it sends more than
B video requests in a window; B is high enough that the good egresses never reach it. The bench bans
127.0.0.5 itself before each case by sending it B+1 watch-page requests, so the fourth egress is banned from
the first request kinetics-dl makes through it to the end of the case.

The ideal: what the three unbanned egresses allow, measured: the same clips pulled by three workers on the
good egresses alone (127.0.0.2-4, same options, no ban). ratio = the case's time to finish / ideal.
"""

from __future__ import annotations

import http.client
import json
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import common as c

# Cheap to cut (320x180, 15 fps), as in benchmark 2.
PROFILE = {"duration_secs": 120, "width": 320, "height": 180, "fps": 15, "gop_secs": 2, "audio": True,
           "video_kbps": 500}
GOOD = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
BANNED = "127.0.0.5"
# Video requests one IP may send in the window before the source bans it: far above what a good egress sends
# in a case (about 8 a clip), so only the egress the bench bans on purpose is ever banned.
MAX_REQUESTS = 400
WINDOW_SECS = 3600.0
FLEET = "bench"


@dataclass
class Proc:
    name: str
    addr: str
    code: int | None = 0  # None: killed at the timeout
    secs: float = 0.0
    stderr: str = ""


@dataclass
class Case:
    key: str
    name: str
    procs: list[Proc] = field(default_factory=list)
    finish: float | None = None  # seconds until every clip was done; None: did not finish
    wall: float = 0.0  # until the last process exited
    done: int = 0
    left: int = 0
    failed: int = 0
    into_bans: dict = field(default_factory=dict)  # ip -> 429s during the case
    served: dict = field(default_factory=dict)  # ip -> requests served during the case
    detail: str = ""


class Bench:
    def __init__(self, args, kdl: Path, src_bin: Path, work: Path):
        self.args, self.kdl, self.src_bin, self.work = args, kdl, src_bin, work
        dur = PROFILE["duration_secs"]
        self.clips = c.kinetics_rows(args.n, lambda s: s % (dur - c.MAX_CLIP_SECS - 2))
        self.db = args.db or subprocess.run([str(c.REPO / "scripts" / "test-pg.sh")], check=True,
                                            capture_output=True, text=True, timeout=300).stdout.strip()

    def config(self) -> dict:
        return {"profile": PROFILE, "bandwidth": self.args.bandwidth,
                "ip_throttle": {"enabled": True, "window_secs": WINDOW_SECS, "max_requests": MAX_REQUESTS,
                                "ban_secs": self.args.ban, "extend_ban": False}}

    def common_args(self, src: c.TestSource, ann: Path) -> list[str]:
        return ["--annotations", str(ann), "--url-template", src.url + "/watch?v={youtube_id}", "-q",
                "--retry-delay", "0s", "--cooldown", f"{self.args.cooldown:g}s",
                "--cooldown-max", f"{2 * self.args.cooldown:g}s"]

    def psql(self, sql: str) -> str:
        return subprocess.run(["psql", self.db, "-X", "-q", "-At", "-c", sql], check=True, capture_output=True,
                              text=True, timeout=60).stdout.strip()

    def ban(self, src: c.TestSource, ip: str) -> None:
        """Sends watch-page requests from `ip` until the source answers 429 (bounded)."""
        u = urlparse(src.url)
        for _ in range(MAX_REQUESTS + 10):
            conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30, source_address=(ip, 0))
            try:
                conn.request("GET", "/watch?v=benchbanned")
                status = conn.getresponse().status
            finally:
                conn.close()
            if status == 429:
                return
        raise SystemExit(f"the test source did not ban {ip} after {MAX_REQUESTS + 10} requests")

    def run_procs(self, cmds: list[tuple[str, str, list[str]]], timeout: float) -> tuple[list[Proc], float]:
        """Runs the commands at once, each bounded by `timeout`; returns them with their end times."""
        procs = [Proc(name, addr) for name, addr, _ in cmds]
        t0 = time.monotonic()

        def one(p: Proc, cmd: list[str]) -> None:
            ran = c.run_bounded(cmd, timeout, grace_signal=signal.SIGTERM)
            p.code, p.secs, p.stderr = ran.code, time.monotonic() - t0, ran.stderr.strip()[-800:]

        threads = [threading.Thread(target=one, args=(p, cmd)) for p, (_, _, cmd) in zip(procs, cmds)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return procs, time.monotonic() - t0

    def status(self, extra: list[str]) -> dict:
        st = c.run_bounded([str(self.kdl), "status", "--json", *extra], 120)
        try:
            return json.loads(st.stdout)
        except json.JSONDecodeError:
            raise SystemExit(f"status {extra} failed: {st.stderr.strip()[-800:]}")

    def one(self, key: str, name: str, addrs: list[str], ban: bool) -> Case:
        case = Case(key, name)
        tmp = c.fresh_dir(self.work / f"fleet-{key}")
        ann = tmp / "clips.csv"
        c.write_annotations(self.clips, ann)
        n = len(self.clips)
        # A fresh source per case: no ban or request window carries over.
        src = c.TestSource(self.src_bin, self.config(), tmp, "src")
        schema = f"kdl_bench_{key}_{int(time.time())}"
        try:
            if ban:
                self.ban(src, BANNED)
            before = src.idle_stats()["ips"]
            base = self.common_args(src, ann)
            cmds: list[tuple[str, str, list[str]]] = []
            if key in ("ideal", "pull"):
                self.psql(f"CREATE SCHEMA {schema}")
                for i, addr in enumerate(addrs):
                    cmds.append((f"worker {i}", addr, [
                        str(self.kdl), "download", "--db", self.db, "--db-schema", schema, "--fleet", FLEET,
                        "--out", str(tmp / f"w{i}"), *base, "-j", str(self.args.jobs), "--encode-jobs", "1",
                        "--source-address", addr]))
            elif key == "shards":
                for i, addr in enumerate(addrs):
                    cmds.append((f"shard {i}/{len(addrs)}", addr, [
                        str(self.kdl), "download", "--out", str(tmp / f"s{i}"), *base, "-j", str(self.args.jobs),
                        "--encode-jobs", "1", "--source-address", addr, "--shard", f"{i}/{len(addrs)}",
                        "--max-wait", f"{self.args.max_wait:g}s"]))
            else:
                cmd = [str(self.kdl), "download", "--out", str(tmp / "one"), *base,
                       "-j", str(self.args.jobs * len(addrs)), "--encode-jobs", str(len(addrs))]
                for addr in addrs:
                    cmd += ["--source-address", addr]
                cmds.append(("one process", ",".join(addrs), cmd))
            print(f"--> {name}: {n} clips, {len(cmds)} process(es), timeout {self.args.run_timeout:.0f} s",
                  flush=True)
            case.procs, case.wall = self.run_procs(cmds, self.args.run_timeout)
            after = src.idle_stats()["ips"]
            if key in ("ideal", "pull"):
                st = self.status(["--db", self.db, "--db-schema", schema, "--fleet", FLEET])
                case.done, case.failed = st["done"], sum(st["failed"].values())
                case.left = n - case.done - case.failed
                # A worker exits 0 only once nothing in the fleet is pending or leased: the first exit 0 is
                # when the fleet finished.
                zeros = [p.secs for p in case.procs if p.code == 0]
                case.finish = min(zeros) if zeros and case.left == 0 else None
            else:
                outs = sorted(tmp.glob("s*")) if key == "shards" else [tmp / "one"]
                per = []
                for p, out in zip(case.procs, outs):
                    st = self.status(["--out", str(out)])
                    case.done += st["done"]
                    case.failed += sum(st["failed"].values())
                    per.append(f"{p.name} ({p.addr}): {st['done']} done, {st['pending']} left, exit {p.code}")
                case.left = n - case.done - case.failed
                case.detail = "; ".join(per)
                if case.left == 0 and all(p.code == 0 for p in case.procs):
                    case.finish = max(p.secs for p in case.procs)
        finally:
            src.close()
            if key in ("ideal", "pull"):
                try:
                    self.psql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
                except subprocess.SubprocessError:
                    pass
        for ip, v in after.items():
            b = before.get(ip, {"requests": 0, "count_429": 0})
            case.into_bans[ip] = v["count_429"] - b["count_429"]
            case.served[ip] = (v["requests"] - b["requests"]) - case.into_bans[ip]
        if key in ("ideal", "pull"):
            case.detail = "; ".join(f"{p.name} ({p.addr}): exit {'timeout' if p.code is None else p.code} at "
                                    f"{p.secs:.0f} s" for p in case.procs)
        if not self.args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        fin = f"finished in {case.finish:.1f} s" if case.finish is not None else f"did not finish, {case.left} left"
        print(f"    {case.done} done, {case.failed} failed; {fin}; last exit at {case.wall:.1f} s; "
              f"429s {sum(case.into_bans.values())}; {case.detail}", flush=True)
        for p in case.procs:
            if p.code not in (0, 3) and p.stderr:
                print(f"    {p.name} stderr: {p.stderr}", flush=True)
        return case

    def run(self) -> list[Case]:
        self.load_before = c.load_average()
        self.uptime_before = uptime()
        print("==> ideal: the same clips pulled by three workers on the good egresses alone", flush=True)
        cases = [self.one("ideal", "ideal: 3 good egresses, pull", GOOD, False)]
        four = GOOD + [BANNED]
        cases.append(self.one("pull", "pull (PostgreSQL `--db`)", four, True))
        cases.append(self.one("shards", "static shards (`--shard i/4`)", four, True))
        cases.append(self.one("single", "one process, 4 egresses", four, True))
        self.load_after = c.load_average()
        self.uptime_after = uptime()
        return cases


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def report(cases: list[Case], args, n: int, bench: Bench) -> str:
    ideal = cases[0].finish
    rows = []
    for k in cases:
        t = k.finish
        if t is None:
            fin = f"did not finish, {k.left} clips left (last exit {k.wall:.0f} s)"
        else:
            fin = f"{t:.1f}"
        cpm = k.done / (t if t is not None else k.wall) * 60 if (t or k.wall) else 0
        ratio = f"{t / ideal:.2f}x" if t is not None and ideal else "-"
        bans = k.into_bans.get(BANNED, 0)
        other = sum(v for ip, v in k.into_bans.items() if ip != BANNED)
        rows.append([k.name, f"{k.done}/{n}", str(k.failed), fin, f"{cpm:.1f}", ratio, str(bans), str(other),
                     str(k.served.get(BANNED, 0))])
    details = [f"- {k.name}: {k.detail}" for k in cases if k.detail]
    return "\n".join([
        "## Benchmark 4: a fleet with one banned egress: pull against shards against one process (issue 9)",
        "",
        f"Run: {c.machine_line()}; 1-min load average {bench.load_before} before, {bench.load_after} after "
        "(a shared machine: wall times move with it)",
        "",
        f"`uptime` before: `{bench.uptime_before}`; after: `{bench.uptime_after}`",
        "",
        f"Build: {args.build}",
        "",
        f"Command: `{args.command}` (n {n} clips of a 120 s 320x180 video; `-j {args.jobs}` and `--encode-jobs 1`"
        f" per worker, `-j {4 * args.jobs} --encode-jobs 4` for the one process; `--cooldown {args.cooldown:g}s"
        f" --cooldown-max {2 * args.cooldown:g}s`; shards `--max-wait {args.max_wait:g}s`; run timeout"
        f" {args.run_timeout:g} s)",
        "",
        f"Egresses 127.0.0.2-4 are good; {BANNED} is banned by the test source for the whole case ({args.ban:g} s"
        f" ban, set off by the bench before the case with {MAX_REQUESTS + 1} watch-page requests; the good"
        f" egresses stay under {MAX_REQUESTS} requests). Each case has a fresh source, a fresh PostgreSQL schema"
        " and fresh output folders; pull and shards run four processes at once, one egress each.",
        "",
        c.table(["case", "done", "failed", "s to finish", "clips/min", "vs ideal",
                 f"requests into the ban ({BANNED} 429s)", "429s on the good egresses",
                 f"requests served to {BANNED}"], rows),
        "",
        "ideal = the same clips pulled by three workers on the good egresses only (what the unbanned egresses"
        " allow). s to finish: pull = the first worker to exit 0 (a worker exits 0 only when nothing in the"
        " fleet is pending or leased); shards and one process = the last process's exit, if every clip is done."
        " clips/min = done / (s to finish, or the last exit when it did not finish). Requests into the ban ="
        " the test source's `/_stats` `ips[].count_429` delta over the case.",
        "",
        *details,
        "",
    ])
