#!/usr/bin/env bash
# camstream against GStreamer and the codec limit, in one run, on loopback: installs what it
# needs (scripts/setup.sh --bench), builds the release binaries, then scripts/bench.py measures
# and writes bench/latest.md, bench/latest.json and bench/latest.svg.
#   scripts/bench.sh [--seconds N] [--rounds N] [--sizes 640x480,1280x720,1920x1080] [--no-sweep] [--keep]
# About 10 minutes with the defaults. Timings depend on what else runs on the machine: the
# report says how loaded it was; ratios measured in the same run are what to compare.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --bench
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked -p cam-client -p cam-viewer --bins >&2
cargo build --release --locked -p cam-client --example texture_y4m --example codec_limit >&2
cargo build --release --locked -p cam-viewer --example relay >&2
exec python3 scripts/bench.py "$@"
