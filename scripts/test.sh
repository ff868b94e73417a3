#!/usr/bin/env bash
# Runs the whole test suite the way CI does: formatting, vet, module
# tidiness, staticcheck, then every test with the race detector. Every step
# runs even when an earlier one failed; the failing steps are listed at the
# end and the script exits non-zero if there was any.
set -uo pipefail
cd "$(dirname "$0")/.."

# staticcheck at a pinned version (fetched through the Go module proxy).
STATICCHECK=honnef.co/go/tools/cmd/staticcheck@v0.8.2

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

failed=()
step() { # step NAME COMMAND...: runs the command, records a failure
  local name=$1; shift
  echo "== $name"
  if ! "$@"; then
    echo "!! $name failed"
    failed+=("$name")
  fi
}

check_gofmt() {
  local unformatted
  unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
  if [ -n "$unformatted" ]; then
    echo "gofmt would change:"; echo "$unformatted"; return 1
  fi
}

check_tidy() {
  cp go.mod "$tmp/go.mod"; cp go.sum "$tmp/go.sum"
  go mod tidy || return 1
  if ! cmp -s go.mod "$tmp/go.mod" || ! cmp -s go.sum "$tmp/go.sum"; then
    echo "go mod tidy changed go.mod/go.sum: run it and commit"
    diff "$tmp/go.mod" go.mod || true
    cp "$tmp/go.mod" go.mod; cp "$tmp/go.sum" go.sum
    return 1
  fi
}

step "gofmt" check_gofmt
step "go vet" go vet ./...
step "go mod tidy" check_tidy
step "staticcheck" go run "$STATICCHECK" ./...
step "go test -race" go test -race -count=1 -timeout 15m "$@" ./...
step "go test -race ./internal/transport/ws with a reader goroutine per connection (the TLS path)" \
  env FERRY_WS_GOROUTINE_READER=1 go test -race -count=1 -timeout 5m "$@" ./internal/transport/ws

if [ ${#failed[@]} -gt 0 ]; then
  echo "== FAILED steps:"
  printf '  %s\n' "${failed[@]}"
  exit 1
fi
echo "== all steps passed"
