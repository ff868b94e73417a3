#!/usr/bin/env bash
# Builds bin/ferry with the version from git.
set -euo pipefail
cd "$(dirname "$0")/.."
v=$(git describe --always --dirty 2>/dev/null || echo dev)
mkdir -p bin
go build -trimpath -ldflags "-s -w -X main.version=$v" -o bin/ferry ./cmd/ferry
echo "built bin/ferry ($v)"
