package admin

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const testSecret = "admin-secret-0123456789"

// fakeClock is a settable time source: unix nanoseconds.
type fakeClock struct{ atomic.Int64 }

func (c *fakeClock) Now() time.Time { return time.Unix(0, c.Load()) }

// recordingAPI stands in for the server API's routes (api.Routes, tested in
// internal/api and through the real node in package server): it records
// what the admin handler forwarded.
type recordingAPI struct {
	mu    sync.Mutex
	calls []string
}

func (a *recordingAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.calls = append(a.calls, r.Method+" "+r.URL.Path+" cookie="+r.Header.Get("Cookie"))
	a.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"ok":true}`))
}

func (a *recordingAPI) list() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.calls...)
}

type staticSource struct{}

func (staticSource) AdminSnapshot(now time.Time) Snapshot {
	b := NewBuilder("n1", now)
	b.AddConn(Conn{ID: "c1", User: "alice", Opened: 1})
	return b.Snapshot(nil, nil)
}

type fixture struct {
	h     http.Handler
	clock *fakeClock
	api   *recordingAPI
}

func newFixture(t *testing.T, mutate func(*Options)) *fixture {
	t.Helper()
	f := &fixture{clock: &fakeClock{}, api: &recordingAPI{}}
	f.clock.Store(time.Unix(1_700_000_000, 0).UnixNano())
	o := Options{Secret: testSecret, API: f.api, Source: staticSource{}, Clock: f.clock.Now, FailureBurst: 3, FailureRate: 0.1}
	if mutate != nil {
		mutate(&o)
	}
	h, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	f.h = h
	return f
}

// do serves one request; headers are "Name: value" strings.
func (f *fixture) do(method, target, body string, headers ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, "http://admin.test"+target, strings.NewReader(body))
	if method == http.MethodPost && !strings.HasPrefix(target, "/admin/api/") {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	return w
}

// login logs in and returns the session cookie ("Cookie: ..." header) and
// the page's CSRF token.
func (f *fixture) login(t *testing.T) (cookie, csrf string) {
	t.Helper()
	w := f.do("POST", "/admin/login", "secret="+url.QueryEscape(testSecret), "Origin: http://admin.test", "Sec-Fetch-Site: same-origin")
	if w.Code != http.StatusSeeOther {
		t.Fatalf("login: %d %s", w.Code, w.Body)
	}
	var c *http.Cookie
	for _, k := range w.Result().Cookies() {
		if k.Name == CookieName {
			c = k
		}
	}
	if c == nil {
		t.Fatal("login set no session cookie")
	}
	cookie = "Cookie: " + CookieName + "=" + c.Value
	page := f.do("GET", "/admin", "", cookie)
	m := regexp.MustCompile(`name="ferry-csrf" content="([0-9a-f]+)"`).FindStringSubmatch(page.Body.String())
	if m == nil {
		t.Fatalf("the dashboard has no CSRF token:\n%s", page.Body)
	}
	return cookie, m[1]
}

func TestNewRefusesMissingParts(t *testing.T) {
	for name, o := range map[string]Options{
		"no secret": {API: &recordingAPI{}, Source: staticSource{}},
		"no api":    {Secret: testSecret, Source: staticSource{}},
		"no source": {Secret: testSecret, API: &recordingAPI{}},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
}

func TestOffAnswers404WithHowToEnable(t *testing.T) {
	w := httptest.NewRecorder()
	Off("set admin.secret").ServeHTTP(w, httptest.NewRequest("GET", "/admin", nil))
	if w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), "the admin page is off: set admin.secret") {
		t.Fatalf("off: %d %s", w.Code, w.Body)
	}
}

func TestLoginSetsAStrictHttpOnlyCookie(t *testing.T) {
	f := newFixture(t, nil)
	if w := f.do("GET", "/admin", ""); w.Code != 200 || !strings.Contains(w.Body.String(), `action="/admin/login"`) {
		t.Fatalf("without a session /admin must show the login form: %d %s", w.Code, w.Body)
	}
	w := f.do("POST", "/admin/login", "secret="+url.QueryEscape(testSecret), "Origin: http://admin.test")
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/admin" {
		t.Fatalf("login: %d %v", w.Code, w.Header())
	}
	set := w.Header().Get("Set-Cookie")
	for _, want := range []string{CookieName + "=", "Path=/admin", "HttpOnly", "SameSite=Strict", "Max-Age=900"} {
		if !strings.Contains(set, want) {
			t.Errorf("Set-Cookie %q lacks %q", set, want)
		}
	}
	if strings.Contains(set, testSecret) {
		t.Error("the cookie carries the secret itself")
	}
}

func TestEveryAnswerHasTheSecurityHeaders(t *testing.T) {
	f := newFixture(t, nil)
	for _, target := range []string{"/admin", "/admin/assets/app.js", "/admin/nothing", "/admin/api/stats"} {
		w := f.do("GET", target, "")
		csp := w.Header().Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") {
			t.Errorf("%s: Content-Security-Policy %q", target, csp)
		}
		if w.Header().Get("X-Content-Type-Options") != "nosniff" || w.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("%s: headers %v", target, w.Header())
		}
	}
	if w := f.do("GET", "/admin/assets/app.js", ""); w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/javascript") {
		t.Errorf("app.js: %d %q", w.Code, w.Header().Get("Content-Type"))
	}
	if w := f.do("GET", "/admin/assets/index.html", ""); w.Code != http.StatusNotFound {
		t.Errorf("the page templates must not be served raw: %d", w.Code)
	}
}

func TestWrongSecretIs401ThenRateLimited(t *testing.T) {
	f := newFixture(t, nil) // burst 3, 0.1 per second
	for i := range 3 {
		w := f.do("POST", "/admin/login", "secret=wrong-"+string(rune('a'+i)))
		if w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), "wrong admin secret") {
			t.Fatalf("wrong secret %d: %d %s", i, w.Code, w.Body)
		}
		if w.Header().Get("Set-Cookie") != "" {
			t.Fatal("a failed login set a cookie")
		}
	}
	// The bucket is empty: refused before the secret is looked at, even
	// the right one.
	w := f.do("POST", "/admin/login", "secret="+url.QueryEscape(testSecret))
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" || w.Header().Get("Set-Cookie") != "" {
		t.Fatalf("after the burst: %d %v", w.Code, w.Header())
	}
	// Another address is not affected.
	r := httptest.NewRequest("POST", "http://admin.test/admin/login", strings.NewReader("secret="+url.QueryEscape(testSecret)))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.RemoteAddr = "192.0.2.9:1234"
	w2 := httptest.NewRecorder()
	f.h.ServeHTTP(w2, r)
	if w2.Code != http.StatusSeeOther {
		t.Fatalf("another address: %d", w2.Code)
	}
	// The bucket refills (0.1/s: one token in 10 s).
	f.clock.Add(int64(11 * time.Second))
	if w := f.do("POST", "/admin/login", "secret="+url.QueryEscape(testSecret)); w.Code != http.StatusSeeOther {
		t.Fatalf("after the refill: %d %s", w.Code, w.Body)
	}
}

func TestSecretInTheURLLogsNobodyIn(t *testing.T) {
	f := newFixture(t, nil)
	w := f.do("POST", "/admin/login?secret="+url.QueryEscape(testSecret), "")
	if w.Code != http.StatusUnauthorized {
		t.Fatalf("a secret in the query string: %d", w.Code)
	}
}

func TestSessionExpires(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.SessionTTL = time.Minute })
	cookie, _ := f.login(t)
	if w := f.do("GET", "/admin/api/stats", "", cookie); w.Code != 200 {
		t.Fatalf("stats with a fresh session: %d", w.Code)
	}
	f.clock.Add(int64(59 * time.Second))
	if w := f.do("GET", "/admin", "", cookie); !strings.Contains(w.Body.String(), "ferry-csrf") {
		t.Fatal("the session ended early")
	}
	f.clock.Add(int64(time.Second))
	if w := f.do("GET", "/admin", "", cookie); !strings.Contains(w.Body.String(), `action="/admin/login"`) {
		t.Fatalf("an expired session still sees the dashboard:\n%s", w.Body)
	}
	if w := f.do("GET", "/admin/api/stats", "", cookie); w.Code != http.StatusUnauthorized {
		t.Fatalf("API with an expired session: %d", w.Code)
	}
	if w := f.do("GET", "/admin/stream", "", cookie); w.Code != http.StatusUnauthorized {
		t.Fatalf("stream with an expired session: %d", w.Code)
	}
	if w := f.do("GET", "/admin/api/stats", "", "Cookie: "+CookieName+"=made-up"); w.Code != http.StatusUnauthorized {
		t.Fatalf("API with a made-up session: %d", w.Code)
	}
}

func TestCSRFIsRequiredForChanges(t *testing.T) {
	f := newFixture(t, nil)
	cookie, csrf := f.login(t)
	body := `{"user":"alice"}`
	for name, hdrs := range map[string][]string{
		"no token":       {cookie},
		"wrong token":    {cookie, "X-CSRF-Token: " + strings.Repeat("0", len(csrf))},
		"cross-site":     {cookie, "X-CSRF-Token: " + csrf, "Origin: https://evil.example", "Sec-Fetch-Site: cross-site"},
		"foreign origin": {cookie, "X-CSRF-Token: " + csrf, "Origin: https://evil.example"},
	} {
		if w := f.do("POST", "/admin/api/disconnect", body, hdrs...); w.Code != http.StatusForbidden {
			t.Errorf("%s: %d %s", name, w.Code, w.Body)
		}
	}
	if calls := f.api.list(); len(calls) != 0 {
		t.Fatalf("refused requests reached the API: %v", calls)
	}
	if w := f.do("POST", "/admin/api/disconnect", body, cookie, "X-CSRF-Token: "+csrf, "Origin: http://admin.test", "Sec-Fetch-Site: same-origin"); w.Code != 200 {
		t.Fatalf("with the token: %d %s", w.Code, w.Body)
	}
	calls := f.api.list()
	if len(calls) != 1 || calls[0] != "POST /v1/api/disconnect cookie=" {
		t.Fatalf("forwarded %v, want one POST /v1/api/disconnect without the admin cookie", calls)
	}
	// Logout needs the token too.
	if w := f.do("POST", "/admin/logout", "", cookie); w.Code != http.StatusForbidden {
		t.Fatalf("logout without the token: %d", w.Code)
	}
	if w := f.do("POST", "/admin/logout", "csrf="+csrf, cookie); w.Code != http.StatusSeeOther {
		t.Fatalf("logout: %d %s", w.Code, w.Body)
	}
	if w := f.do("GET", "/admin/api/stats", "", cookie); w.Code != http.StatusUnauthorized {
		t.Fatalf("the session outlived its logout: %d", w.Code)
	}
}

func TestLoginFromAnotherSiteIsRefused(t *testing.T) {
	f := newFixture(t, nil)
	for _, hdr := range []string{"Origin: https://evil.example", "Sec-Fetch-Site: cross-site", "Origin: null"} {
		w := f.do("POST", "/admin/login", "secret="+url.QueryEscape(testSecret), hdr)
		if w.Code != http.StatusForbidden || w.Header().Get("Set-Cookie") != "" {
			t.Errorf("%s: %d", hdr, w.Code)
		}
	}
}

func TestOnlyTheAllowedAPICallsAreOffered(t *testing.T) {
	f := newFixture(t, nil)
	cookie, csrf := f.login(t)
	for _, c := range []struct{ method, call string }{{"POST", "publish"}, {"POST", "broadcast"}, {"GET", "disconnect"}, {"DELETE", "history"}} {
		if w := f.do(c.method, "/admin/api/"+c.call, `{}`, cookie, "X-CSRF-Token: "+csrf); w.Code != http.StatusNotFound {
			t.Errorf("%s %s: %d", c.method, c.call, w.Code)
		}
	}
	for _, call := range []string{"history?channel=chat:a", "presence?channel=chat:a", "stats"} {
		if w := f.do("GET", "/admin/api/"+call, "", cookie); w.Code != 200 {
			t.Errorf("GET %s: %d", call, w.Code)
		}
	}
	if got := len(f.api.list()); got != 3 {
		t.Fatalf("%d calls reached the API, want the 3 allowed GETs", got)
	}
}

func TestStreamSendsReportsUntilLogout(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.Interval = 10 * time.Millisecond })
	cookie, csrf := f.login(t)
	srv := httptest.NewServer(f.h)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/admin/stream", nil)
	req.Header.Set("Cookie", strings.TrimPrefix(cookie, "Cookie: "))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	next := func() (event, data string) {
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				data = strings.TrimPrefix(line, "data: ")
			case line == "" && event != "":
				return event, data
			}
		}
		t.Fatalf("stream ended: %v", sc.Err())
		return "", ""
	}
	for range 2 {
		ev, data := next()
		var s Snapshot
		if ev != "report" || json.Unmarshal([]byte(data), &s) != nil || s.Node != "n1" || len(s.Conns) != 1 || s.Conns[0].User != "alice" {
			t.Fatalf("event %q %s", ev, data)
		}
	}
	if w := f.do("POST", "/admin/logout", "csrf="+csrf, cookie); w.Code != http.StatusSeeOther {
		t.Fatalf("logout: %d", w.Code)
	}
	for {
		if ev, _ := next(); ev == "expired" {
			break
		}
	}
	if _, err := io.ReadAll(resp.Body); err != nil {
		t.Fatalf("the stream did not end after expired: %v", err)
	}
}

func TestStreamsAreCapped(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.MaxStreams = 1; o.Interval = time.Hour })
	cookie, _ := f.login(t)
	srv := httptest.NewServer(f.h)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	open := func() *http.Response {
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/admin/stream", nil)
		req.Header.Set("Cookie", strings.TrimPrefix(cookie, "Cookie: "))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	first := open()
	defer first.Body.Close()
	second := open()
	defer second.Body.Close()
	if first.StatusCode != 200 || second.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("first %d, second %d: want 200 and 503", first.StatusCode, second.StatusCode)
	}
}
