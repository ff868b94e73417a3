#!/usr/bin/env bash
# One command per example: examples/run.sh ticker|sensors|auction|editor
# Builds ferry and the page, starts a development node (two for the
# ticker: with and without batching) on free loopback ports with the app's
# namespace rules, then the app's page server; Ctrl-C stops everything.
set -euo pipefail
app=${1:-}
case "$app" in ticker | sensors | auction | editor) ;; *)
  echo "usage: examples/run.sh ticker|sensors|auction|editor" >&2
  exit 2
  ;;
esac
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

[ -d examples/node_modules ] || (cd examples && npm ci --no-audit --no-fund)
node examples/build.mjs "$app"
go build -o "$tmp/ferry" ./cmd/ferry
go build -o "$tmp/$app" "./examples/$app"

export FERRY_TOKEN_HMAC_SECRET=${FERRY_TOKEN_HMAC_SECRET:-$(head -c 32 /dev/urandom | base64)}
export FERRY_API_KEY=${FERRY_API_KEY:-$(head -c 16 /dev/urandom | base64 | tr -d '/+=')}
addr=${ADDR:-127.0.0.1:8090}
namespaces=$(tr -d '\n' <"examples/$app/namespaces.json")
if [ "$app" = auction ]; then
  # The node asks the app's publish hook about every bid: the bids
  # namespace's publish_hook names the app's address ({{APP}}), and node
  # and app share the hooks secret that signs the hook's requests.
  case "$addr" in *:0)
    echo "ADDR=$addr: the auction needs a fixed port (the node is told its publish hook's URL)" >&2
    exit 2
    ;;
  esac
  export FERRY_HOOKS_SECRET=${FERRY_HOOKS_SECRET:-$(head -c 32 /dev/urandom | base64)}
  namespaces=${namespaces//\{\{APP\}\}/$addr}
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_node PORT [extra env...]
start_node() {
  local port=$1
  shift
  env FERRY_NAMESPACES="$namespaces" FERRY_HANDSHAKE_RATE=0 FERRY_MAX_CONNECTIONS_PER_USER=1000 "$@" \
    "$tmp/ferry" serve --dev --addr "127.0.0.1:$port" >"$tmp/ferry-$port.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "ferry did not start; its log:" >&2
  cat "$tmp/ferry-$port.log" >&2
  exit 1
}

port=$(free_port)
args=()
case "$app" in
ticker)
  start_node "$port" FERRY_BATCH_DELAY=200ms
  raw=$(free_port)
  start_node "$raw"
  args+=(--unbatched "http://127.0.0.1:$raw")
  ;;
*) start_node "$port" FERRY_CLIENT_PUBLISH_RATE=0 ;;
esac
echo "ferry node: http://127.0.0.1:$port (log: $tmp/ferry-$port.log)"

if [ "$app" = sensors ]; then
  export SENSORS_KEY=${SENSORS_KEY:-$(head -c 32 /dev/urandom | base64)}
  echo "open the dashboard with #key=$(python3 -c 'import os,urllib.parse; print(urllib.parse.quote(os.environ["SENSORS_KEY"]))')"
  echo "then run the devices:  FERRY_TOKEN_HMAC_SECRET='$FERRY_TOKEN_HMAC_SECRET' SENSORS_KEY='$SENSORS_KEY' go run ./examples/sensors/devices --ferry http://127.0.0.1:$port --devices 1000"
fi
"$tmp/$app" --ferry "http://127.0.0.1:$port" --web "examples/$app/web" --addr "$addr" "${args[@]}" &
pids+=($!)
wait "${pids[-1]}"
