#!/usr/bin/env bash
# usage: run.sh NEWBIN OLDBIN OUTDIR  -- issue 22, second sitting: the rows the timing wheel and the fallback work touch, new vs old where it matters
set -u
NEW=$1; OLD=$2; OUT=$3; mkdir -p $OUT
export FERRY_TOKEN_HMAC_SECRET=0123456789abcdef0123456789abcdef0123456789abcdef FERRY_API_KEY=benchkeybenchkeybenchkey
port=18600
run() { # name bin args...
  name=$1; BIN=$2; shift 2; port=$((port+1))
  echo "$(date +%T) $name $(basename $BIN) ferry bench $*" >> $OUT/commands.txt
  FERRY_HANDSHAKE_RATE=0 FERRY_LOGS_LEVEL=warn FERRY_MAX_CONNECTIONS_PER_USER=0 FERRY_NAMESPACES='{"bench": {"subscribe": true, "publish": true}}' $BIN serve --addr 127.0.0.1:$port > $OUT/$name.server.log 2>&1 &
  sp=$!
  for i in $(seq 50); do curl -sf http://127.0.0.1:$port/healthz >/dev/null && break; sleep 0.2; done
  $BIN bench --url http://127.0.0.1:$port --quiet --json "$@" > $OUT/$name.json 2>$OUT/$name.err
  kill $sp; wait $sp 2>/dev/null
}
for k in a b; do
  run idle15k-new-$k $NEW --mode idle --conns 15000 --duration 60s
  run idle15k-old-$k $OLD --mode idle --conns 15000 --duration 60s
done
run idle15k-new-c $NEW --mode idle --conns 15000 --duration 60s
for k in a b; do
  run sse10k-new-$k $NEW --mode idle --transport sse --conns 10000 --duration 40s
  run poll10k-new-$k $NEW --mode idle --transport poll --conns 10000 --duration 40s
done
run sse10k-old-a $OLD --mode idle --transport sse --conns 10000 --duration 40s
run poll10k-old-a $OLD --mode idle --transport poll --conns 10000 --duration 40s
for k in a b; do
  run fan40-new-$k $NEW --mode fanout --conns 1000 --rate 40 --duration 15s
  run fan100-new-$k $NEW --mode fanout --conns 1000 --rate 100 --duration 15s
done
run fan200-new-a $NEW --mode fanout --conns 1000 --rate 200 --duration 15s
for k in a b; do run connect-new-$k $NEW --mode connect --conns 10000; done
for k in a b; do bash $(dirname $0)/broadcast.sh $NEW $OUT bcast-new-$k; done
echo "$(date +%T) scripts/bench-cluster.sh --engines redis --rates 40" >> $OUT/commands.txt
(cd /work/main && PATH=$(dirname $NEW):$PATH bash scripts/bench-cluster.sh --engines redis --rates 40 --out $OUT/cluster > $OUT/cluster.log 2>&1)
