#!/usr/bin/env bash
# fanout 40/s with the library client (a goroutine per connection, coder/websocket); the bench from BENCHBIN, the node from NEW or OLD, alternately
set -u
NEW=$1; OLD=$2; OUT=$3; BENCHBIN=$4; mkdir -p $OUT
export FERRY_TOKEN_HMAC_SECRET=0123456789abcdef0123456789abcdef0123456789abcdef FERRY_API_KEY=benchkeybenchkeybenchkey
port=18900
run() { name=$1; BIN=$2; shift 2; port=$((port+1))
  echo "$(date +%T) $name node $(basename $BIN), ferry bench $*" >> $OUT/commands.txt
  FERRY_HANDSHAKE_RATE=0 FERRY_LOGS_LEVEL=warn FERRY_MAX_CONNECTIONS_PER_USER=0 FERRY_NAMESPACES='{"bench": {"subscribe": true, "publish": true}}' $BIN serve --addr 127.0.0.1:$port > $OUT/$name.server.log 2>&1 &
  sp=$!; for i in $(seq 50); do curl -sf http://127.0.0.1:$port/healthz >/dev/null && break; sleep 0.2; done
  $BENCHBIN bench --url http://127.0.0.1:$port --quiet --json "$@" > $OUT/$name.json 2>$OUT/$name.err
  kill $sp; wait $sp 2>/dev/null; }
for k in a b; do
  run fan40lib-new-$k $NEW --mode fanout --conns 1000 --rate 40 --duration 15s --client library
  run fan40lib-old-$k $OLD --mode fanout --conns 1000 --rate 40 --duration 15s --client library
done
run fan100lib-new-a $NEW --mode fanout --conns 1000 --rate 100 --duration 15s --client library
