#!/usr/bin/env bash
# Installs what camstream needs on Debian 12, and only what is missing. Safe to run again.
# Usage: scripts/setup.sh [--window-tests] [--bench]
#   --window-tests: also what scripts/test.sh needs (Xvfb, xdotool, ffmpeg, curl, nginx, chromium)
set -euo pipefail

want_window_tests=0
want_bench=0
for arg in "$@"; do
  case "$arg" in
    --window-tests) want_window_tests=1 ;;
    --bench) want_bench=1 ;;
    *) echo "setup.sh: unknown option '$arg' (use --window-tests or --bench)" >&2; exit 2 ;;
  esac
done

# build: C toolchain, cmake + nasm for libjpeg-turbo, libclang for nokhwa's V4L2 bindings.
# window: the X11 client libraries minifb loads at run time.
packages=(build-essential cmake nasm libclang-dev pkg-config libx11-6 libxcursor1 libxrandr2 libxi6)
if [ "$want_window_tests" = 1 ]; then
  # Xvfb, xdotool and xwd drive and look at the window; ffprobe (ffmpeg) checks --record files.
  # The --http tests' real peers: curl fetches /snapshot, nginx relays /stream, headless
  # chromium screenshots the page. The RTP tests' real peers: GStreamer (rtpjpegpay,
  # rtpjpegdepay, jpegenc: plugins-good; videotestsrc: plugins-base) and ffmpeg.
  packages+=(python3 xvfb x11-apps xdotool ffmpeg curl nginx-light chromium
             gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good)
fi
if [ "$want_bench" = 1 ]; then
  # python3 runs scripts/bench.py; perf profiles (bench/ANALYSIS.md).
  # tjbench (libjpeg-turbo-progs): the codec limit, measured by libjpeg-turbo's own benchmark.
  packages+=(gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good ffmpeg python3 linux-perf libjpeg-turbo-progs)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  sudo_cmd=()
  if [ "$(id -u)" != 0 ]; then sudo_cmd=(sudo); fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
else
  echo "setup: system packages present" >&2
fi

if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: installing Rust with rustup" >&2
  if ! command -v curl >/dev/null 2>&1; then
    "${sudo_cmd[@]}" apt-get install -y -qq curl >&2
  fi
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c rustfmt,clippy >&2
  export PATH="$HOME/.cargo/bin:$PATH"
fi
for comp in rustfmt clippy; do
  if ! cargo "${comp/rustfmt/fmt}" --version >/dev/null 2>&1; then
    rustup component add "$comp" >&2
  fi
done
echo "setup: ready ($(cargo --version))" >&2
