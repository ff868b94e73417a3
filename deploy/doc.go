// Package deploy holds no code. Its tests check the operations kit kept in
// this directory against the real programs that use it: the alerting rules
// in prometheus/ loaded by a real Prometheus (Debian's package) scraping
// real nodes, and the Helm chart, the systemd unit and the Dockerfile for
// the properties an operator relies on (probes, drain, limits).
//
// The rules' own unit tests (promtool test rules) and the systemd-analyze
// check run from scripts/test-ops.sh; the dashboard's queries are checked
// by the separate module in grafana/querytest, which needs the Prometheus
// query parser.
package deploy
