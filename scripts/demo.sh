#!/usr/bin/env bash
# Streams on localhost: a viewer window and a client (the webcam if there is one, else the
# test card). Ctrl-C stops both.
#   scripts/demo.sh            clean link
#   scripts/demo.sh --lossy    10% simulated loss each way: the picture stays clean
#   scripts/demo.sh --remote   a 100 ms round trip through a 10 Mbit/s bottleneck, 720p
#                              textured frames: the client fits quality and size to the link
# Extra arguments after -- go to cam-client, e.g. scripts/demo.sh -- --size 1280x720
set -euo pipefail
cd "$(dirname "$0")/.."

sim=()
remote_client=()
client_extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --lossy) sim=(--simulate-loss 10 --simulate-seed 7); shift ;;
    --remote)
      # Delay on both sides makes the round trip; the rate limit applies to the video.
      sim=(--simulate-delay 50)
      remote_client=(--simulate-rate 10000 --simulate-queue-ms 100 --source texture --size 1280x720)
      shift ;;
    --) shift; client_extra=("$@"); break ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "demo.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
  esac
done

bash scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked -p cam-client -p cam-viewer
bin=target/release
port=${CAMSTREAM_PORT:-9999}

viewer_args=(--port "$port" "${sim[@]}")
if [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ]; then
  echo "demo: no DISPLAY, so the viewer runs --headless (set DISPLAY to see the window)" >&2
  viewer_args+=(--headless)
fi
if [ "${#remote_client[@]}" -gt 0 ]; then
  source_args=()
elif compgen -G "/dev/video*" >/dev/null; then
  source_args=(--source camera:0)
else
  echo "demo: no camera found, streaming the test card" >&2
  source_args=(--source pattern)
fi

pids=()
cleanup() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

"$bin/cam-viewer" "${viewer_args[@]}" &
pids+=($!)
sleep 0.3
"$bin/cam-client" "127.0.0.1:$port" "${source_args[@]}" "${sim[@]}" "${remote_client[@]}" "${client_extra[@]}" &
pids+=($!)
echo "demo: streaming to 127.0.0.1:$port; close the window or press Ctrl-C to stop" >&2
# Whichever ends first (window closed, or the client failed) ends the demo.
wait -n "${pids[@]}" || true
