# kinetics-dl's extractor worker: yt-dlp's own command line, run again and again in one Python process.
#
# Embedded in kinetics-dl (src/tools/extractor.rs), which starts it with the Python that has yt-dlp:
# `python -c BOOT kinetics-dl-extractor`, the text in the environment variable KINETICS_DL_EXTRACTOR. One JSON object a
# line on stdin, one answer a line on stdout:
#   {"id": 1, "op": "ping"}
#       -> {"id": 1, "version": "2026.11.23", "python": "/usr/bin/python3", "module": ".../yt_dlp/__init__.py"}
#   {"id": 2, "op": "run", "argv": ["--ignore-config", ..., "--dump-json"], "url": "https://..."}
#       -> {"id": 2, "code": 0, "stdout": "<what yt-dlp printed>", "stderr": "<what it printed there>",
#           "requests": 1}
#   with "once": true (a whole-video download into a clip's own folder), no YoutubeDL is kept for the ARGV.
#   Before its answer, a run may send notes: {"throttled": true, "id": 2, "retry_after": 10} the moment one of
#   its HTTP requests is answered 429 (`retry_after`: the header's seconds, or null). The run's later requests
#   to that host are not sent: they fail with the same error, as the ban would answer them.
#   With "tell_sending": true, a note {"sending": true, "id": 2} goes before each HTTP request the run sends
#   (so that kinetics-dl counts it toward the rate its egress sends at when it goes, not before).
#   With "hold": PATH (the egress's hold: a file of one number, the Unix milliseconds its ban lasts to, kept
#   by kinetics-dl and by the egress's workers), a run sends no request while the hold lasts: each fails with
#   the 429 the ban would answer, unsent, and the answer says `"held": MS` (the hold's end), so that
#   kinetics-dl waits and asks again. A 429 pushes the hold at once, for the egress's other workers, to the
#   end of its Retry-After or, when it says none, "unsaid_ms" from now (until kinetics-dl's breaker hears of
#   the ban). "probe": true (the request that is to end the ban) is sent all the same.
# A `run` does what `yt-dlp ARGV -- URL` does: the options are read by yt-dlp's own parser into the same
# YoutubeDL parameters, `YoutubeDL.download` runs as the command line runs it, and what yt-dlp prints to
# stdout and stderr comes back as text, with the exit code the command would have had. A YoutubeDL is
# kept for each distinct ARGV (a worker serves one egress: its source address, proxy and cookies), so the
# import, the extractors and the cookie jar are loaded once. EOF on stdin ends the worker.
import io
import json
import os
import sys
import time
import traceback
import urllib.parse

# `python -c` puts the working directory first on sys.path: nothing there may pass for yt-dlp.
if sys.path and sys.path[0] in ("", os.getcwd()):
    del sys.path[0]
# A yt-dlp zipapp (the release's `yt-dlp` file) is importable as a path entry.
if os.environ.get("KINETICS_DL_YTDLP_ZIP"):
    sys.path.insert(0, os.environ["KINETICS_DL_YTDLP_ZIP"])
# The protocol owns the real stdout; anything else written to file descriptor 1 lands on stderr.
PROTOCOL = os.fdopen(os.dup(1), "w", encoding="utf-8", newline="\n")
os.dup2(2, 1)
REQUESTS = sys.stdin.buffer
sys.argv = ["yt-dlp"]


class Capture:
    """A text stream that keeps what is written, as yt-dlp's stdout or stderr for one run."""

    encoding = "utf-8"

    def __init__(self):
        self.parts = []

    def write(self, s):
        self.parts.append(s)
        return len(s)

    def flush(self):
        pass

    def isatty(self):
        return False

    def take(self):
        text = "".join(self.parts)
        self.parts = []
        return text


def reply(obj):
    PROTOCOL.write(json.dumps(obj, ensure_ascii=False) + "\n")
    PROTOCOL.flush()


def hold_end(path):
    """The Unix milliseconds the egress's hold at PATH lasts to (0: none)."""
    try:
        with open(path, encoding="ascii") as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def push_hold(path, end_ms):
    """The hold at PATH lasts to END_MS at least: a whole file put in place, never half written."""
    if end_ms <= hold_end(path):
        return
    tmp = f"{path}.{os.getpid()}"
    try:
        with open(tmp, "w", encoding="ascii") as f:
            f.write(str(end_ms))
        os.replace(tmp, path)
    except OSError:
        pass


