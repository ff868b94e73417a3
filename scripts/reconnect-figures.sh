#!/usr/bin/env bash
# Measures how long Go SDK clients with the SDK's DEFAULT settings (backoff
# Initial 1 s, jitter 0.2) take to reconnect after a node is killed
# (SIGKILL) and after a node is drained (SIGTERM), on a real three-node
# cluster on Redis behind nginx: the figures docs/operations.md quotes.
# The cluster tests otherwise run with Initial 250 ms to save time.
#
# Timing figures need a quiet machine: on a loaded one they come out slower.
# The "sdkN" lines give each Go SDK client's reconnect times (the "rawN"
# clients are protocol-level ones with their own backoff); "TOTAL:" lines
# mix both.
set -euo pipefail
cd "$(dirname "$0")/.."
FERRY_CLUSTER_SDK_DEFAULTS=1 go test -count=1 -v \
  -run 'TestKillNodeDuringTraffic/redis|TestRollingRestart' ./cluster |
  grep -E '^(=== RUN|--- |\s+\S+_test\.go:[0-9]+: (TOTAL|sdk[0-9]+ |killed|every subscriber|node[0-9]+: drained|.*(want|lost|got)))|^(ok|FAIL)'
