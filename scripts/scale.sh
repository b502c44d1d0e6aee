#!/usr/bin/env bash
# Scale script: seeds the simulated JumpServer with a large org (default 10k users, 50k hosts,
# 10k permissions, 200k relation rows), runs the release bot as a child process, has the admin
# send /sync over the simulated DingTalk, and prints the sync's wall time, the JumpServer calls
# the simulator counted, the bot's RSS before, at peak (VmHWM) and 3 s after, and how long DingTalk
# event pushes sent every 20 ms during the sync waited for their acknowledgement (p50/p99/max, the
# slowest per 5 s), then asks /who-has of one host and one user from the new index.
#
#   scripts/scale.sh                          the issue-11 size, unpaced, the default 8 MiB sled cache
#   scripts/scale.sh --hosts 5000 --relations 20000     any `accessbot scale` option
#   scripts/scale.sh --sync-requests-per-minute 120     with the production pacing
#   RUNS=5 scripts/scale.sh                   five runs, then the range of the peaks
#
# The machine's load is printed with the figures (other jobs share its cores). The peak moves
# by tens of MB between runs of the same build: judge the memory goal on several runs (RUNS).
# Environment: CARGO_TARGET_DIR (default target/), RUNS (default 1).
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
esac
cargo build --release --quiet --bin accessbot
BIN="${CARGO_TARGET_DIR:-target}/release/accessbot"
RUNS="${RUNS:-1}"
echo "load before: $(uptime)"
if [ "$RUNS" = 1 ]; then
  "$BIN" scale "$@"
else
  OUT=$(mktemp)
  trap 'rm -f "$OUT"' EXIT
  for i in $(seq 1 "$RUNS"); do
    echo "== run $i of $RUNS"
    "$BIN" scale "$@" | tee -a "$OUT"
  done
  # "bot RSS: 18.2 MB before, 132.9 MB peak (VmHWM), 30.7 MB 3 s after"
  awk '/^bot RSS:/ { p = $6; a = $10
         if (n == 0 || p < pmin) pmin = p; if (p > pmax) pmax = p
         if (n == 0 || a < amin) amin = a; if (a > amax) amax = a; n++ }
       END { if (n) printf "%d runs: peak %.1f-%.1f MB, after %.1f-%.1f MB\n", n, pmin, pmax, amin, amax }' "$OUT"
fi
echo "load after:  $(uptime)"
