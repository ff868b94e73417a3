#!/usr/bin/env bash
# Regenerates protocol/ferry/v1/ferry.pb.go from ferry.proto.
#
# protoc comes from Debian (apt package protobuf-compiler). protoc-gen-go is
# installed at exactly the version of google.golang.org/protobuf in go.mod,
# into a private directory, so that the generated code matches the runtime
# the module builds with.
#
# With OUT=dir, the code is written under dir instead of protocol/ (used by
# scripts/check-proto.sh to compare without touching the tree).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v protoc >/dev/null 2>&1; then
  echo "gen-proto: protoc is missing: apt-get install -y protobuf-compiler" >&2
  exit 1
fi

version=$(go list -m -f '{{.Version}}' google.golang.org/protobuf)
bin=${PROTOC_GEN_GO_DIR:-$(go env GOPATH)/protoc-gen-go/$version}
if [ ! -x "$bin/protoc-gen-go" ]; then
  echo "== installing protoc-gen-go $version into $bin"
  GOBIN="$bin" go install "google.golang.org/protobuf/cmd/protoc-gen-go@$version"
fi

out=${OUT:-protocol}
mkdir -p "$out"
PATH="$bin:$PATH" protoc -I protocol \
  --go_out="$out" --go_opt=paths=source_relative \
  ferry/v1/ferry.proto
