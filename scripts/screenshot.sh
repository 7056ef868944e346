#!/usr/bin/env bash
# Takes the README's screenshots on a private Xvfb server: the viewer showing the test card
# (assets/screenshot.png), then the same with the on-screen display on (assets/screenshot-osd.png),
# with a message sent to the viewer's --msg-port so that its OSD line shows too.
# Needs the window-test tools (scripts/setup.sh --window-tests); installs ImageMagick for the
# XWD-to-PNG conversion if it is missing.
#   scripts/screenshot.sh
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in Xvfb xdotool xwd; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "screenshot: $tool is missing; run scripts/setup.sh --window-tests" >&2
    exit 1
  fi
done
if ! dpkg-query -W -f='${Status}' imagemagick 2>/dev/null | grep -q 'install ok installed'; then
  echo "screenshot: installing imagemagick (for convert)" >&2
  sudo_cmd=()
  if [ "$(id -u)" != 0 ]; then sudo_cmd=(sudo); fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends imagemagick >&2
fi

export PATH="$HOME/.cargo/bin:$PATH"
cargo build --quiet -p cam-client -p cam-viewer
bin=target/debug
port=${CAMSTREAM_PORT:-39999}
msg_port=${CAMSTREAM_MSG_PORT:-36666}
mkdir -p assets

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# Xvfb picks a free display itself and writes its number to fd 3.
Xvfb -displayfd 3 -screen 0 1280x1024x24 -nolisten tcp -noreset 3>"$work/display" 2>"$work/xvfb.log" &
pids+=($!)
for _ in $(seq 100); do
  [ -s "$work/display" ] && break
  sleep 0.1
done
if ! [ -s "$work/display" ]; then
  echo "screenshot: Xvfb did not start:" >&2
  cat "$work/xvfb.log" >&2
  exit 1
fi
export DISPLAY=":$(tr -d '[:space:]' <"$work/display")"

"$bin/cam-viewer" --port "$port" --msg-port "$msg_port" >"$work/viewer.out" 2>"$work/viewer.log" &
pids+=($!)
window=$(timeout 20 xdotool search --sync --onlyvisible --name '^cam-viewer' | head -n 1)
"$bin/cam-client" "127.0.0.1:$port" --source pattern --size 640x480 --fps 30 \
  >"$work/client.out" 2>"$work/client.log" &
pids+=($!)

wait_for_title() {
  for _ in $(seq 200); do
    if xdotool getwindowname "$window" | grep -q "$1"; then return 0; fi
    sleep 0.1
  done
  echo "screenshot: the title never showed '$1'; viewer log:" >&2
  cat "$work/viewer.log" >&2
  exit 1
}
shoot() {
  xwd -silent -nobdrs -id "$window" >"$work/shot.xwd"
  convert "xwd:$work/shot.xwd" "$1"
  echo "screenshot: wrote $1" >&2
}

wait_for_title 640x480
sleep 1
shoot assets/screenshot.png

if "$bin/cam-client" --help | grep -q -- --send-msg; then
  "$bin/cam-client" "127.0.0.1:$msg_port" --send-msg '[0,0,0,1]' >/dev/null 2>&1 ||
    echo "screenshot: the message was not answered; the OSD will show none" >&2
fi
xdotool key --window "$window" i 2>/dev/null
# The rates average over a second; let them settle.
sleep 2
shoot assets/screenshot-osd.png

xdotool key --window "$window" q 2>/dev/null || true
