#!/usr/bin/env bash
# Smoke test of the real binary, as a newcomer runs it: build, start
# `ferry serve --dev`, publish twice with curl (offsets 1 then 2), check the
# health endpoints, stop with SIGTERM and expect a clean exit.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh >/dev/null
port=$(( 20000 + RANDOM % 20000 ))
out=$(mktemp); err=$(mktemp)
./bin/ferry serve --dev --addr "127.0.0.1:$port" >"$out" 2>"$err" &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -f "$out" "$err"' EXIT
for i in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null
key=$(sed -n 's/^  API key: *//p' "$out")
[ -n "$key" ] || { echo "no API key in the dev banner:"; cat "$out"; exit 1; }
for want in 1 2; do
  reply=$(curl -fsS -H "Authorization: Bearer $key" -d '{"channel":"chat:lobby","data":{"text":"hi"}}' "http://127.0.0.1:$port/v1/api/publish")
  echo "publish -> $reply"
  echo "$reply" | grep -q "\"offset\":$want" || { echo "want offset $want"; exit 1; }
done
code=$(curl -s -o /dev/null -w '%{http_code}' -d '{}' "http://127.0.0.1:$port/v1/api/publish")
[ "$code" = 401 ] || { echo "API without key: want 401, got $code"; exit 1; }
kill -TERM $pid
wait $pid

# ferry bench with small numbers, against a node configured for it as
# docs/benchmarks.md says: it checks that the tool works end to end (every
# message delivered exactly once, every connection opened), not speed.
bport=$(( port + 1 ))
FERRY_TOKEN_HMAC_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
FERRY_API_KEY=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
export FERRY_TOKEN_HMAC_SECRET FERRY_API_KEY
FERRY_HANDSHAKE_RATE=0 FERRY_LOGS_LEVEL=warn FERRY_NAMESPACES='{"bench": {"subscribe": true, "publish": true}}' \
  ./bin/ferry serve --addr "127.0.0.1:$bport" >"$out" 2>"$err" &
pid=$!
for i in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$bport/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
burl="http://127.0.0.1:$bport"
res=$(./bin/ferry bench --mode fanout --url "$burl" --conns 50 --rate 20 --duration 2s --json --quiet)
echo "$res" | grep -Eq '"missing": ?0[,}]' && echo "$res" | grep -Eq '"duplicates": ?0[,}]' && echo "$res" | grep -Eq '"deliveries": ?[1-9]' \
  || { echo "bench fanout: want deliveries, none missing or duplicated:"; echo "$res"; exit 1; }
echo "bench fanout ok: $(echo "$res" | grep -Eo '"deliveries": ?[0-9]+' | head -1)"
res=$(./bin/ferry bench --mode connect --url "$burl" --conns 300 --json --quiet)
echo "$res" | grep -Eq '"opened": ?300[,}]' || { echo "bench connect: want 300 opened:"; echo "$res"; exit 1; }
echo "bench connect ok"
res=$(./bin/ferry bench --mode idle --url "$burl" --conns 200 --duration 2s --settle-timeout 10s --json --quiet)
echo "$res" | grep -Eq '"opened": ?200[,}]' && echo "$res" | grep -Eq '"rss_per_conn_bytes": ?-?[0-9]' \
  || { echo "bench idle: want 200 opened and a memory figure (with 200 connections on a node that served the runs before, it can be below zero):"; echo "$res"; exit 1; }
echo "bench idle ok"
kill -TERM $pid
wait $pid
echo "smoke ok"
