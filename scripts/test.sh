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
cp go.mod /tmp/ferry-go.mod.bak; cp go.sum /tmp/ferry-go.sum.bak
go mod tidy
if ! cmp -s go.mod /tmp/ferry-go.mod.bak || ! cmp -s go.sum /tmp/ferry-go.sum.bak; then
  echo "go mod tidy changed go.mod/go.sum: run it and commit"; diff /tmp/ferry-go.mod.bak go.mod || true; exit 1
fi

echo "== go test -race"
go test -race -count=1 -timeout 15m "$@" ./...

echo "== go test -race ./internal/transport/ws with a reader goroutine per connection (the TLS path)"
FERRY_WS_GOROUTINE_READER=1 go test -race -count=1 -timeout 5m "$@" ./internal/transport/ws
