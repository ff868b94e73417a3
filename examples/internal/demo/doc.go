// Package demo is what the example apps (examples/ticker, auction, sensors,
// editor) share: the flags that point an app at a running Ferry node, a
// page server that serves the app's built page and forwards /v1/ to the
// node (so the page and the node share one origin), a /config.json that
// hands each visitor a short-lived connection token, and a small client of
// the node's server API (/v1/api/...).
//
// Nothing here is part of Ferry itself: it is the glue a real application
// would have in its own back end, kept small so each app's main.go shows
// only what is particular to its scenario.
package demo
