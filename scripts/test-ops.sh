#!/usr/bin/env bash
# Checks the operations kit in deploy/ with the tools operators run it
# with: the Prometheus rules (promtool check, then the rules' unit tests on
# synthetic series), the example Prometheus configuration, the Grafana
# dashboard's queries (parsed by Prometheus' own parser, in a module of
# their own), and the systemd unit (systemd-analyze verify). CI runs it from .ci/run; it needs
# Debian's prometheus (promtool) and systemd (systemd-analyze) packages.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== promtool check rules"
promtool check rules deploy/prometheus/ferry-alerts.yml

echo "== promtool test rules"
promtool test rules deploy/prometheus/ferry-alerts_test.yml

echo "== promtool check config"
promtool check config deploy/prometheus/prometheus.yml

echo "== Grafana dashboard queries (module deploy/grafana/querytest)"
(
  cd deploy/grafana/querytest
  modbak=$(mktemp -d)
  cp go.mod go.sum "$modbak/"
  go mod tidy
  if ! cmp -s go.mod "$modbak/go.mod" || ! cmp -s go.sum "$modbak/go.sum"; then
    echo "go mod tidy changed deploy/grafana/querytest/go.mod or go.sum: run it and commit"; rm -rf "$modbak"; exit 1
  fi
  rm -rf "$modbak"
  go vet ./...
  go test -count=1 ./...
)

if [ -f deploy/systemd/ferry.service ]; then
  echo "== systemd-analyze verify"
  # verify resolves ExecStart: point it at a built binary through a copy
  # of the unit in a temp dir (the unit itself names /usr/local/bin/ferry).
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  bash scripts/build.sh >/dev/null
  sed "s|/usr/local/bin/ferry|$PWD/bin/ferry|g" deploy/systemd/ferry.service >"$tmp/ferry.service"
  out=$(systemd-analyze verify --man=no "$tmp/ferry.service" 2>&1 || true)
  # verify also complains about the host's own units when it cannot see
  # them (containers); only lines about this unit count.
  mine=$(printf '%s\n' "$out" | grep -F "ferry.service" || true)
  if [ -n "$mine" ]; then
    echo "$mine"; exit 1
  fi
  echo "ferry.service: ok"
fi
