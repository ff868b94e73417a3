package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/broker/memory"
	"github.com/ferry-io/ferry/internal/testutil/randfile"
	"github.com/ferry-io/ferry/server"
)

// uploadFile is a file to upload: its bytes and their sha256.
type uploadFile struct {
	data []byte
	sum  string
}

func newUploadFile(t testing.TB, n int) uploadFile {
	t.Helper()
	b, sum := randfile.New(t, n)
	return uploadFile{data: b, sum: sum}
}

func startUploadNode(t testing.TB, mutate func(*server.Config)) *node {
	t.Helper()
	dir := t.TempDir()
	return startNode(t, func(c *server.Config) {
		c.Uploads.Dir = dir
		c.Uploads.Channel = "chat:uploads"
		if mutate != nil {
			mutate(c)
		}
	})
}

// tusDo sends a tus request as user ("" sends no token) and returns the
// response with its body read.
func tusDo(t testing.TB, n *node, user, method, path string, hdr map[string]string, body []byte) (*http.Response, string) {
	t.Helper()
	url := path
	if !strings.HasPrefix(url, "http") {
		url = n.base + path
	}
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Tus-Resumable", "1.0.0")
	if user != "" {
		req.Header.Set("Authorization", "Bearer "+token(t, user, time.Hour, nil))
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func tusMetadata(name, sum string) string {
	enc := base64.StdEncoding.EncodeToString
	return "filename " + enc([]byte(name)) + ",sha256 " + enc([]byte(sum))
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func TestUploadBegunOverSessionFinishedOverTus(t *testing.T) {
	n := startUploadNode(t, nil)
	f := newUploadFile(t, 120_000)
	watcher := connectClient(t, n, "carl")
	watcher.request(map[string]any{"type": "subscribe", "id": 2, "channel": "chat:uploads"})

	cl := connectClient(t, n, "ann")
	ready := cl.request(map[string]any{"type": "upload.begin", "id": 2, "name": "report.pdf", "size": len(f.data), "sha256": f.sum})
	if ready["type"] != "upload.ready" || num(ready["offset"]) != 0 {
		t.Fatalf("begin: %v", ready)
	}
	id := ready["upload"].(string)
	const half = 30_000
	prog := cl.request(map[string]any{"type": "upload.chunk", "id": 3, "upload": id, "offset": 0, "data": b64(f.data[:half])})
	if prog["type"] != "upload.progress" || num(prog["offset"]) != half {
		t.Fatalf("chunk: %v", prog)
	}

	// The network changes: the rest goes over tus, same id.
	resp, _ := tusDo(t, n, "ann", http.MethodHead, "/v1/uploads/"+id, nil, nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Upload-Offset") != strconv.Itoa(half) || resp.Header.Get("Upload-Length") != strconv.Itoa(len(f.data)) {
		t.Fatalf("HEAD: %d offset %q length %q", resp.StatusCode, resp.Header.Get("Upload-Offset"), resp.Header.Get("Upload-Length"))
	}
	// Another user learns nothing of it.
	if resp, _ := tusDo(t, n, "bob", http.MethodHead, "/v1/uploads/"+id, nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("bob's HEAD: %d, want 404", resp.StatusCode)
	}
	resp, body := tusDo(t, n, "ann", http.MethodPatch, "/v1/uploads/"+id, map[string]string{
		"Content-Type": "application/offset+octet-stream", "Upload-Offset": strconv.Itoa(half),
	}, f.data[half:])
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Upload-Offset") != strconv.Itoa(len(f.data)) {
		t.Fatalf("PATCH: %d %q offset %q", resp.StatusCode, body, resp.Header.Get("Upload-Offset"))
	}
	// The completion is published once the hash is verified.
	msg := watcher.expect("message")
	var d server.UploadDone
	if err := json.Unmarshal(mustJSON(t, msg["data"]), &d); err != nil {
		t.Fatal(err)
	}
	want := server.UploadDone{Type: "upload.done", ID: id, Name: "report.pdf", Size: int64(len(f.data)), SHA256: f.sum, User: "ann", URL: "/v1/uploads/" + id}
	if d != want {
		t.Fatalf("published %+v, want %+v", d, want)
	}
	// A commit over the session answers done as well.
	done := cl.request(map[string]any{"type": "upload.commit", "id": 4, "upload": id})
	if done["type"] != "upload.done" || done["sha256"] != f.sum || num(done["size"]) != float64(len(f.data)) {
		t.Fatalf("commit: %v", done)
	}
	resp, body = tusDo(t, n, "ann", http.MethodGet, "/v1/uploads/"+id, nil, nil)
	if resp.StatusCode != http.StatusOK || body != string(f.data) {
		t.Fatalf("GET by the owner: %d, %d bytes", resp.StatusCode, len(body))
	}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestUploadBegunOverTusFinishedOverSession(t *testing.T) {
	n := startUploadNode(t, nil)
	f := newUploadFile(t, 70_000)
	const first = 20_000
	// Creation with upload: the first bytes come with the POST.
	resp, body := tusDo(t, n, "ann", http.MethodPost, "/v1/uploads/", map[string]string{
		"Upload-Length": strconv.Itoa(len(f.data)), "Upload-Metadata": tusMetadata("photo.jpg", f.sum),
		"Content-Type": "application/offset+octet-stream",
	}, f.data[:first])
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("Upload-Offset") != strconv.Itoa(first) {
		t.Fatalf("POST: %d %q offset %q", resp.StatusCode, body, resp.Header.Get("Upload-Offset"))
	}
	if resp.Header.Get("Upload-Expires") == "" {
		t.Error("POST reply has no Upload-Expires (expiration extension)")
	}
	loc := resp.Header.Get("Location")
	id := loc[strings.LastIndex(loc, "/")+1:]

	cl := connectClient(t, n, "ann")
	ready := cl.request(map[string]any{"type": "upload.begin", "id": 2, "name": "photo.jpg", "size": len(f.data), "sha256": f.sum})
	if ready["upload"] != id || num(ready["offset"]) != first {
		t.Fatalf("begin found %v, want upload %s at %d", ready, id, first)
	}
	// A chunk at the wrong offset names the right one.
	e := cl.request(map[string]any{"type": "upload.chunk", "id": 3, "upload": id, "offset": 0, "data": b64(f.data[:10])})
	if e["type"] != "error" || num(e["code"]) != 409 || !strings.Contains(e["reason"].(string), "continue from offset 20000") {
		t.Fatalf("wrong offset: %v", e)
	}
	off := first
	for i := 4; off < len(f.data); i++ {
		end := min(off+30_000, len(f.data))
		p := cl.request(map[string]any{"type": "upload.chunk", "id": i, "upload": id, "offset": off, "data": b64(f.data[off:end])})
		if p["type"] != "upload.progress" || num(p["offset"]) != float64(end) {
			t.Fatalf("chunk at %d: %v", off, p)
		}
		off = end
	}
	done := cl.request(map[string]any{"type": "upload.commit", "id": 99, "upload": id})
	if done["type"] != "upload.done" || done["upload"] != id || done["url"] != "/v1/uploads/"+id {
		t.Fatalf("commit: %v", done)
	}
}

func TestUploadTusRefusals(t *testing.T) {
	n := startUploadNode(t, func(c *server.Config) { c.Uploads.MaxSize = 1000 })
	f := newUploadFile(t, 100)
	create := map[string]string{"Upload-Length": "100", "Upload-Metadata": tusMetadata("a", f.sum)}
	cases := []struct {
		name, user, method, path string
		hdr                      map[string]string
		status                   int
		body                     string
	}{
		{"no token", "", http.MethodPost, "/v1/uploads/", create, 401, "need a token"},
		{"token in the URL", "", http.MethodPost, "/v1/uploads/?token=x", create, 400, "token in the URL"},
		{"no sha256", "ann", http.MethodPost, "/v1/uploads/", map[string]string{"Upload-Length": "100", "Upload-Metadata": "filename YQ=="}, 400, "sha256"},
		{"deferred length", "ann", http.MethodPost, "/v1/uploads/", map[string]string{"Upload-Defer-Length": "1", "Upload-Metadata": tusMetadata("a", f.sum)}, 501, "not implemented"},
		{"too large", "ann", http.MethodPost, "/v1/uploads/", map[string]string{"Upload-Length": "2000", "Upload-Metadata": tusMetadata("a", f.sum)}, 413, "maximum size"},
		{"path outside the store", "ann", http.MethodHead, "/v1/uploads/..%2f..%2fetc", nil, 404, ""},
		{"unknown id", "ann", http.MethodHead, "/v1/uploads/0123456789abcdef", nil, 404, ""},
		{"origin not allowed", "ann", http.MethodPost, "/v1/uploads/", map[string]string{"Origin": "https://evil.example", "Upload-Length": "100"}, 403, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := tusDo(t, n, tc.user, tc.method, tc.path, tc.hdr, nil)
			if resp.StatusCode != tc.status || !strings.Contains(body, tc.body) {
				t.Fatalf("%d %q, want %d with %q", resp.StatusCode, body, tc.status, tc.body)
			}
		})
	}

	// A wrong hash over tus: the last PATCH gets 409 and the upload is gone.
	other := newUploadFile(t, 1).sum
	resp, _ := tusDo(t, n, "ann", http.MethodPost, "/v1/uploads/", map[string]string{
		"Upload-Length": "100", "Upload-Metadata": tusMetadata("a", other),
	}, nil)
	loc := resp.Header.Get("Location")
	resp, body := tusDo(t, n, "ann", http.MethodPatch, loc, map[string]string{
		"Content-Type": "application/offset+octet-stream", "Upload-Offset": "0",
	}, f.data)
	if resp.StatusCode != http.StatusConflict || !strings.Contains(body, "not the declared") {
		t.Fatalf("PATCH with a wrong hash: %d %q", resp.StatusCode, body)
	}
	if resp, _ := tusDo(t, n, "ann", http.MethodHead, loc, nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("HEAD after a wrong hash: %d, want 404", resp.StatusCode)
	}

	// A CORS preflight from an allowed origin.
	resp, _ = tusDo(t, n, "", http.MethodOptions, "/v1/uploads/", map[string]string{
		"Origin": "https://app.example.com", "Access-Control-Request-Method": "PATCH",
	}, nil)
	if resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" || !strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "PATCH") {
		t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	if ext := resp.Header.Get("Tus-Extension"); !strings.Contains(ext, "creation") || !strings.Contains(ext, "termination") || !strings.Contains(ext, "expiration") {
		t.Fatalf("Tus-Extension %q", ext)
	}
}

func TestUploadChannelNeedsItsNamespace(t *testing.T) {
	cfg := testConfig()
	cfg.Uploads.Dir = t.TempDir()
	cfg.Uploads.Channel = "nosuch:uploads"
	_, err := server.New(cfg, server.Options{Broker: memory.New(memory.Config{NodeID: cfg.NodeID})})
	if err == nil || !strings.Contains(err.Error(), "uploads.channel") || !strings.Contains(err.Error(), "unknown namespace") {
		t.Fatalf("New with uploads.channel in an unknown namespace: %v", err)
	}
}

func TestUploadsOffWithoutADirectory(t *testing.T) {
	n := startNode(t, nil)
	cl := connectClient(t, n, "ann")
	e := cl.request(map[string]any{"type": "upload.begin", "id": 2, "name": "a", "size": 1, "sha256": strings.Repeat("a", 64)})
	if e["type"] != "error" || num(e["code"]) != 404 || !strings.Contains(e["reason"].(string), "not enabled") {
		t.Fatalf("begin with uploads off: %v", e)
	}
	if resp, _ := tusDo(t, n, "ann", http.MethodPost, "/v1/uploads/", nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("tus with uploads off: %d", resp.StatusCode)
	}
}

// noLocks is a broker without broker.Locker (as RabbitMQ is).
type noLocks struct{ broker.Broker }

func TestUploadLockSetting(t *testing.T) {
	for _, tc := range []struct {
		name, lock string
		noLocks    bool
		wantErr    string // "" : New succeeds
	}{
		{"auto", "", false, ""},
		{"auto without broker locks", "", true, ""},
		{"file", "file", false, ""},
		{"broker", "broker", false, ""},
		{"broker without broker locks", "broker", true, "has no locks"},
		{"unknown", "redis", false, `uploads.lock: "redis"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.Uploads.Dir = t.TempDir()
			cfg.Uploads.Lock = tc.lock
			var b broker.Broker = memory.New(memory.Config{NodeID: cfg.NodeID})
			if tc.noLocks {
				b = noLocks{b}
			}
			s, err := server.New(cfg, server.Options{Broker: b})
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("New: %v, want an error with %q", err, tc.wantErr)
			}
			if s != nil {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_ = s.Shutdown(ctx)
			}
		})
	}
}
