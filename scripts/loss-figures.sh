#!/usr/bin/env bash
# Loss figures with the real binaries on loopback: a stream at --fps 0 (as fast as acks allow)
# for SECONDS, with --simulate-loss on both programs (the client's data and the viewer's acks),
# at 0/1/5/10/20% and the default chunk size, for the test card at 640x480 and 1280x720 and
# for textured 1280x720 frames (the test card compresses to a few KiB; textured frames are
# the size of a real scene). Prints a Markdown table.
#   scripts/loss-figures.sh [SECONDS_PER_RUN]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked -p cam-client -p cam-viewer >&2
bin=target/release
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT

# One table row from the two summaries (the last stdout line of each program).
row() {
  python3 - "$@" <<'PY'
import json, sys
label, loss, cfile, vfile = sys.argv[1:5]
def summary(path):
    try:
        return json.loads(open(path).read().strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {}
c, v = summary(cfile), summary(vfile)
sent, done = c.get("frames_sent", 0), v.get("frames_completed", 0)
elapsed = c.get("elapsed_s", 0)
print("| %s | %s%% | %s | %s | %s | %s | %s | %s |" % (
    label, loss, sent or "-",
    "%.4f" % (done / sent) if sent else "-",
    "%.1f" % (done / elapsed) if elapsed else "-",
    c.get("retransmits", "-"), c.get("frames_timed_out", "-"),
    "%.1f" % (c.get("bytes_sent", 0) / sent / 1024) if sent else "-"))
PY
}

sources=("pattern 640x480" "pattern 1280x720")
if "$bin/cam-client" --help | grep -q texture; then
  sources+=("texture 1280x720")
else
  echo "loss-figures: this cam-client has no --source texture; textured rows skipped" >&2
fi

echo "| source | loss each way | frames sent | delivered | effective fps | retransmits | timed out | sent KiB/frame |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
port=28000
for spec in "${sources[@]}"; do
  read -r source size <<<"$spec"
  for loss in 0 1 5 10 20; do
    port=$((port + 1))
    "$bin/cam-viewer" --headless --port "$port" --simulate-loss "$loss" --simulate-seed 2 \
      > "$tmp/v.json" 2>"$tmp/v.err" &
    vpid=$!
    # Wait until the viewer listens rather than sleeping a guess.
    for _ in $(seq 100); do grep -q "waiting for a stream" "$tmp/v.err" && break; sleep 0.05; done
    "$bin/cam-client" "127.0.0.1:$port" --source "$source" --size "$size" --fps 0 \
      --duration "$secs" --simulate-loss "$loss" --simulate-seed 1 \
      > "$tmp/c.json" 2>"$tmp/c.err" || echo "loss-figures: client failed: $(tail -1 "$tmp/c.err")" >&2
    kill -TERM "$vpid"
    wait "$vpid" || true
    row "$source $size" "$loss" "$tmp/c.json" "$tmp/v.json"
  done
done
