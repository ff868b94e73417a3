#!/usr/bin/env bash
# connect with 64 in flight over 8 source addresses, and the library client (a goroutine per connection), old and new alternately
set -u
NEW=$1; OLD=$2; OUT=$3; mkdir -p $OUT
export FERRY_TOKEN_HMAC_SECRET=0123456789abcdef0123456789abcdef0123456789abcdef FERRY_API_KEY=benchkeybenchkeybenchkey
SRC=127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5,127.0.0.6,127.0.0.7,127.0.0.8,127.0.0.9
port=18800
run() { name=$1; BIN=$2; shift 2; port=$((port+1))
  echo "$(date +%T) $name $(basename $BIN) ferry bench $*" >> $OUT/commands.txt
  FERRY_HANDSHAKE_RATE=0 FERRY_LOGS_LEVEL=warn FERRY_MAX_CONNECTIONS_PER_USER=0 FERRY_NAMESPACES='{"bench": {"subscribe": true, "publish": true}}' $BIN serve --addr 127.0.0.1:$port > $OUT/$name.server.log 2>&1 &
  sp=$!; for i in $(seq 50); do curl -sf http://127.0.0.1:$port/healthz >/dev/null && break; sleep 0.2; done
  $BIN bench --url http://127.0.0.1:$port --quiet --json "$@" > $OUT/$name.json 2>$OUT/$name.err
  kill $sp; wait $sp 2>/dev/null; }
for k in a b; do
  for c in reactor library; do
    run connect64-$c-new-$k $NEW --mode connect --conns 15000 --concurrency 64 --source-addrs $SRC --client $c
    run connect64-$c-old-$k $OLD --mode connect --conns 15000 --concurrency 64 --source-addrs $SRC --client $c
  done
done
for k in a b; do
  run fan40lib-new-$k $NEW --mode fanout --conns 1000 --rate 40 --duration 15s --client library
  run fan40lib-old-$k $OLD --mode fanout --conns 1000 --rate 40 --duration 15s --client library
done
