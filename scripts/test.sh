#!/usr/bin/env bash
# Installs what the tests need, then runs the whole test suite (unit, integration, end to end against the
# local test source with the real yt-dlp and ffmpeg).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
# The fleet tests read KDL_TEST_PG: a running server, or a throwaway cluster started here. Without one they
# print SKIPPED, or fail under CI=true / KINETICS_DL_REQUIRE_TEST_TOOLS=1.
if url="$(scripts/test-pg.sh)"; then
  export KDL_TEST_PG="$url"
else
  echo "==> no PostgreSQL for the fleet tests" >&2
fi
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi
