package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"net/netip"
	"path"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/ferry-io/ferry/internal/auth"
	"github.com/ferry-io/ferry/web"
)

// Source builds the snapshots the stream sends.
type Source interface {
	// AdminSnapshot reports the node at now. It is called once per open
	// stream per Interval, never on the delivery path.
	AdminSnapshot(now time.Time) Snapshot
}

// Defaults of Options.
const (
	DefaultSessionTTL   = 15 * time.Minute
	DefaultInterval     = time.Second
	DefaultFailureRate  = auth.DefaultFailureRate
	DefaultFailureBurst = auth.DefaultFailureBurst
	// DefaultMaxStreams caps the open admin streams of a node.
	DefaultMaxStreams = 16
)

// Options configure the admin handler. The zero value of every field means
// its documented default, except Secret, API and Source, which are
// required.
type Options struct {
	// Secret is what the login form must be given (required).
	Secret string
	// SessionTTL is how long a login lasts. Default DefaultSessionTTL.
	SessionTTL time.Duration
	// API serves the server API's calls without their key check
	// (api.Routes); the page's actions are forwarded to it (required).
	API http.Handler
	// Source builds the stream's snapshots (required).
	Source Source
	// Interval is the time between two snapshots of a stream. Default
	// DefaultInterval.
	Interval time.Duration
	// FailureRate and FailureBurst limit failed logins per client
	// address, as api.Options does for the API's failed authentications.
	// Defaults DefaultFailureRate and DefaultFailureBurst; a negative rate
	// turns the limit off.
	FailureRate  float64
	FailureBurst int
	// MaxStreams caps the admin streams open at once. Default
	// DefaultMaxStreams.
	MaxStreams int
	// ClientIP returns the address a request comes from. Default: the TCP
	// peer.
	ClientIP func(*http.Request) netip.Addr
	// Logger receives the handler's logs. Default: discarded.
	Logger *slog.Logger
	// Clock is the time source (sessions, the limiter). Default time.Now.
	Clock func() time.Time
}

// apiCalls are the server API calls the page may make, by method and name:
// the read-only ones and disconnect. Publish and broadcast are not
// offered.
var apiCalls = map[string]bool{
	"POST disconnect": true,
	"GET history":     true,
	"GET presence":    true,
	"GET stats":       true,
}

// securityHeaders go on every admin response: only the page's own files
// may run or style it, it talks only to its own origin, and it cannot be
// framed.
var securityHeaders = map[string]string{
	"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
	"X-Content-Type-Options":  "nosniff",
	"X-Frame-Options":         "DENY",
	// same-origin, not no-referrer: with no-referrer browsers send
	// "Origin: null" on the login form, which sameOrigin must refuse.
	"Referrer-Policy": "same-origin",
	"Cache-Control":   "no-store",
}

type handler struct {
	o        Options
	secret   [32]byte // sha256 of the secret
	logins   *logins
	failures *auth.HandshakeLimiter // failed logins per address; nil: no limit
	streams  atomic.Int32           // open streams
	mux      *http.ServeMux
	pages    *template.Template
	assets   fs.FS
}

