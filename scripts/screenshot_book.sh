#!/usr/bin/env bash
# Look at the built book as a reader would: serve book/_build/html on localhost, open chapters in
# headless Chromium (no network needed: MathJax is served from the book's own _static/mathjax) and
# write full-page PNGs to book/_build/screenshots/.
#
# Usage: scripts/screenshot_book.sh [HTML_DIR] [PAGE ...]
#   HTML_DIR defaults to book/_build/html; PAGEs (paths relative to it, without .html) default to
#   chapters 4 and 8. Needs chromium (as root: apt-get update && apt-get install -y chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
html_dir="${1:-book/_build/html}"
shift || true
pages=("$@")
if [ ${#pages[@]} -eq 0 ]; then
    pages=(notebooks/04_metropolis_hastings notebooks/08_sentences_from_keywords)
fi
browser="$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)"
if [ -z "$browser" ]; then
    echo "screenshot_book.sh: no chromium found (apt-get install -y chromium)" >&2
    exit 1
fi
out_dir="book/_build/screenshots"
mkdir -p "$out_dir"
port="${SCREENSHOT_PORT:-8765}"
python3 -m http.server "$port" --bind 127.0.0.1 --directory "$html_dir" >/dev/null 2>&1 &
server_pid=$!
profile="$(mktemp -d)"
trap 'kill "$server_pid" 2>/dev/null || true; rm -rf "$profile"' EXIT
sleep 1
for page in "${pages[@]}"; do
    png="$out_dir/$(basename "$page").png"
    # The virtual-time budget lets MathJax typeset and the images load before the capture.
    "$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --user-data-dir="$profile" --hide-scrollbars --virtual-time-budget=15000 \
        --window-size=1280,"${SCREENSHOT_HEIGHT:-2400}" --screenshot="$png" "http://127.0.0.1:$port/$page.html" 2>/dev/null
    echo "wrote $png"
done
