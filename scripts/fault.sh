#!/usr/bin/env bash
# Fault script: kills the bot with SIGKILL at random moments while simulated people request
# access and approvers decide, restarts it on the same sled directory, and checks at the end:
# exactly one JumpServer permission per approved order (exactly the requested user, host and
# window), no order lost, no duplicate approval card or OA instance, every requester told.
# Duplicate chat messages are counted, not failed (README: a crash can double a chat message).
#
#   scripts/fault.sh                      50 requests, 25 kills, a fresh seed, card approvals
#   scripts/fault.sh 50 25 1234           orders, kills, seed (the seed replays the schedule)
#   scripts/fault.sh 50 25 1234 --approval oa --max-uptime-ms 300
#                                         anything after the seed goes to `accessbot fault`
#   FAULT_RUNS=3 scripts/fault.sh 50 25   three runs, seeds S, S+1, S+2
#
# The subcommand is hidden from `accessbot --help`; `accessbot fault --help` lists every option. The bot runs as a real child process (`accessbot serve`); the simulated DingTalk and
# JumpServer run in the driver process, which survives the kills. Release build, so the timing
# is the product's. Exit status 1 if any run found a violation; a failing run keeps its
# directory (accessbot.toml, data/, bot.log, conversation.log) and prints where it is.
#
# Environment: CARGO_TARGET_DIR (default target/), FAULT_RUNS (default 1).
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
  -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
esac
ORDERS=${1:-50}
KILLS=${2:-25}
SEED=${3:-}
[ $# -gt 3 ] && shift 3 || shift $#
for n in "$ORDERS" "$KILLS" ${SEED:+"$SEED"}; do
  [[ $n =~ ^[0-9]+$ ]] || { echo "fault: orders, kills and seed are whole numbers, not '$n' (see --help)" >&2; exit 2; }
done
if [ -z "$SEED" ]; then
  SEED=$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')
fi
RUNS=${FAULT_RUNS:-1}

echo "== building (release)"
cargo build --release --quiet
BIN=${CARGO_TARGET_DIR:-target}/release/accessbot

failed=0
for ((i = 0; i < RUNS; i++)); do
  s=$((SEED + i))
  echo "== run $((i + 1))/$RUNS: $ORDERS requests, $KILLS kills, seed $s"
  start=$(date +%s)
  if ! "$BIN" fault --orders "$ORDERS" --kills "$KILLS" --seed "$s" "$@"; then
    failed=1
  fi
  echo "   (wall clock $(( $(date +%s) - start )) s)"
done
exit $failed
