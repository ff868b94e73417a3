package hooks

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// backend is a real HTTP back end in the test process whose handler the
// test sets.
func backend(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// refusedURL is a loopback URL where nothing listens.
func refusedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr + "/hook"
}

func TestCallAnswers(t *testing.T) {
	release := make(chan struct{})
	srv := backend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(HeaderHook) != "rpc" || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad headers", http.StatusBadRequest)
			return
		}
		switch r.URL.Path {
		case "/ok":
			body, _ := io.ReadAll(r.Body)
			_, _ = w.Write([]byte(`{"data":` + string(body) + `}`))
		case "/deny":
			_, _ = w.Write([]byte(`{"error":{"code":403,"reason":"no"}}`))
		case "/slow":
			select {
			case <-release:
			case <-r.Context().Done():
			}
		case "/500":
			http.Error(w, "boom", http.StatusInternalServerError)
		case "/malformed":
			_, _ = w.Write([]byte(`{"data":`))
		case "/huge":
			_, _ = w.Write([]byte(`{"data":"` + strings.Repeat("x", 2000) + `"}`))
		case "/teapot":
			w.WriteHeader(http.StatusTeapot)
		}
	})
	t.Cleanup(func() { close(release) }) // before the back end closes (cleanups run last first)
	// Only /slow must time out; the others get time to spare on a loaded
	// machine.
	c := New(Config{Timeout: 10 * time.Second, MaxAnswerBytes: 1000})
	defer c.Close()
	short := New(Config{Timeout: 200 * time.Millisecond})
	defer short.Close()
	cases := []struct {
		path string
		want error
	}{
		{"/ok", nil}, {"/deny", nil}, {"/slow", ErrTimeout}, {"/500", ErrUnavailable},
		{"/malformed", ErrBadAnswer}, {"/huge", ErrBadAnswer}, {"/teapot", ErrBadAnswer},
	}
	for _, tc := range cases {
		var ans RPCAnswer
		cl := c
		if tc.want == ErrTimeout {
			cl = short
		}
		err := cl.Call(context.Background(), "rpc", srv.URL+tc.path, map[string]int{"n": 1}, &ans)
		if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
			t.Errorf("%s: err %v, want %v", tc.path, err, tc.want)
		}
		switch tc.path {
		case "/ok":
			if string(ans.Data) != `{"n":1}` {
				t.Errorf("/ok: data %s", ans.Data)
			}
		case "/deny":
			if ans.Error == nil || ans.Error.Code != 403 {
				t.Errorf("/deny: %+v", ans)
			}
		}
	}
	var ans RPCAnswer
	if err := c.Call(context.Background(), "rpc", refusedURL(t), nil, &ans); !errors.Is(err, ErrUnavailable) {
		t.Errorf("refused: err %v, want ErrUnavailable", err)
	}
}

func TestCallBusyNeverQueues(t *testing.T) {
	entered := make(chan struct{}, 4)
	release := make(chan struct{})
	srv := backend(t, func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
		_, _ = w.Write([]byte(`{}`))
	})
	c := New(Config{MaxConcurrent: 2, Timeout: 10 * time.Second})
	defer c.Close()
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var ans RPCAnswer
			if err := c.Call(context.Background(), "rpc", srv.URL, nil, &ans); err != nil {
				t.Errorf("in-bound call: %v", err)
			}
		}()
	}
	<-entered
	<-entered
	var ans RPCAnswer
	if err := c.Call(context.Background(), "rpc", srv.URL, nil, &ans); !errors.Is(err, ErrBusy) {
		t.Errorf("third call: %v, want ErrBusy", err)
	}
	close(release)
	wg.Wait()
}

func TestBreakerOpensAndProbes(t *testing.T) {
	var mu sync.Mutex
	calls, failing := 0, true
	srv := backend(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		f := failing
		mu.Unlock()
		if f {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte(`{}`))
	})
	now := time.Unix(1000, 0)
	var clock sync.Mutex
	c := New(Config{BreakerFailures: 3, BreakerCooldown: time.Minute, Now: func() time.Time {
		clock.Lock()
		defer clock.Unlock()
		return now
	}})
	defer c.Close()
	call := func() error {
		var ans RPCAnswer
		return c.Call(context.Background(), "publish", srv.URL, nil, &ans)
	}
	for i := range 3 {
		if err := call(); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if err := call(); !errors.Is(err, ErrBreakerOpen) {
		t.Fatalf("after 3 failures: %v, want ErrBreakerOpen", err)
	}
	mu.Lock()
	if calls != 3 {
		t.Errorf("back end called %d times, want 3 (the open breaker sends nothing)", calls)
	}
	failing = false
	mu.Unlock()
	clock.Lock()
	now = now.Add(time.Minute)
	clock.Unlock()
	if err := call(); err != nil {
		t.Fatalf("probe: %v", err)
	}
	if err := call(); err != nil {
		t.Fatalf("after a good probe: %v", err)
	}
}

func TestSignVerify(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	body := []byte(`{"event":"subscribed"}`)
	h := Sign("s3cret", now, body)
	if err := Verify("s3cret", h, body, now.Add(time.Second), time.Minute); err != nil {
		t.Fatalf("verify: %v", err)
	}
	for _, tc := range []struct {
		name, secret, header string
		body                 []byte
		at                   time.Time
		want                 error
	}{
		{"other secret", "nope", h, body, now, ErrBadSignature},
		{"other body", "s3cret", h, []byte(`{}`), now, ErrBadSignature},
		{"stale", "s3cret", h, body, now.Add(time.Hour), ErrStale},
		{"no header", "s3cret", "", body, now, ErrNoSignature},
		{"garbage", "s3cret", "t=x,v1=zz", body, now, ErrNoSignature},
	} {
		if err := Verify(tc.secret, tc.header, tc.body, tc.at, time.Minute); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}
