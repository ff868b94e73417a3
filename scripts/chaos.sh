#!/usr/bin/env bash
# The fault matrix (chaos: TestMatrix): every fault x every transport, with
# the history checker. The short form is what CI runs (as part of
# scripts/test.sh); this script runs either form and writes the matrix as
# a Markdown table.
#
#   scripts/chaos.sh [--long] [--strict] [--race] [--out FILE]
#
#   --long    publish longer around each fault (30 s faults; about 15 min)
#   --strict  fail on the known issues too (FERRY_CHAOS_STRICT=1)
#   --race    build the nodes with the race detector (FERRY_CLUSTER_RACE=1)
#   --out     where the table goes (default: printed only)
#
# It needs redis-server and redis-sentinel (Debian).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=short strict=0 race=0 out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --long) mode=long; shift ;;
    --strict) strict=1; shift ;;
    --race) race=1; shift ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "chaos.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
report=$(mktemp) log=$(mktemp)
trap 'rm -f "$report" "$log"' EXIT
rc=0
FERRY_CHAOS=$mode FERRY_CHAOS_STRICT=$strict FERRY_CLUSTER_RACE=$race FERRY_CHAOS_REPORT="$report" \
  go test -count=1 -timeout 60m -run '^TestMatrix$' -v ./chaos/ >"$log" 2>&1 || rc=$?
grep -E '^\s*(--- |ok |FAIL|PASS)|matrix_test\.go:[0-9]+: ' "$log" | grep -E -v '"time"' || true
cat "$report"
[ -z "$out" ] || cp "$report" "$out"
if [ "$rc" != 0 ]; then
  echo "chaos: FAILED (go test exit $rc)"
  tail -60 "$log"
fi
exit "$rc"
