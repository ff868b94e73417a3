#!/usr/bin/env bash
# The TypeScript SDK's tests, as CI runs them: npm ci, build, unit tests,
# tests against the real ferry binary (each transport, chaos through a
# cutting proxy), browser tests in Debian's Chromium behind Debian's nginx
# (the playground, and the admin page: test/browser/admin.test.mjs, whose
# screenshots are clients/js/artifacts/admin*.png);
# then checks that the committed playground (web/playground.html) is what
# scripts/build-web.sh builds. Installs Node, chromium and nginx from
# Debian when missing. Also checks that clients/js/src/gen is what
# clients/js/scripts/gen-proto.sh makes of protocol/ferry/v1/ferry.proto.
#
# CHAOS_SECONDS sets the chaos run's length (default 30; CI passes less).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:/usr/sbin"

need=()
command -v node >/dev/null 2>&1 || need+=(nodejs npm)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v nginx >/dev/null 2>&1 || need+=(nginx)
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing ${need[*]}"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# The browser tests run their own nginx on random ports: Debian's packaged
# one needs no stopping. A CI machine (CI=true) stops it anyway to free
# memory, as .ci/run does; a developer's own nginx is left alone.
if [ "${CI:-}" = true ]; then
  systemctl stop nginx >/dev/null 2>&1 || service nginx stop >/dev/null 2>&1 || true
fi

# One ferry binary for every test process.
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/ferry" ./cmd/ferry
export FERRY_BIN="$bin/ferry"

cd clients/js
echo "== npm ci"
npm ci --no-audit --no-fund
echo "== the committed protobuf code is what ferry.proto generates"
command -v protoc >/dev/null 2>&1 || {
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends protobuf-compiler >/dev/null
}
gen=$(mktemp -d)
OUT="$gen" bash scripts/gen-proto.sh
if ! diff -r "$gen" src/gen >/dev/null; then
  diff -r "$gen" src/gen | head -40
  rm -rf "$gen"
  echo "clients/js/src/gen is stale: run clients/js/scripts/gen-proto.sh and commit the result"
  exit 1
fi
rm -rf "$gen"
npm run build
echo "== unit tests"
node --test test/unit/
echo "== against the ferry binary (chaos ${CHAOS_SECONDS:-30} s)"
node --test --test-concurrency=1 test/binary/
echo "== in Chromium"
node --test --test-concurrency=1 test/browser/
cd ../..

echo "== the committed playground is current"
fresh=$(mktemp)
bash scripts/build-web.sh "$fresh" >/dev/null
if ! cmp -s "$fresh" web/playground.html; then
  rm -f "$fresh"
  echo "web/playground.html is not what scripts/build-web.sh builds: run it and commit the result"
  exit 1
fi
rm -f "$fresh"
echo "js ok"
