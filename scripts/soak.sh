#!/usr/bin/env bash
# Soak test: 3 ferry nodes on one Redis under steady load with churn, for a
# bounded time (it stops by itself). RSS, heap, goroutines and open files
# of every node are sampled into a CSV and plotted; a slope test after the
# warm-up and the history checker decide pass or fail (chaos: TestSoak,
# docs/reliability.md).
#
#   scripts/soak.sh [--duration 30m] [--conns 15000] [--churn 10] [--rate 1000]
#                   [--channels 100] [--interval 10s] [--warmup D] [--out DIR]
#   scripts/soak.sh --short     # the 2-minute form CI runs (small numbers)
#
#   --duration  how long the load runs                        (default 30m)
#   --conns     connections held per node (ferry bench)       (default 15000)
#   --churn     % of the connections reconnecting per minute  (default 10)
#   --rate      publishes per second, over all channels       (default 1000)
#   --channels  channels the publishes spread over            (default 100)
#   --interval  sampling interval                             (default 10s)
#   --warmup    samples before this are not slope-tested      (default duration/5)
#   --out       where soak.csv, soak.png, soak.txt and bench.log go
#               (default docs/soak for the full run, a temp dir for --short)
#
# It needs redis-server (Debian). Do not run the full form on a shared
# machine: the figures would measure the neighbours.
set -euo pipefail
cd "$(dirname "$0")/.."

duration=30m conns=15000 churn=10 rate=1000 channels=100 interval=10s warmup="" out=""
short=0
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration=$2; shift 2 ;;
    --conns) conns=$2; shift 2 ;;
    --churn) churn=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --channels) channels=$2; shift 2 ;;
    --interval) interval=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --short) short=1; shift ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "soak.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ "$short" = 1 ]; then
  duration=2m conns=300 churn=10 rate=50 channels=10 interval=5s warmup=40s
  [ -n "$out" ] || out=$(mktemp -d)
fi
[ -n "$out" ] || out=docs/soak
mkdir -p "$out"
out=$(cd "$out" && pwd)

# The go test timeout: the duration plus 10 minutes for the start, the
# drain and the report.
case "$duration" in
  *h) secs=$(( ${duration%h} * 3600 )) ;;
  *m) secs=$(( ${duration%m} * 60 )) ;;
  *s) secs=${duration%s} ;;
  *) echo "soak.sh: --duration $duration: use whole s, m or h (30m, 2h)" >&2; exit 2 ;;
esac
timeout=$(( secs + 600 ))s

echo "== soak: $duration, $conns conns/node, $churn%/min churn, $rate publishes/s over $channels channels -> $out"
rc=0
FERRY_SOAK=1 FERRY_SOAK_DURATION="$duration" FERRY_SOAK_CONNS="$conns" FERRY_SOAK_CHURN="$churn" \
FERRY_SOAK_RATE="$rate" FERRY_SOAK_CHANNELS="$channels" FERRY_SOAK_INTERVAL="$interval" \
FERRY_SOAK_WARMUP="$warmup" FERRY_SOAK_OUT="$out" \
  go test -count=1 -timeout "$timeout" -run '^TestSoak$' -v ./chaos/ >"$out/test.log" 2>&1 || rc=$?
cat "$out/soak.txt" 2>/dev/null || echo "soak: no report written"
if [ "$rc" != 0 ]; then
  echo "soak: FAILED (go test exit $rc); the end of $out/test.log:"
  grep -E -v '^\s+\{"time"' "$out/test.log" | tail -40
  exit 1
fi
echo "soak: passed ($out: soak.csv, soak.png, soak.txt, bench.log, test.log)"
