#!/usr/bin/env bash
# Regenerates clients/js/src/gen/ferry/v1/ferry_pb.ts from
# protocol/ferry/v1/ferry.proto, for the @ferry/client/protobuf entry.
#
# protoc comes from Debian (apt package protobuf-compiler); the plugin is
# @bufbuild/protoc-gen-es at the version pinned in package-lock.json
# (installed by npm ci). With OUT=dir the code is written under dir instead
# of src/gen (scripts/test-js.sh compares it with the committed file).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v protoc >/dev/null 2>&1; then
  echo "gen-proto: protoc is missing: apt-get install -y protobuf-compiler" >&2
  exit 1
fi
plugin=node_modules/.bin/protoc-gen-es
if [ ! -x "$plugin" ]; then
  echo "gen-proto: $plugin is missing: run npm ci in clients/js" >&2
  exit 1
fi

out=${OUT:-src/gen}
mkdir -p "$out"
protoc -I ../../protocol \
  --plugin=protoc-gen-es="$plugin" \
  --es_out="$out" --es_opt=target=ts,import_extension=js \
  ferry/v1/ferry.proto
