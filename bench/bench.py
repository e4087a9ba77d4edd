#!/usr/bin/env python3
"""Benchmarks of kinetics-dl against the local test source (Python 3.11 standard library only).

    python3 bench/bench.py clips    [--n 8] [--jobs 4] [--bandwidth 20000000]
    python3 bench/bench.py throttle [--n 20]
    python3 bench/bench.py fleet    [--n 24]
    python3 bench/bench.py audio    [--n 8] [--jobs 4]

Both print a Markdown report and write it into bench/RESULTS.md (each benchmark owns its section). Build
first: `cargo build --release --bins`. See bench/README.md for what is measured and how.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ inside the repository
sys.path.insert(0, str(Path(__file__).resolve().parent))

import audio  # noqa: E402
import clips  # noqa: E402
import common  # noqa: E402
import fleet  # noqa: E402
import throttle  # noqa: E402


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin-dir", type=Path, default=common.REPO / "target" / "release",
                   help="where kinetics-dl and kinetics-testsrc are (default: target/release)")
    p.add_argument("--work", type=Path, help="scratch directory (default: a new temp dir)")
    p.add_argument("--keep", action="store_true", help="keep outputs and journals in the scratch directory")
    p.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    p.add_argument("--section", help="RESULTS.md section to replace (default: the benchmark's name)")
    sub = p.add_subparsers(dest="bench", required=True)

    c = sub.add_parser("clips", help="bytes/time/CPU per clip: kinetics-dl vs whole video vs naive sections")
    c.add_argument("--n", type=int, default=8, help="clips per run (default 8)")
    c.add_argument("--jobs", type=int, default=4, help="clips at once, for every approach (default 4)")
    c.add_argument("--bandwidth", type=int, default=20_000_000, help="test source cap, bytes/s (default 20 MB/s)")
    c.add_argument("--profiles", default="short,long", help="comma-separated: short, long, short-bf (default: short,long)")
    c.add_argument("--approaches", default="a,a18,b,c",
                   help="a = kinetics-dl --trim exact (default format choice: DASH video + audio), a18 = the same "
                        "on the progressive itag 18, a1 = a with --request-size 1MiB, as / as18 = a / a18 with "
                        "--trim smart (the default trim), ad = no --trim (each build's default), "
                        "b = seed whole video, "
                        "c = naive --download-sections (default a,a18,b,c)")
    c.add_argument("--baseline-bin-dir", type=Path,
                   help="another build's kinetics-dl (a directory holding it): each kinetics-dl approach X also runs "
                        "with it, as X@base, just before X on the same clips, and a table sets the two side by side")
    c.add_argument("--naive-timeout", type=float, default=60, help="per-clip timeout of (c), seconds (default 60)")
    c.add_argument("--seed-timeout", type=float, default=600, help="per-process timeout of (b), seconds")
    c.add_argument("--run-timeout", type=float, default=900, help="timeout of one kinetics-dl run, seconds")

    t = sub.add_parser("throttle", help="per-IP 429 bans: 1 vs 3 egresses, breaker vs --no-breaker; "
                                         "--case budget: a per-request budget, learned rate vs --no-breaker")
    t.add_argument("--case", choices=["egresses", "budget"], default="egresses",
                   help="egresses (default): 1 and 3 egresses, breaker and --no-breaker; budget: 3 egresses "
                        "against a per-IP request budget that extends a ban that is hit (issue 14)")
    t.add_argument("--n", type=int, help="clips per run (default 20; budget: 30)")
    t.add_argument("--max-requests", type=int,
                   help="B: requests allowed per window per IP (default 24: ~2.7 clips at ~9 requests a clip; "
                        "budget: 12)")
    t.add_argument("--window", type=float, help="W: the sliding window, seconds (default 10; budget: 30)")
    t.add_argument("--ban", type=float, help="ban length, seconds; also --cooldown (default 10; budget: 20)")
    t.add_argument("--bandwidth", type=int, default=20_000_000, help="test source cap, bytes/s (default 20 MB/s)")
    t.add_argument("--run-timeout", type=float, default=300, help="upper bound of one run, seconds (default 300)")

    f = sub.add_parser("fleet", help="4 workers, one egress banned: pull (PostgreSQL) vs --shard i/4 vs one process")
    f.add_argument("--n", type=int, default=24, help="clips per case (default 24)")
    f.add_argument("--jobs", type=int, default=2, help="-j per worker; the one process gets 4x (default 2)")
    f.add_argument("--db", help="PostgreSQL URL (default: what scripts/test-pg.sh prints)")
    f.add_argument("--ban", type=float, default=3600, help="ban of the banned egress, seconds (default 3600)")
    f.add_argument("--cooldown", type=float, default=30, help="--cooldown, seconds; --cooldown-max is twice it")
    f.add_argument("--max-wait", type=float, default=20, help="--max-wait of the shards, seconds (default 20)")
    f.add_argument("--bandwidth", type=int, default=20_000_000, help="test source cap, bytes/s (default 20 MB/s)")
    f.add_argument("--run-timeout", type=float, default=300, help="upper bound of one case, seconds (default 300)")
    a = sub.add_parser("audio", help="AudioSet rows as audio only and as video: bytes and CPU per clip")
    a.add_argument("--n", type=int, default=8, help="AudioSet rows (default 8)")
    a.add_argument("--jobs", type=int, default=4, help="-j of both runs (default 4)")
    a.add_argument("--bandwidth", type=int, default=20_000_000, help="test source cap, bytes/s (default 20 MB/s)")
    a.add_argument("--cases", default="audio,video", help="comma-separated: audio, video (default both)")
    a.add_argument("--run-timeout", type=float, default=900, help="timeout of one kinetics-dl run, seconds")
    args = p.parse_args(argv)
    args.command = shlex.join(["python3", "bench/bench.py", *argv])
    if args.bench == "throttle":
        budget = args.case == "budget"
        defaults = {"n": 30 if budget else 20, "max_requests": 12 if budget else 24,
                    "window": 30.0 if budget else 10.0, "ban": 20.0 if budget else 10.0}
        for name, value in defaults.items():
            if getattr(args, name) is None:
                setattr(args, name, value)
        args.extend_ban = budget
    if args.bench == "clips":
        args.profiles = [x for x in args.profiles.split(",") if x]
        args.approaches = [x for x in args.approaches.split(",") if x]
        bad = [x for x in args.profiles if x not in clips.PROFILES] + \
              [x for x in args.approaches if x not in clips.APPROACHES]
        if args.baseline_bin_dir and not bad:
            args.approaches = [y for x in args.approaches
                               for y in ([clips.baseline(x), x] if x in clips.KDL else [x])]
        if bad or args.n < 1 or args.jobs < 1:
            p.error(f"bad --profiles/--approaches/--n/--jobs: {bad}")
    elif args.bench == "audio":
        args.cases = [x for x in args.cases.split(",") if x]
        bad = [x for x in args.cases if x not in audio.CASES]
        if bad or not args.cases or args.n < 1 or args.jobs < 1:
            p.error(f"bad --cases/--n/--jobs: {bad}")
    elif args.n < 1:
        p.error("--n must be positive")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix=f"kinetics-bench-{args.bench}-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"==> scratch directory {work}", flush=True)
    kdl, src, args.build = common.binaries(args.bin_dir, work)
    print(f"==> {args.build}", flush=True)
    if args.bench == "clips":
        if args.baseline_bin_dir:
            base = args.baseline_bin_dir / "kinetics-dl"
            if not os.access(base, os.X_OK):
                raise SystemExit(f"{base} is missing")
            (work / "bin-base").mkdir(parents=True, exist_ok=True)
            args.baseline_kdl = work / "bin-base" / "kinetics-dl"
            shutil.copy2(base, args.baseline_kdl)
            args.build += "; baseline " + common.describe(args.baseline_kdl)
        bench = clips.Bench(args, kdl, src, work)
        results = bench.run()
        text = clips.report(results, args, (bench.load_before, bench.load_after))
        section = "clips"
    elif args.bench == "audio":
        bench = audio.Bench(args, kdl, src, work)
        results = bench.run()
        text = audio.report(results, args, bench)
        section = "audio"
    elif args.bench == "fleet":
        bench = fleet.Bench(args, kdl, src, work)
        cases = bench.run()
        text = fleet.report(cases, args, len(bench.clips), bench)
        section = "fleet"
    elif args.case == "budget":
        bench = throttle.Bench(args, kdl, src, work)
        calib, r, runs = bench.run_budget()
        text = throttle.report_budget(calib, r, runs, args, len(bench.clips), (bench.load_before, bench.load_after))
        section = "throttle-budget"
    else:
        bench = throttle.Bench(args, kdl, src, work)
        calib, r, runs = bench.run()
        text = throttle.report(calib, r, runs, args, len(bench.clips), (bench.load_before, bench.load_after))
        section = "throttle"
    print()
    print(text)
    if not args.no_write:
        common.write_section(args.section or section, text)
        print(f"==> written to {common.RESULTS}")
    if not args.keep and args.work is None:

        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