def main():
    # Imported before stderr is captured: an import that fails says why on the worker's real stderr.
    import yt_dlp
    from yt_dlp.utils import DownloadError

    try:
        from yt_dlp.globals import IN_CLI, plugin_dirs
        from yt_dlp.plugins import load_all_plugins
    except ImportError:  # older yt-dlp: plugins load with the first YoutubeDL
        IN_CLI = plugin_dirs = load_all_plugins = None
    try:
        from yt_dlp.cookies import CookieLoadError
    except ImportError:
        CookieLoadError = DownloadError
    # Messages that differ between the command line and the API (hints naming options) read as the CLI's.
    if IN_CLI is not None:
        IN_CLI.value = True
    out, err = Capture(), Capture()
    sys.stdout, sys.stderr = out, err
    ydls = {}
    # Every HTTP request yt-dlp makes goes through YoutubeDL.urlopen: counted for each run, so that the
    # egress's pacing books what an extraction really asks of the host (the watch page and YouTube's player
    # request, or one page on a host that lists its formats there).
    sent = [0]
    # The request being served: a 429 met on its behalf is told at once, in a line of its own before the
    # answer, so that kinetics-dl holds the egress while yt-dlp is still failing its extraction (that takes
    # long enough for other clips' requests to go into the ban).
    serving = [None]
    # The 429 each host answered during the request being served: yt-dlp goes on after one (YouTube's watch
    # page is not fatal to it; the player requests of its other clients follow), but every later request to
    # that host would go into the same ban, so it gets the same error without being sent.
    banned = {}
    # The request being served: its egress's hold (a path, or None), whether it is the probe that is to end
    # the ban, the hold's end when a request was not sent for it, and whether each request sent is told.
    hold = {"path": None, "probe": False, "unsaid_ms": 0, "held": None, "tell": False}
    urlopen = yt_dlp.YoutubeDL.urlopen

    def unsent_429(url, end_ms):
        """The error a banned address is answered with, for a request not sent while its egress is held."""
        from yt_dlp.networking import Response
        from yt_dlp.networking.exceptions import HTTPError

        secs = max(1, -(-(end_ms - int(time.time() * 1000)) // 1000))
        headers = {"Retry-After": str(secs)}
        return HTTPError(Response(io.BytesIO(b""), url, headers, status=429, reason="Too Many Requests"))

    def counting_urlopen(self, req):
        url = req if isinstance(req, str) else getattr(req, "url", None) or ""
        host = urllib.parse.urlsplit(url).hostname if url else None
        if serving[0] is not None and host in banned:
            raise banned[host]
        if serving[0] is not None and hold["path"] and not hold["probe"]:
            end = hold_end(hold["path"])
            if end > time.time() * 1000:
                hold["held"] = max(end, hold["held"] or 0)
                raise unsent_429(url, end)
        sent[0] += 1
        if serving[0] is not None and hold["tell"]:
            reply({"sending": True, "id": serving[0]})
        try:
            return urlopen(self, req)
        except Exception as e:
            status = getattr(e, "status", None) or getattr(e, "code", None)
            if status == 429 and serving[0] is not None:
                if host:
                    banned[host] = e
                response = getattr(e, "response", None)
                headers = getattr(response, "headers", None) or getattr(e, "headers", None)
                value = str(headers.get("Retry-After") or "").strip() if headers is not None else ""
                retry_after = int(value) if value.isdigit() else None
                span = retry_after * 1000 if retry_after is not None else hold["unsaid_ms"]
                if span and hold["path"]:
                    push_hold(hold["path"], int(time.time() * 1000) + span)
                reply({"throttled": True, "id": serving[0], "retry_after": retry_after})
            raise

    yt_dlp.YoutubeDL.urlopen = counting_urlopen

    def run(argv, url, once):
        key = tuple(argv)
        ydl = None
        try:
            ydl = None if once else ydls.get(key)
            if ydl is None:
                _, opts, _, ydl_opts = yt_dlp.parse_options(list(argv))
                if plugin_dirs is not None:
                    plugin_dirs.value = opts.plugin_dirs
                    if plugin_dirs.value:
                        load_all_plugins()
                ydl = yt_dlp.YoutubeDL(ydl_opts)
                ydl.__enter__()
                if not once:
                    ydls[key] = ydl
            ydl._download_retcode = 0
            code = ydl.download([url])
            # The command line saves the cookie jar when it ends: so does every run here.
            if hasattr(ydl, "save_cookies"):
                ydl.save_cookies()
            return code
        except (DownloadError, CookieLoadError):
            return 1
        except SystemExit as e:
            if isinstance(e.code, int):
                return e.code
            if e.code is not None:
                print(e.code, file=sys.stderr)
            return 1
        except Exception:
            traceback.print_exc()
            return 1
        finally:
            # Arguments used once (a clip's own output folder) get no YoutubeDL kept for them: closing it
            # saves the cookies, as the command line does when it ends.
            if once and ydl is not None:
                try:
                    ydl.__exit__(None, None, None)
                except Exception:
                    traceback.print_exc()

    while True:
        line = REQUESTS.readline()
        if not line:
            break
        if not line.strip():
            continue
        req = json.loads(line)
        op = req.get("op")
        if op == "ping":
            reply({"id": req.get("id"), "version": yt_dlp.version.__version__, "python": sys.executable,
                   "module": yt_dlp.__file__})
        elif op == "run":
            sent[0] = 0
            serving[0] = req.get("id")
            hold.update(path=req.get("hold"), probe=bool(req.get("probe")), unsaid_ms=int(req.get("unsaid_ms") or 0),
                        held=None, tell=bool(req.get("tell_sending")))
            try:
                code = run(req["argv"], req["url"], bool(req.get("once")))
            finally:
                serving[0] = None
                banned.clear()
            answer = {"id": req.get("id"), "code": code, "stdout": out.take(), "stderr": err.take(),
                      "requests": sent[0]}
            if hold["held"] is not None:
                answer["held"] = hold["held"]
            reply(answer)
        else:
            reply({"id": req.get("id"), "error": f"unknown op {op!r}"})
    for ydl in ydls.values():
        try:
            ydl.__exit__(None, None, None)
        except Exception:
            pass


if __name__ == "__main__":
    main()
