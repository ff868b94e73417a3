package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/ferry-io/ferry/internal/auth"
)

// tokenTTL is how long a visitor's token lasts; the SDK reconnects with a
// fresh one from /config.json (its getToken) when it runs out.
const tokenTTL = time.Hour

// userName guards /config.json: a visitor picks a short plain name, which
// becomes the token's subject (and so the presence and "from" user id).
var userName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,40}$`)

// Mux returns the page server's handler: the page (o.Web) at /, the node at
// /v1/, and /config.json. The app adds its own routes to the returned mux.
func (o *Options) Mux() (*http.ServeMux, error) {
	mux := http.NewServeMux()
	if err := Mount(mux, "", o.Ferry, o.BlockWebSocket); err != nil {
		return nil, err
	}
	mux.Handle("/", http.FileServer(http.Dir(o.Web)))
	mux.HandleFunc("GET /config.json", func(w http.ResponseWriter, r *http.Request) {
		user := r.URL.Query().Get("user")
		if !userName.MatchString(user) {
			http.Error(w, "config.json: want ?user=NAME (1-40 letters, digits, '_', '.', '-')", http.StatusBadRequest)
			return
		}
		tok, err := auth.Mint([]byte(o.Secret), user, tokenTTL, nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		WriteJSON(w, map[string]any{"user": user, "token": tok})
	})
	return mux, nil
}

// Mount forwards prefix+"/v1/" to the node at target (its /v1/ paths), so
// a page reaches several nodes from one origin ("" mounts at /v1/).
// blockWS refuses WebSocket upgrades with 403 before they reach the node.
func Mount(mux *http.ServeMux, prefix, target string, blockWS bool) error {
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("node URL %q: want http://host:port", target)
	}
	if prefix != "" && (!strings.HasPrefix(prefix, "/") || strings.HasSuffix(prefix, "/")) {
		return fmt.Errorf("mount prefix %q: want /name", prefix)
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.URL.Path = strings.TrimSuffix(u.Path, "/") + strings.TrimPrefix(pr.In.URL.Path, prefix)
			pr.Out.URL.RawPath = ""
			// The node checks Origin against its own; the page's origin is
			// this server, which the node (in --dev) allows as loopback.
		},
		// Long-poll and SSE answers must not wait in a buffer.
		FlushInterval: -1,
	}
	mux.Handle(prefix+"/v1/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if blockWS && strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			http.Error(w, "WebSocket blocked by this proxy (--block-websocket)", http.StatusForbidden)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	return nil
}

// WriteJSON writes v as a JSON reply.
func WriteJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(v)
}

// Serve listens on addr, prints "listening on http://HOST:PORT" to out (the
// tests read it to learn a random port) and serves h until ctx ends.
func Serve(ctx context.Context, addr string, h http.Handler, out io.Writer) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(out, "listening on http://%s\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		return nil
	}
}
