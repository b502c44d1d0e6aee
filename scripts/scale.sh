#!/usr/bin/env bash
# Scale script: seeds the simulated JumpServer with a large org (default 10k users, 50k hosts,
# 10k permissions, 200k relation rows), runs the release bot as a child process, has the admin
# send /sync over the simulated DingTalk, and prints the sync's wall time, the JumpServer calls
# the simulator counted, and the bot's RSS before, at peak (VmHWM) and 3 s after, then asks
# /who-has of one host and one user from the new index.
#
#   scripts/scale.sh                          the issue-11 size, unpaced, the default 8 MiB sled cache
#   scripts/scale.sh --hosts 5000 --relations 20000     any `accessbot scale` option
#   scripts/scale.sh --sync-requests-per-minute 120     with the production pacing
#
# The machine's load is printed with the figures (other jobs share its cores).
# Environment: CARGO_TARGET_DIR (default target/).
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
esac
cargo build --release --quiet --bin accessbot
BIN="${CARGO_TARGET_DIR:-target}/release/accessbot"
echo "load before: $(uptime)"
"$BIN" scale "$@"
echo "load after:  $(uptime)"
