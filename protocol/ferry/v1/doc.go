// Package ferryv1 is the Go code generated from ferry.proto, the schema of
// the "ferry.v1.protobuf" subprotocol. Do not edit ferry.pb.go: change
// ferry.proto and run scripts/gen-proto.sh (CI checks that the two agree).
//
// Servers and Go clients do not use these types directly: protocol.Protobuf
// converts between them and Ferry's frames. They are here for programs that
// want the raw protobuf messages, and as the reference for other languages.
package ferryv1