// New returns the admin handler for the paths /admin and /admin/...
func New(o Options) (http.Handler, error) {
	if o.Secret == "" || o.API == nil || o.Source == nil {
		return nil, fmt.Errorf("admin: Secret, API and Source are required")
	}
	if o.SessionTTL <= 0 {
		o.SessionTTL = DefaultSessionTTL
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.MaxStreams <= 0 {
		o.MaxStreams = DefaultMaxStreams
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.ClientIP == nil {
		o.ClientIP = func(r *http.Request) netip.Addr { return auth.ClientIP(r, nil) }
	}
	assets, err := fs.Sub(web.Admin, "admin")
	if err != nil {
		return nil, fmt.Errorf("admin: assets: %w", err)
	}
	pages, err := template.ParseFS(assets, "*.html")
	if err != nil {
		return nil, fmt.Errorf("admin: pages: %w", err)
	}
	h := &handler{o: o, secret: sha256.Sum256([]byte(o.Secret)), logins: newLogins(o.SessionTTL), pages: pages, assets: assets}
	h.failures = auth.NewFailureLimiter(o.FailureRate, o.FailureBurst, o.Clock)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /admin", h.page)
	mux.HandleFunc("GET /admin/{$}", h.page)
	mux.HandleFunc("POST /admin/login", h.login)
	mux.HandleFunc("POST /admin/logout", h.logout)
	mux.HandleFunc("GET /admin/stream", h.stream)
	mux.HandleFunc("GET /admin/assets/{name}", h.asset)
	mux.HandleFunc("/admin/api/{call}", h.api)
	mux.HandleFunc("/admin/", func(w http.ResponseWriter, r *http.Request) {
		jsonError(w, http.StatusNotFound, fmt.Sprintf("no admin page %s %s", r.Method, r.URL.Path))
	})
	h.mux = mux
	return h, nil
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	for k, v := range securityHeaders {
		w.Header().Set(k, v)
	}
	h.mux.ServeHTTP(w, r)
}

// session returns the request's session token when it is a live one.
func (h *handler) session(r *http.Request) (tok string, exp time.Time, ok bool) {
	tok = sessionToken(r)
	exp, ok = h.logins.expiry(tok, h.o.Clock())
	return tok, exp, ok
}

type loginPage struct {
	Error string
}

type dashboardPage struct {
	CSRF    string
	Expires int64 // unix milliseconds
}

// page serves the dashboard to a logged-in browser, else the login form.
func (h *handler) page(w http.ResponseWriter, r *http.Request) {
	tok, exp, ok := h.session(r)
	if !ok {
		h.render(w, http.StatusOK, "login.html", loginPage{})
		return
	}
	h.render(w, http.StatusOK, "index.html", dashboardPage{CSRF: h.logins.csrf(tok), Expires: exp.UnixMilli()})
}

func (h *handler) render(w http.ResponseWriter, status int, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := h.pages.ExecuteTemplate(w, name, data); err != nil {
		h.o.Logger.Error("admin: render page", slog.String("page", name), slog.Any("err", err))
	}
}

// login trades the secret for a session cookie.
func (h *handler) login(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		h.render(w, http.StatusForbidden, "login.html", loginPage{Error: "login refused: the form was not sent from this page (cross-site request)"})
		return
	}
	ip := h.o.ClientIP(r)
	// Refused before the secret is compared: an address over its limit
	// learns nothing about the secret it sent.
	if h.failures != nil {
		if blocked, wait := h.failures.Blocked(ip); blocked {
			secs := auth.RetryAfterSeconds(wait)
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			h.render(w, http.StatusTooManyRequests, "login.html", loginPage{Error: fmt.Sprintf("too many failed logins from this address: retry after %d s", secs)})
			return
		}
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	if err := r.ParseForm(); err != nil {
		h.render(w, http.StatusBadRequest, "login.html", loginPage{Error: "bad login form: " + err.Error()})
		return
	}
	sum := sha256.Sum256([]byte(r.PostForm.Get("secret")))
	if subtle.ConstantTimeCompare(sum[:], h.secret[:]) != 1 {
		if h.failures != nil {
			h.failures.Allow(ip)
		}
		h.o.Logger.Warn("admin: login failed", slog.String("client_ip", auth.TruncateIP(ip)))
		h.render(w, http.StatusUnauthorized, "login.html", loginPage{Error: "wrong admin secret"})
		return
	}
	tok := h.logins.add(h.o.Clock())
	setCookie(w, r, tok, h.o.SessionTTL)
	h.o.Logger.Info("admin: login", slog.String("client_ip", auth.TruncateIP(ip)))
	http.Redirect(w, r, "/admin", http.StatusSeeOther)
}

// logout ends the session; the CSRF token comes in the form.
func (h *handler) logout(w http.ResponseWriter, r *http.Request) {
	tok, _, ok := h.session(r)
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	if !ok || !sameOrigin(r) || r.ParseForm() != nil || !h.logins.csrfOK(tok, r.PostForm.Get("csrf")) {
		jsonError(w, http.StatusForbidden, "logout refused: no session, or a missing or wrong CSRF token")
		return
	}
	h.logins.remove(tok)
	setCookie(w, r, "", 0)
	http.Redirect(w, r, "/admin", http.StatusSeeOther)
}

// asset serves the page's script and style.
func (h *handler) asset(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if path.Ext(name) == ".html" {
		jsonError(w, http.StatusNotFound, "no admin asset "+name)
		return
	}
	b, err := fs.ReadFile(h.assets, name)
	if err != nil {
		jsonError(w, http.StatusNotFound, "no admin asset "+name)
		return
	}
	w.Header().Set("Content-Type", mime.TypeByExtension(path.Ext(name)))
	_, _ = w.Write(b)
}

// api forwards an allowed call to the server API's handlers, for a live
// session; a call with a body that changes something needs the CSRF token
// in X-CSRF-Token.
func (h *handler) api(w http.ResponseWriter, r *http.Request) {
	tok, _, ok := h.session(r)
	if !ok {
		jsonError(w, http.StatusUnauthorized, "not logged in, or the login expired: log in at /admin")
		return
	}
	call := r.PathValue("call")
	if !apiCalls[r.Method+" "+call] {
		jsonError(w, http.StatusNotFound, fmt.Sprintf("the admin page offers no API call %s %s", r.Method, call))
		return
	}
	if r.Method != http.MethodGet && (!sameOrigin(r) || !h.logins.csrfOK(tok, r.Header.Get("X-CSRF-Token"))) {
		jsonError(w, http.StatusForbidden, "refused: a missing or wrong CSRF token (X-CSRF-Token), or a cross-site request")
		return
	}
	fwd := r.Clone(r.Context())
	fwd.URL.Path = "/v1/api/" + call
	fwd.URL.RawPath = ""
	fwd.Header.Del("Cookie")
	if r.Method != http.MethodGet {
		h.o.Logger.Info("admin: action", slog.String("call", call), slog.String("client_ip", auth.TruncateIP(h.o.ClientIP(r))))
	}
	h.o.API.ServeHTTP(w, fwd)
}

// stream sends a Snapshot every Interval as a server-sent event, until the
// client leaves or the session ends (then an "expired" event).
func (h *handler) stream(w http.ResponseWriter, r *http.Request) {
	tok, _, ok := h.session(r)
	if !ok {
		jsonError(w, http.StatusUnauthorized, "not logged in, or the login expired: log in at /admin")
		return
	}
	if int(h.streams.Add(1)) > h.o.MaxStreams {
		h.streams.Add(-1)
		w.Header().Set("Retry-After", "5")
		jsonError(w, http.StatusServiceUnavailable, fmt.Sprintf("too many admin streams open (%d): close a page", h.o.MaxStreams))
		return
	}
	defer h.streams.Add(-1)
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	t := time.NewTicker(h.o.Interval)
	defer t.Stop()
	for {
		now := h.o.Clock()
		// Checked before each event: a logout or an expiry ends the
		// stream too.
		if _, live := h.logins.expiry(tok, now); !live {
			_, _ = fmt.Fprint(w, "event: expired\ndata: {}\n\n")
			_ = rc.Flush()
			return
		}
		if err := writeEvent(w, "report", h.o.Source.AdminSnapshot(now)); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-t.C:
		}
	}
}

func writeEvent(w http.ResponseWriter, event string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b)
	return err
}

func jsonError(w http.ResponseWriter, status int, reason string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": status, "reason": reason}})
}

// Off returns the handler for /admin when no secret is configured: 404 with
// how to turn the page on.
func Off(how string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		jsonError(w, http.StatusNotFound, "the admin page is off: "+how)
	})
}
