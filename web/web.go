package web

import (
	_ "embed"
	"net/http"
)

//go:embed playground.html
var playground []byte

// Playground serves the playground page. It is meant for `ferry serve
// --dev` only: the page asks for a token and keeps it in the browser.
func Playground() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		// The page runs only its own inline script and talks to its own
		// node (or one the user types in).
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src *; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(playground)
	})
}
