#!/usr/bin/env bash
# usage: broadcast.sh BIN OUTDIR NAME -- 100,000 connections over 6 nodes on Redis, a broadcast every 5 s
set -u
BIN=$1; OUT=$2; NAME=$3; mkdir -p $OUT
export FERRY_TOKEN_HMAC_SECRET=0123456789abcdef0123456789abcdef0123456789abcdef FERRY_API_KEY=benchkeybenchkeybenchkey
redis-server --port 6390 --bind 127.0.0.1 --save '' --appendonly no > $OUT/$NAME.redis.log 2>&1 &
rp=$!
sleep 1
pids=(); urls=()
for i in 1 2 3 4 5 6; do
  p=$((31000+i))
  FERRY_NODE_ID=n$i FERRY_BROKER=redis://127.0.0.1:6390 FERRY_HANDSHAKE_RATE=0 FERRY_LOGS_LEVEL=warn FERRY_MAX_CONNECTIONS_PER_USER=0 FERRY_NAMESPACES='{"bench": {"subscribe": true, "publish": true}}' $BIN serve --addr 127.0.0.1:$p > $OUT/$NAME.node$i.log 2>&1 &
  pids+=($!); urls+=(http://127.0.0.1:$p)
done
for u in "${urls[@]}"; do for i in $(seq 100); do curl -sf $u/readyz >/dev/null && break; sleep 0.2; done; done
U=$(IFS=,; echo "${urls[*]}")
echo "$(date +%T) $NAME ferry bench --mode cluster --url $U --conns 100000 --rate 0.2 --duration 30s" >> $OUT/commands.txt
$BIN bench --mode cluster --url $U --conns 100000 --rate 0.2 --duration 30s --quiet --json > $OUT/$NAME.json 2> $OUT/$NAME.err
kill ${pids[@]}; wait ${pids[@]} 2>/dev/null
kill $rp; wait $rp 2>/dev/null
