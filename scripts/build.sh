#!/usr/bin/env bash
# Builds bin/ferry with the version from git.
set -euo pipefail
cd "$(dirname "$0")/.."
v=$(git describe --always --dirty 2>/dev/null || echo dev)
mkdir -p bin
# The commit, its time and a dirty tree come from Go's build information;
# the version text is git describe's.
go build -trimpath -buildvcs=auto -ldflags "-s -w -X github.com/ferry-io/ferry/internal/version.override=$v" -o bin/ferry ./cmd/ferry
echo "built bin/ferry ($v)"
