// Package web holds the pages a Ferry node serves, embedded in the
// binary: the playground (playground.html, development mode only), a page
// that connects with the dev banner's token through the TypeScript SDK and
// shows subscribe, publish, history, presence, the live transport and a
// forced fallback; and the admin page's files (admin/, see Admin), served
// by internal/admin when an admin secret is configured.
//
// playground.html is built from clients/js (the SDK and
// clients/js/playground) by scripts/build-web.sh and committed, so that
// `go build` never needs npm; CI checks that the committed file is what
// the script builds.
package web
