# A yt-dlp extractor plugin for kinetics-dl's tests (tests/extractor.rs): YouTube's refusals, raised by
# yt-dlp's own code, for videos of the local test source.
#
# On PYTHONPATH, yt-dlp loads it as it loads any plugin, both as the `yt-dlp` command and in kinetics-dl's
# API workers. It takes URLs `http://127.x.x.x:PORT/scripted/{id}`. KDL_SCRIPTED_DIR holds `script.json`
# (id -> action) and gets a line `PID ID SOURCE_ADDRESS` in `log` for every extraction. The actions:
# - `{"reason": R, "subreason": S, "countries": [..]}`: the playability status YouTube answers with, read
#   by the same steps as yt-dlp's YouTube extractor (extractor/youtube/_video.py, "if not formats"):
#   a geo block raises GeoRestrictedError, a reason asking to sign in gets YouTube's login hint, and the
#   reason is raised with raise_no_formats (`"drm": true`: yt-dlp's report_drm). With `"once": true`, only the first extraction of the id;
#   with `"after": N`, not the id's first N extractions (a refusal on the whole-video download after the extraction).
# - `"hang_once"`: the first extraction of the id sleeps (a hung extractor); `"crash_once"`: the first
#   extraction ends the process at once (a crashed one).
# - `{"slow": S}`: every extraction of the id takes S seconds more (a slow extractor), then goes on as below.
# - `{"page_first": S}`: every extraction of the id asks for its watch page, takes S seconds more, then goes on
#   as below (which asks for it again): two requests S seconds apart, as YouTube's extraction asks for its
#   watch page and then its player.
# - `{"ban_first": S, "again": K}`: the run's first extraction of any id with this action asks for its watch page
#   until the test source bans the address (an answer 429 with Retry-After), writes its id to `banned`, asks K
#   times more (as yt-dlp's YouTube extractor goes on to its player requests after a 429 on the watch page),
#   then takes S seconds more before it fails with that error (a yt-dlp that is slow to give up). With
#   `"with": N`, it first waits (up to 30 s) until N other extractions have begun (logged), so that they are
#   in their workers' hands when the ban begins. Every other extraction with it first waits (up to 30 s) for
#   `banned`, so that none was sent before the ban, then goes on as below.
# - anything else (or no entry): the id's watch page on the test source, read by yt-dlp's generic extractor.
import json
import os
import time

from yt_dlp.extractor.common import InfoExtractor
from yt_dlp.extractor.youtube._base import YoutubeBaseInfoExtractor
from yt_dlp.utils import ExtractorError, clean_html, remove_end


class KdlScriptedIE(InfoExtractor):
    IE_NAME = 'kdl:scripted'
    _VALID_URL = r'(?P<base>https?://127\.\d+\.\d+\.\d+:\d+)/scripted/(?P<id>[A-Za-z0-9_-]{11})'
    _COOKIE_HOWTO_WIKI_URL = YoutubeBaseInfoExtractor._COOKIE_HOWTO_WIKI_URL

    def _first_time(self, state, video_id):
        try:
            os.mkdir(os.path.join(state, f'done-{video_id}'))
            return True
        except FileExistsError:
            return False

    def _real_extract(self, url):
        base, video_id = self._match_valid_url(url).group('base', 'id')
        state = os.environ['KDL_SCRIPTED_DIR']
        with open(os.path.join(state, 'log'), 'a') as log:
            log.write(f'{os.getpid()} {video_id} {self.get_param("source_address") or "-"}\n')
        with open(os.path.join(state, 'log')) as log:
            earlier = sum(1 for line in log if line.split(' ')[1:2] == [video_id]) - 1
        with open(os.path.join(state, 'script.json')) as f:
            action = json.load(f).get(video_id)
        if action == 'hang_once' and self._first_time(state, video_id):
            time.sleep(600)
        if action == 'crash_once' and self._first_time(state, video_id):
            os._exit(3)
        if isinstance(action, dict) and 'ban_first' in action:
            banned = os.path.join(state, 'banned')
            if self._first_time(state, 'ban-first'):
                deadline = time.time() + 30
                while time.time() < deadline:
                    with open(os.path.join(state, 'log')) as log:
                        if sum(1 for _ in log) > action.get('with', 0):
                            break
                    time.sleep(0.02)
                for _ in range(1000):
                    try:
                        self._request_webpage(f'{base}/watch?v={video_id}', video_id, note=False).close()
                    except ExtractorError as e:
                        if getattr(e.cause, 'status', None) == 429:
                            with open(banned + '.tmp', 'w') as f:
                                f.write(video_id)
                            os.rename(banned + '.tmp', banned)
                            for _ in range(action.get('again', 0)):
                                try:
                                    self._request_webpage(f'{base}/watch?v={video_id}', video_id, note=False).close()
                                except ExtractorError:
                                    pass
                            time.sleep(action['ban_first'])
                        raise
            deadline = time.time() + 30
            while not os.path.exists(banned) and time.time() < deadline:
                time.sleep(0.02)
            action = None
        if isinstance(action, dict) and 'slow' in action:
            time.sleep(action['slow'])
            action = None
        if isinstance(action, dict) and 'page_first' in action:
            self._request_webpage(f'{base}/watch?v={video_id}', video_id, note=False).close()
            time.sleep(action['page_first'])
            action = None
        if isinstance(action, dict) and earlier < action.get('after', 0):
            action = None
        if isinstance(action, dict) and (not action.get('once') or self._first_time(state, video_id)):
            if action.get('drm'):
                self.report_drm(video_id)
            reason, subreason = action.get('reason', ''), clean_html(action.get('subreason'))
            if subreason:
                if subreason.startswith('The uploader has not made this video available in your country'):
                    self.raise_geo_restricted(subreason, action.get('countries'), metadata_available=True)
                if subreason != reason:
                    reason += f'. {subreason}'
            if 'sign in' in reason.lower():
                reason = remove_end(reason, 'This helps protect our community. Learn more')
                hint = YoutubeBaseInfoExtractor._youtube_login_hint.fget(self)
                reason = f'{remove_end(reason.strip(), ".")}. {hint}'
            elif action.get('captcha'):
                reason += '. YouTube is requiring a captcha challenge before playback'
            self.raise_no_formats(reason, expected=True)
        return self.url_result(f'{base}/watch?v={video_id}', 'Generic')
