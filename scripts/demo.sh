#!/usr/bin/env bash
# Installs what kinetics-dl needs, builds it, and runs the main job on the built-in demo: 24 real
# Kinetics-400 validation rows, fetched from the local test source (which stands in for YouTube, since this
# demo must work offline), cut, verified and summarised. Clips land in ./demo-out (or $OUT).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
cargo build --release --bins
OUT=${OUT:-demo-out}
log=$(mktemp)
target/release/kinetics-testsrc --listen 127.0.0.1:0 --config demo/testsrc.json --exit-on-stdin-eof \
  < <(sleep 86400) >"$log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 1 600); do
  grep -q '^listening on ' "$log" && break
  kill -0 $server 2>/dev/null || { cat "$log" >&2; exit 1; }
  sleep 0.2
done
url=$(sed -n 's/^listening on //p' "$log" | head -n1)
[ -n "$url" ] || { echo "the test source did not start" >&2; cat "$log" >&2; exit 1; }
echo "==> local test source at $url (synthetic 640x360 videos; one id answers 404, one a page without video, one a 503 first, one ignores Range)" >&2
set +e
target/release/kinetics-dl download --annotations demo/k400_validate_sample.csv --out "$OUT" \
  --url-template "$url/watch?v={youtube_id}" --retry-delay 1s
code=$?
set -e
echo >&2
target/release/kinetics-dl status --out "$OUT"
echo "==> clips:" >&2
find "$OUT" -name '*.mp4' -not -path '*/.kinetics-dl/*' | sort | head -n 30
echo "==> exit code of the download: $code (0: every clip done or permanently failed)" >&2
exit $code
