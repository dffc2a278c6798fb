#!/usr/bin/env bash
# Where the I/O thread and the sending thread really spend their time: `perf record` with the
# cpu-clock software event (this VM has no hardware counters), so the samples include cache
# misses and cross-core cache-line transfers, which callgrind's instruction counts cannot see.
# Prints the bench's CPU per message, then per thread (rocketmq-io-0, bench-worker-0) the
# source lines with the most samples and their inline chain (innermost first).
#
#   CARGO_PROFILE_RELEASE_DEBUG=line-tables-only cargo build --release --example bench
#   scripts/perf-lines.sh target/release/examples/bench [MODE] [TOP]
#
# The build is the plain release code plus line tables. Runs differ by about 15 %: compare a
# line's share of its thread's samples over a few runs, not one.
set -eu  # no pipefail: `head` closes pipes early on purpose
B=${1:?bench binary}; MODE=${2:-async}; TOP=${3:-40}
D=$(mktemp -d /tmp/perf-lines.XXXX)
perf record -q -e cpu-clock -F 20000 -o $D/perf.data $B --mode $MODE --duration 4 --warmup 1 2>&1 | grep -E 'CPU per message|^client ' | tail -2
base=$(perf script -i $D/perf.data --show-mmap-events 2>/dev/null | grep -m1 "r-xp $B" | sed -E 's/.*\[0x([0-9a-f]+)\(.*@ 0x([0-9a-f]+) .*/\1 \2/')
set -- $base; start=$1; pgoff=$2
# file offset -> virtual address of the text segment
seg=$(readelf -lW $B | awk '$1=="LOAD" && / R E / {print $2, $3}')
set -- $seg; off=$1; vaddr=$2
perf script -i $D/perf.data -F comm,ip,dso 2>/dev/null | awk -v B="$B" '$3 ~ B {n[$1" "$2]++} {t[$1]++} END {for (c in t) print t[c], c, "TOTAL"; for (k in n) print n[k], k}' | sort -k2,2 -k1,1nr > $D/ips.txt
for c in rocketmq-io-0 bench-worker-0; do
  echo "=== $c: $(awk -v c=$c '$2==c && $3=="TOTAL" {print $1}' $D/ips.txt) samples (all code), top lines in the binary:"
  awk -v c=$c '$2==c && $3!="TOTAL"' $D/ips.txt | head -$TOP | while read n comm ip; do
    va=$(printf '%x' $(( 0x$ip - 0x$start + 0x$pgoff - $off + $vaddr )))
    loc=$(addr2line -e $B -i -f -C 0x$va 2>/dev/null | paste -sd'|' | sed 's|/work/wt/[^/]*/||g; s|/rustc/[0-9a-f]*/library/||g; s|/root/.cargo/registry/src/[^/]*/||g' | awk -F'|' '{o=$1; for(i=2;i<=NF && i<=10;i+=2) o=o" < "$i; print o}' | cut -c1-260)
    echo "$n $loc"
  done
done
rm -rf $D
