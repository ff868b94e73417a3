#!/usr/bin/env bash
# Fails when protocol/ferry/v1/ferry.pb.go is not what scripts/gen-proto.sh
# makes of ferry.proto (someone edited the schema and did not regenerate, or
# edited the generated code). The line naming protoc's own version is left
# out of the comparison: it differs between Debian releases while the code
# does not.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
OUT="$tmp" bash scripts/gen-proto.sh
strip() { grep -v '^// 	protoc  ' "$1"; }
if ! diff <(strip protocol/ferry/v1/ferry.pb.go) <(strip "$tmp/ferry/v1/ferry.pb.go") >"$tmp/diff"; then
  echo "protocol/ferry/v1/ferry.pb.go is stale: run scripts/gen-proto.sh and commit" >&2
  head -50 "$tmp/diff" >&2
  exit 1
fi
echo "protocol/ferry/v1/ferry.pb.go is up to date"
