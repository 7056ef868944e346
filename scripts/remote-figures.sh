#!/usr/bin/env bash
# Remote-link figures with the real binaries: textured 720p at 30 fps through the relay
# example (delay each way, a bottleneck with a 100 ms drop-tail queue), for three round
# trips and three bottleneck rates. Prints a Markdown table.
#   scripts/remote-figures.sh [SECONDS_PER_RUN]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-12}
bash scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked -p cam-client -p cam-viewer >&2
cargo build --release --locked -p cam-viewer --example relay >&2
bin=target/release
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT

field() { python3 -c "import json,sys; v=json.loads(open(sys.argv[1]).read().strip().splitlines()[-1]).get(sys.argv[2]); print('-' if v is None else v)" "$1" "$2"; }

echo "| RTT | bottleneck | delivered fps | latency p50 | latency p99 | settled on | target |"
echo "|---:|---:|---:|---:|---:|---|---:|"
port=27000
for rtt in 50 100 200; do
  for rate in 5000 10000 20000; do
    port=$((port + 2))
    "$bin/cam-viewer" --headless --port "$port" --duration $((secs + 2)) > "$tmp/v.json" 2>"$tmp/v.err" &
    vpid=$!
    "$bin/examples/relay" $((port + 1)) "$port" $((rtt / 2)) "$rate" 100 2>"$tmp/r.err" &
    rpid=$!
    sleep 0.3
    "$bin/cam-client" "127.0.0.1:$((port + 1))" --source texture --size 1280x720 --fps 30 \
      --duration "$secs" > "$tmp/c.json" 2>"$tmp/c.err" || true
    wait "$vpid" || true
    kill "$rpid" 2>/dev/null || true
    wait "$rpid" 2>/dev/null || true
    printf "| %s ms | %s Mbit/s | %s | %s ms | %s ms | q%s %sx%s | %s kbit/s |\n" \
      "$rtt" "$((rate / 1000))" "$(field "$tmp/v.json" fps)" \
      "$(field "$tmp/v.json" latency_p50_ms)" "$(field "$tmp/v.json" latency_p99_ms)" \
      "$(field "$tmp/c.json" quality)" "$(field "$tmp/c.json" width)" "$(field "$tmp/c.json" height)" \
      "$(field "$tmp/c.json" target_kbps)"
  done
done
