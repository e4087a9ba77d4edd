#!/usr/bin/env bash
# Installs what kinetics-dl needs on a Debian/Ubuntu machine: a C toolchain, ffmpeg, Python with yt-dlp, and
# Rust (only when cargo is missing). With --test it also installs what the test suite uses: cargo-nextest,
# Chromium (the report page is rendered in it), the Python webdataset package and PostgreSQL (the fleet
# tests; scripts/test-pg.sh starts a throwaway cluster). Safe to run again.
set -euo pipefail

want_test=0
[ "${1:-}" = "--test" ] && want_test=1
have() { command -v "$1" >/dev/null 2>&1; }
say() { printf '==> %s\n' "$*" >&2; }

apt_pkgs=()
have ffmpeg || apt_pkgs+=(ffmpeg)
have cc || apt_pkgs+=(build-essential)
have python3 || apt_pkgs+=(python3 python3-pip python3-venv)
have curl || apt_pkgs+=(curl ca-certificates)
have pkg-config || apt_pkgs+=(pkg-config)
if [ "$want_test" = 1 ]; then
  have chromium || apt_pkgs+=(chromium)
  # The fleet tests run against a throwaway PostgreSQL cluster (scripts/test-pg.sh starts it).
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || apt_pkgs+=(postgresql)
fi
if [ "${#apt_pkgs[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && have apt-get; then
    say "installing ${apt_pkgs[*]} with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${apt_pkgs[@]}" >/dev/null
  else
    say "missing: ${apt_pkgs[*]} (run as root on Debian/Ubuntu, or install them yourself)"
  fi
fi

if ! have cargo; then
  [ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
fi
if ! have cargo; then
  say "installing Rust with rustup"
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c clippy,rustfmt
  . "$HOME/.cargo/env"
fi

pip_install() {
  python3 -m pip install -q --disable-pip-version-check "$@" 2>/dev/null \
    || python3 -m pip install -q --disable-pip-version-check --break-system-packages "$@"
}
if ! have yt-dlp; then
  say "installing yt-dlp (with its default extras) from PyPI"
  pip_install "yt-dlp[default]"
fi
if [ "$want_test" = 1 ]; then
  python3 -c 'import webdataset' 2>/dev/null || { say "installing webdataset from PyPI"; pip_install webdataset; }
  if ! cargo nextest --version >/dev/null 2>&1; then
    say "installing cargo-nextest"
    cargo install --locked cargo-nextest || say "cargo-nextest unavailable: tests will run with cargo test"
  fi
fi
say "ready: $(yt-dlp --version 2>/dev/null || echo 'yt-dlp ?'), $(ffmpeg -version 2>/dev/null | head -n1 | cut -d' ' -f1-3)"
