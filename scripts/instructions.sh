#!/usr/bin/env bash
# Instructions per message, per thread group, counted by callgrind (valgrind): a measure the
# machine's noise cannot blur (wall-clock figures on a shared VM swing 2x from minute to minute).
#
#   scripts/instructions.sh MODE [COUNT] [-- EXTRA BENCH FLAGS]
#
# MODE is a bench mode (sync, async, callback, oneway, batch) or `raw-sync` / `raw-async` (the
# bench's raw socket client, the ceiling). COUNT messages (default 20000) are sent to the
# embedded MockBroker in one process with no warm-up, so start-up (route lookup, connecting)
# is included and amortised over COUNT. Every thread gets its own callgrind file; each file is
# put in a group by the code it ran:
#
#   mock    MockBroker threads (ran rocketmq_mio::testing code)
#   io      the producer's event-loop threads (ran mio's Poll::poll)
#   sender  the bench's sending threads (bench-worker-N: the user's thread; for raw-*, the raw
#           socket client itself)
#   other   everything else: callback pool, async executors, service thread, main thread
#
# and the group's instructions are divided by COUNT. `client` = sender + io (+ other), the
# producer's cost per message. Example:
#
#   scripts/instructions.sh async            # async handles, window 1024
#   scripts/instructions.sh sync 5000
#   scripts/instructions.sh async 20000 -- --serialize-type rocketmq
set -euo pipefail

mode=${1:?usage: scripts/instructions.sh MODE [COUNT] [-- BENCH FLAGS]}
shift
count=20000
if [[ $# -gt 0 && $1 != "--" ]]; then
    count=$1
    shift
fi
[[ ${1:-} == "--" ]] && shift

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo build --release --example bench >&2
bench=${CARGO_TARGET_DIR:-$root/target}/release/examples/bench

flags=(--mode "$mode" --count "$count" --warmup 0)
case $mode in
    raw-sync) flags=(--mode sync --raw-only --count "$count" --warmup 0) ;;
    raw-async) flags=(--mode async --raw-only --count "$count" --warmup 0) ;;
esac

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$out/cg.out" \
    "$bench" "${flags[@]}" "$@" >"$out/bench.txt" 2>"$out/valgrind.txt" || {
    tail -20 "$out/valgrind.txt" >&2
    exit 1
}

declare -A group_ir=([sender]=0 [io]=0 [mock]=0 [other]=0)
declare -A group_threads=([sender]=0 [io]=0 [mock]=0 [other]=0)
for f in "$out"/cg.out*; do
    [[ -s $f ]] || continue
    total=$(awk '/^(summary|totals):/ {print $2; exit}' "$f")
    [[ -n $total ]] || continue
    if grep -q 'rocketmq_mio::testing::' "$f" && ! grep -q 'bench::main' "$f"; then
        g=mock
    elif grep -q 'bench::thread_cpu_ns' "$f" && ! grep -q 'bench::main' "$f"; then
        g=sender # the phase's worker threads read their CPU time at start and end
    elif grep -q 'mio::poll::Poll::poll' "$f"; then
        g=io
    else
        g=other
    fi
    group_ir[$g]=$((group_ir[$g] + total))
    group_threads[$g]=$((group_threads[$g] + 1))
done

printf 'mode %s, %d messages (callgrind, instructions per message)\n' "$mode" "$count"
for g in sender io other mock; do
    printf '  %-7s %8d   (%d thread(s))\n' "$g" $((group_ir[$g] / count)) "${group_threads[$g]}"
done
printf '  %-7s %8d   (sender + io + other)\n' client $(((group_ir[sender] + group_ir[io] + group_ir[other]) / count))
