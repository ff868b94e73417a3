#!/usr/bin/env bash
# Runs the whole test suite the way CI does: formatting, vet, module
# tidiness, then every test with the race detector.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

echo "== go vet"
go vet ./...

echo "== go mod tidy"
modbak=$(mktemp -d); trap 'rm -rf "$modbak"' EXIT
cp go.mod "$modbak/go.mod"; cp go.sum "$modbak/go.sum"
go mod tidy
if ! cmp -s go.mod "$modbak/go.mod" || ! cmp -s go.sum "$modbak/go.sum"; then
  echo "go mod tidy changed go.mod/go.sum: run it and commit"; diff "$modbak/go.mod" go.mod || true; exit 1
fi

echo "== go test -race"
go test -race -count=1 -timeout 15m "$@" ./...

echo "== go test -race ./internal/transport/ws with a reader goroutine per connection (the TLS path)"
FERRY_WS_GOROUTINE_READER=1 go test -race -count=1 -timeout 5m "$@" ./internal/transport/ws
