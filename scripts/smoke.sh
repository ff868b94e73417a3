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
echo "smoke ok"
