#!/usr/bin/env bash
# Coverage-guided fuzzing of accessbot's untrusted-input surfaces with libFuzzer, on STABLE Rust.
#
#   scripts/fuzz.sh                      every target, 3 minutes each (FUZZ_MINUTES)
#   scripts/fuzz.sh 10 target command    the named targets, 10 minutes each
#   scripts/fuzz.sh --replay             each target over its committed corpus once (seconds)
#   scripts/fuzz.sh --merge ...          afterwards, add the inputs that found new coverage to
#                                        fuzz/corpus/<target> (minimised; commit them)
#
# Targets (bodies in fuzz/src/lib.rs): callback_decrypt robot_message card_callback stream_frame
# target command. Nightly-only cargo-fuzz sanitizers are not needed: the crate is built with the
# sanitizer-coverage LLVM passes, which stable rustc accepts as codegen flags, plus debug
# assertions and overflow checks, and libfuzzer-sys links libFuzzer (built from its C++ source,
# so g++ must be installed). Rust code is memory-safe; what a run finds is a panic, an
# arithmetic overflow, a timeout (-timeout) or runaway memory (-rss_limit_mb).
#
# Environment: FUZZ_MINUTES (default 3), FUZZ_JOBS (targets run side by side, default: cores),
# FUZZ_TARGET_DIR (default /work/target-fuzz, apart from the main build's target dir: the
# instrumented build shares nothing with it), FUZZ_WORK (where new inputs and crashes go,
# default $FUZZ_TARGET_DIR/work).
# A crash is saved as $FUZZ_WORK/<target>/crash-*; reproduce it with
#   $FUZZ_TARGET_DIR/<triple>/release/<target> <file>
# and, once fixed, copy it to fuzz/regressions/<target>/ so `cargo test` replays it forever.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

ALL_TARGETS=(callback_decrypt robot_message card_callback stream_frame target command)
MODE=run
MERGE=0
ARGS=()
for a in "$@"; do
  case "$a" in
    --replay) MODE=replay ;;
    --merge) MERGE=1 ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) ARGS+=("$a") ;;
  esac
done
MINUTES=${FUZZ_MINUTES:-3}
if [ ${#ARGS[@]} -gt 0 ] && [[ ${ARGS[0]} =~ ^[0-9]+$ ]]; then
  MINUTES=${ARGS[0]}
  ARGS=("${ARGS[@]:1}")
fi
TARGETS=("${ARGS[@]:-${ALL_TARGETS[@]}}")
for t in "${TARGETS[@]}"; do
  [[ " ${ALL_TARGETS[*]} " == *" $t "* ]] || { echo "fuzz: unknown target $t (${ALL_TARGETS[*]})" >&2; exit 2; }
done

TARGET_DIR=${FUZZ_TARGET_DIR:-/work/target-fuzz}
WORK=${FUZZ_WORK:-$TARGET_DIR/work}
JOBS=${FUZZ_JOBS:-$(nproc)}
TRIPLE=$(rustc -vV | sed -n 's/^host: //p')
# What cargo-fuzz passes for `--sanitizer none`. An explicit --target keeps these flags off build
# scripts and proc macros, which must not be instrumented.
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
export CARGO_TARGET_DIR=$TARGET_DIR
# Not --locked: fuzz/Cargo.lock follows the main crate's dependencies, and a dependency the main
# crate adds must not break this build until someone refreshes the fuzz lock file.

echo "== building ${TARGETS[*]} (instrumented, release, $TRIPLE)"
bins=()
for t in "${TARGETS[@]}"; do bins+=(--bin "$t"); done
(cd fuzz && cargo build --release --target "$TRIPLE" "${bins[@]}")
BIN=$TARGET_DIR/$TRIPLE/release

run_one() {
  local t=$1 secs=$2
  local out=$WORK/$t
  mkdir -p "$out/new" "$out/artifacts"
  local corpora=("$ROOT/fuzz/corpus/$t")
  [ -d "$ROOT/fuzz/regressions/$t" ] && corpora+=("$ROOT/fuzz/regressions/$t")
  local opts=(-max_len=16384 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
    "-artifact_prefix=$out/artifacts/")
  if [ "$MODE" = replay ]; then
    "$BIN/$t" "${opts[@]}" -runs=0 "${corpora[@]}" >"$out/log" 2>&1
  else
    # New inputs go to the first directory; the committed corpus is only read.
    "$BIN/$t" "${opts[@]}" -max_total_time="$secs" "$out/new" "${corpora[@]}" >"$out/log" 2>&1
  fi
}

summary() {
  local t=$1 rc=$2 log=$WORK/$1/log
  local execs rate units crashes
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  units=$(sed -n 's/^stat::new_units_added: *//p' "$log" | tail -1)
  cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
  crashes=$(find "$WORK/$t/artifacts" -type f | wc -l)
  printf '%-17s rc=%-3s execs=%-10s execs/s=%-7s new_units=%-6s cov=%-6s crashes=%s\n' \
    "$t" "$rc" "${execs:-?}" "${rate:-?}" "${units:-?}" "${cov:-?}" "$crashes"
  [ "$rc" = 0 ] && [ "$crashes" = 0 ]
}

secs=$((MINUTES * 60))
[ "$MODE" = replay ] && echo "== replaying the corpora once" \
  || echo "== fuzzing ${#TARGETS[@]} targets for $MINUTES min each, $JOBS at a time; output in $WORK"
declare -A rcs=()
i=0
while [ $i -lt ${#TARGETS[@]} ]; do
  pids=()
  batch=("${TARGETS[@]:$i:$JOBS}")
  for t in "${batch[@]}"; do
    run_one "$t" "$secs" &
    pids+=($!)
  done
  for k in "${!batch[@]}"; do
    if wait "${pids[$k]}"; then rcs[${batch[$k]}]=0; else rcs[${batch[$k]}]=$?; fi
  done
  i=$((i + JOBS))
done

failed=0
echo "== results"
for t in "${TARGETS[@]}"; do summary "$t" "${rcs[$t]}" || failed=1; done

if [ "$MERGE" = 1 ] && [ "$MODE" = run ]; then
  for t in "${TARGETS[@]}"; do
    before=$(find "fuzz/corpus/$t" -type f | wc -l)
    "$BIN/$t" -merge=1 -max_len=16384 -timeout=10 "fuzz/corpus/$t" "$WORK/$t/new" >"$WORK/$t/merge.log" 2>&1
    echo "merged $t: $before -> $(find "fuzz/corpus/$t" -type f | wc -l) inputs"
  done
fi

if [ $failed = 1 ]; then
  echo "fuzz: a target crashed or failed; see $WORK/<target>/log and artifacts/" >&2
  exit 1
fi
