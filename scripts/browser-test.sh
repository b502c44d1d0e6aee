#!/usr/bin/env bash
# The access console in a real browser: headless Chromium (Debian's package) logs in through the
# simulated DingTalk as an employee, an approver and an admin, and screenshots their pages on a
# desktop and a phone. The bot and the simulators come from `accessbot demo --stay` (the
# scenario leaves orders in every state behind); each screenshot is one fresh browser that
# follows the demo's login link: sandbox "logged in to DingTalk as X" → /console/login?via=qr →
# the authorize page → /console/auth/callback → the page. A page that did not end logged in
# fails the run (its text is dumped and checked).
#
# usage: scripts/browser-test.sh [out-dir]   (default target/browser); installs chromium if missing.
#        scripts/browser-test.sh --install    only installs what it needs (CI runs this in the
#                                             background while it compiles).
set -euo pipefail
cd "$(dirname "$0")/.."

install_browser() {
  local want=()
  command -v chromium >/dev/null 2>&1 || want+=(chromium chromium-driver)
  # Without a CJK font every Chinese word is a box in the screenshots.
  fc-list :lang=zh 2>/dev/null | grep -q . || want+=(fonts-wqy-zenhei)
  [ ${#want[@]} -eq 0 ] && return 0
  echo "browser-test: installing ${want[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${want[@]}" >/dev/null
}

if [ "${1:-}" = "--install" ]; then
  install_browser
  exit 0
fi
OUT=${1:-target/browser}
mkdir -p "$OUT"
install_browser

# ACCESSBOT_BIN: a binary already built from this tree (CI passes the one `cargo test` built).
if [ -n "${ACCESSBOT_BIN:-}" ]; then
  BIN=$ACCESSBOT_BIN
else
  cargo build --quiet --bin accessbot
  BIN=${CARGO_TARGET_DIR:-target}/debug/accessbot
fi
LOG="$OUT/demo.log"
"$BIN" demo --stay >"$LOG" 2>&1 &
DEMO=$!
trap 'kill "$DEMO" 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
  grep -q "CONSOLE_LOGIN zhaoliu" "$LOG" && break
  if ! kill -0 "$DEMO" 2>/dev/null; then cat "$LOG"; echo "browser-test: the demo ended early"; exit 1; fi
  sleep 0.2
done
grep -q "CONSOLE_LOGIN zhaoliu" "$LOG" || { cat "$LOG"; echo "browser-test: no console links"; exit 1; }

link() { grep "CONSOLE_LOGIN $1 " "$LOG" | awk '{print $3}'; }
CHROME=(chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --hide-scrollbars
        --virtual-time-budget=5000 --lang=zh-CN --accept-lang=zh-CN)

# shot <user> <page> <width,height> <name>: a fresh profile, the login link aimed at <page>.
shot() {
  local user=$1 page=$2 size=$3 name=$4 url profile
  url=$(link "$user" | sed "s/%2Fconsole%2Fnow\$/$(printf '%s' "$page" | sed 's|/|%2F|g; s|?|%3F|g; s|=|%3D|g; s|&|%26|g')/")
  profile=$(mktemp -d)
  "${CHROME[@]}" --user-data-dir="$profile" --window-size="$size" --screenshot="$OUT/$name.png" "$url" >/dev/null 2>&1
  # The page's text, from the same login, to check it is the page and not the login form.
  local dom
  dom=$("${CHROME[@]}" --user-data-dir="$(mktemp -d)" --dump-dom "$url" 2>/dev/null)
  rm -rf "$profile"
  if ! grep -q 'action="/console/logout"' <<<"$dom"; then
    echo "browser-test: $name did not end logged in"; echo "$dom" | head -40; exit 1
  fi
  [ -s "$OUT/$name.png" ] || { echo "browser-test: no screenshot $name"; exit 1; }
  echo "browser-test: $name.png ($user, $page)"
}

shot zhangsan /console/now         1280,900 employee-now
shot zhangsan /console/history     1280,900 employee-history
shot lisi     /console/pending     1280,900 approver-pending
shot lisi     /console/history     390,844  approver-history-phone
shot zhaoliu  /console/history     1280,900 admin-history
shot zhaoliu  "/console/now?lang=en" 1280,900 admin-now-en
shot zhaoliu  /console/history     390,844  admin-history-phone
ORDER=$(grep -o 'R[0-9]\{6\}-[0-9]\{3\}' "$LOG" | head -1 || true)
if [ -n "$ORDER" ]; then shot zhaoliu "/console/orders/$ORDER" 1280,900 admin-order; fi
echo "browser-test: screenshots in $OUT"
