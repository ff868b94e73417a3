// Package version says which build of Ferry is running, for `ferry
// version`, the ferry_build_info metric and the logs.
//
// Everything comes from the build information the Go toolchain embeds in
// the binary (runtime/debug.ReadBuildInfo): the main module's version (a
// tag such as v1.2.0 for `go install github.com/ferry-io/ferry/cmd/ferry@v1.2.0`,
// a pseudo-version or "(devel)" for a build from a checkout) and, for a
// build from a git checkout, the commit, its time and whether the tree had
// uncommitted changes. A release build may set the version text with
// -ldflags "-X github.com/ferry-io/ferry/internal/version.override=v1.2.0";
// the commit still comes from the build information.
package version
