#!/usr/bin/env bash
# The cluster bench: three ferry nodes on each broker engine (Redis, NATS
# JetStream, RabbitMQ), started here from the Debian binaries. `ferry bench
# --mode cluster` publishes to the first node at rising rates (the engine
# fans out to all three) until p99 passes 100 ms or a delivery is missing;
# each row gives deliveries/s, latency, the nodes' CPU per delivery and the
# engine's own CPU (chaos: TestClusterBench, docs/benchmarks.md).
#
#   scripts/bench-cluster.sh [--engines redis,nats,rabbitmq] [--conns 3000]
#                            [--rates 10,20,40,60,80,100] [--duration 15s]
#                            [--history] [--out DIR]
#
#   --history  the bench namespace keeps history (1,000 messages, 5 min):
#              every publication is also written to the engine's history
#
# Out: cluster-bench.md (tables and the best rate per engine) and
# cluster-bench.jsonl (every ferry bench result) in --out (default a temp
# dir). Run it on a quiet machine: the figures measure everything on it.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:/usr/sbin"

engines=redis,nats,rabbitmq conns=3000 rates=10,20,40,60,80,100 duration=15s history=0 out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --engines) engines=$2; shift 2 ;;
    --conns) conns=$2; shift 2 ;;
    --rates) rates=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --history) history=1; shift ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "bench-cluster.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ -n "$out" ] || out=$(mktemp -d)
mkdir -p "$out"
out=$(cd "$out" && pwd)

echo "== cluster bench: $engines, $conns subscribers over 3 nodes, rates $rates/s for $duration each, history $history -> $out"
rc=0
FERRY_CLUSTER_BENCH=1 FERRY_CLUSTER_BENCH_ENGINES="$engines" FERRY_CLUSTER_BENCH_CONNS="$conns" \
FERRY_CLUSTER_BENCH_RATES="$rates" FERRY_CLUSTER_BENCH_DURATION="$duration" \
FERRY_CLUSTER_BENCH_HISTORY="$history" FERRY_CLUSTER_BENCH_OUT="$out" \
  go test -count=1 -timeout 60m -run '^TestClusterBench$' -v ./chaos/ >"$out/test.log" 2>&1 || rc=$?
cat "$out/cluster-bench.md" 2>/dev/null || echo "cluster bench: no report written"
if [ "$rc" != 0 ]; then
  echo "cluster bench: FAILED (go test exit $rc); the end of $out/test.log:"
  grep -E -v '^\s+\{"time"' "$out/test.log" | tail -40
  exit 1
fi
