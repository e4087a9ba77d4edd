#!/usr/bin/env bash
# Installs what the tests need, then runs the whole test suite (unit, integration, end to end against the
# local test source with the real yt-dlp and ffmpeg).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi
