#!/usr/bin/env bash
# Browser tests of the example apps (examples/): installs the Debian
# packages they start (chromium, nginx, redis-server) when missing, runs
# npm ci in examples/, builds the pages and runs each app's Playwright test
# (playwright-core driving /usr/bin/chromium; no browser download).
# Screenshots land in $ARTIFACTS_DIR (default examples/artifacts).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:/usr/sbin"

need=()
for pair in chromium:/usr/bin/chromium nginx:/usr/sbin/nginx redis-server:/usr/bin/redis-server; do
  pkg=${pair%%:*}; bin=${pair#*:}
  [ -x "$bin" ] || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing ${need[*]}"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# The tests start their own redis and nginx on random ports; a CI machine
# (CI=true) stops the packaged ones to free memory, a developer's are left
# alone.
if [ "${CI:-}" = true ]; then
  for svc in redis-server nginx; do
    systemctl stop "$svc" >/dev/null 2>&1 || service "$svc" stop >/dev/null 2>&1 || true
  done
fi

cd examples
npm ci --no-audit --no-fund
node build.mjs
# One ferry binary for every test file.
export FERRY_BIN="${FERRY_BIN:-$(mktemp -d)/ferry}"
[ -x "$FERRY_BIN" ] || (cd .. && go build -o "$FERRY_BIN" ./cmd/ferry)
node --test --test-concurrency=1 test/*.test.mjs
