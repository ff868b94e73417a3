// Package querytest checks the Grafana dashboard (../ferry.json): every
// panel's query parses as PromQL (with the Prometheus server's own parser)
// and names only metrics a Ferry node exports, as internal/metrics serves
// them.
//
// It is a module of its own because the parser lives in the Prometheus
// server's module, whose dependency graph (cloud SDKs, Kubernetes clients)
// would otherwise enter Ferry's go.mod and go.sum for one test. Being
// inside github.com/ferry-io/ferry's import path, it may still import
// Ferry's internal packages (through the replace directive). Run it with
// `cd deploy/grafana/querytest && go test ./...` (scripts/test-ops.sh does).
package querytest
