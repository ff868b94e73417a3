#!/usr/bin/env bash
# Starts a development node: memory broker, no config needed.
set -euo pipefail
cd "$(dirname "$0")/.."
exec go run ./cmd/ferry serve --dev "$@"
