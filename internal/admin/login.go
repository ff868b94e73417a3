package admin

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// CookieName is the admin session's cookie.
const CookieName = "ferry_admin"

// maxLogins caps the sessions kept: a new login past it pushes out the one
// closest to expiry.
const maxLogins = 64

// logins are the admin sessions: the hash of each session token and its
// expiry. The token itself lives only in the browser's cookie.
type logins struct {
	ttl     time.Duration
	csrfKey [32]byte // random per process: CSRF tokens die with it
	mu      sync.Mutex
	m       map[[32]byte]time.Time // guarded by mu
}

func newLogins(ttl time.Duration) *logins {
	l := &logins{ttl: ttl, m: map[[32]byte]time.Time{}}
	_, _ = rand.Read(l.csrfKey[:])
	return l
}

// add starts a session at now and returns its token.
func (l *logins) add(now time.Time) string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	tok := base64.RawURLEncoding.EncodeToString(b[:])
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expireLocked(now)
	if len(l.m) >= maxLogins {
		var oldest [32]byte
		var at time.Time
		for k, exp := range l.m {
			if at.IsZero() || exp.Before(at) {
				oldest, at = k, exp
			}
		}
		delete(l.m, oldest)
	}
	l.m[sha256.Sum256([]byte(tok))] = now.Add(l.ttl)
	return tok
}

// expiry returns when the session of tok ends; ok is false when there is
// no such session or it has ended.
func (l *logins) expiry(tok string, now time.Time) (exp time.Time, ok bool) {
	if tok == "" {
		return time.Time{}, false
	}
	k := sha256.Sum256([]byte(tok))
	l.mu.Lock()
	defer l.mu.Unlock()
	exp, ok = l.m[k]
	if ok && !now.Before(exp) {
		delete(l.m, k)
		return time.Time{}, false
	}
	return exp, ok
}

func (l *logins) remove(tok string) {
	l.mu.Lock()
	delete(l.m, sha256.Sum256([]byte(tok)))
	l.mu.Unlock()
}

func (l *logins) expireLocked(now time.Time) {
	for k, exp := range l.m {
		if !now.Before(exp) {
			delete(l.m, k)
		}
	}
}

// csrf is the CSRF token of the session tok: a page on another origin can
// neither read it nor compute it.
func (l *logins) csrf(tok string) string {
	m := hmac.New(sha256.New, l.csrfKey[:])
	m.Write([]byte(tok))
	return hex.EncodeToString(m.Sum(nil))
}

// csrfOK reports whether got is the CSRF token of the session tok.
func (l *logins) csrfOK(tok, got string) bool {
	return got != "" && hmac.Equal([]byte(l.csrf(tok)), []byte(got))
}

// sessionToken returns the admin cookie's value ("" when none).
func sessionToken(r *http.Request) string {
	c, err := r.Cookie(CookieName)
	if err != nil {
		return ""
	}
	return c.Value
}

// sameOrigin reports whether a state-changing request comes from a page of
// this origin: Sec-Fetch-Site, where the browser sends it, must say so,
// and an Origin header must name this host. A request with neither (not
// from a browser) passes: CSRF needs a victim's browser, which sends them.
func sameOrigin(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
	default:
		return false
	}
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host != "" && u.Host == r.Host
}

// setCookie gives the browser the session token, or (tok "") clears it.
func setCookie(w http.ResponseWriter, r *http.Request, tok string, ttl time.Duration) {
	c := &http.Cookie{
		Name: CookieName, Value: tok, Path: "/admin",
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
		MaxAge: int(ttl / time.Second),
	}
	if tok == "" {
		c.MaxAge = -1
	}
	http.SetCookie(w, c)
}
