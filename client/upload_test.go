package client_test

import (
	"bytes"
	"context"
	"errors"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ferry-io/ferry/client"
	"github.com/ferry-io/ferry/internal/testutil/randfile"
	"github.com/ferry-io/ferry/protocol"
	"github.com/ferry-io/ferry/server"
)

// uploadTestBytes is the size of the uploads through the cutting proxy:
// 8 MiB, or FERRY_UPLOAD_TEST_MIB MiB (50 for the figure).
func uploadTestBytes(t testing.TB) int {
	if s := os.Getenv("FERRY_UPLOAD_TEST_MIB"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			t.Fatalf("FERRY_UPLOAD_TEST_MIB=%q: want a positive number", s)
		}
		return n << 20
	}
	return 8 << 20
}

func startUploadNode(t testing.TB) (*node, string) {
	t.Helper()
	dir := t.TempDir()
	n := startNode(t, func(c *server.Config) {
		c.Uploads.Dir = dir
		c.Uploads.NoSync = true // the durability is the store's test; this one is about the wire
	})
	return n, dir
}

// TestUploadThroughCuts uploads a file over a proxy that cuts the
// connection (RST) five times during the upload: the upload completes, the
// stored bytes match, and the bytes sent to the node stay under 1.2 x the
// file (each cut costs the chunks in flight, not the file so far).
func TestUploadThroughCuts(t *testing.T) {
	n, dir := startUploadNode(t)
	proxy := newChaosProxy(t, n.ts.Listener.Addr().String())
	size := uploadTestBytes(t)
	data, sum := randfile.New(t, size)
	c := dial(t, &node{url: "http://" + proxy.ln.Addr().String()}, "ann", func(cfg *client.Config) {
		cfg.Codec = protocol.Protobuf // chunks as bytes, not base64: the wire is then comparable with the size
	})
	const cuts = 5
	rng := mrand.New(mrand.NewPCG(1, 2))
	next := 1
	var mu sync.Mutex
	progress := func(done, size int64) {
		mu.Lock()
		defer mu.Unlock()
		// Cut at 1/6, 2/6, ... of the file.
		if next <= cuts && done >= size*int64(next)/(cuts+1) {
			next++
			proxy.cutSome(rng, 1)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	res, err := c.Upload(ctx, "big.bin", bytes.NewReader(data), int64(size), client.UploadOptions{Progress: progress})
	if err != nil {
		t.Fatalf("upload: %v (cuts %d)", err, proxy.cuts.Load())
	}
	if res.SHA256 != sum || res.Size != int64(size) || res.URL != "/v1/uploads/"+res.ID {
		t.Fatalf("result %+v", res)
	}
	if got := proxy.cuts.Load(); got < cuts {
		t.Fatalf("the proxy cut %d connections, want %d: the test did not test resuming", got, cuts)
	}
	stored, err := os.ReadFile(filepath.Join(dir, res.ID))
	if err != nil || !bytes.Equal(stored, data) {
		t.Fatalf("stored bytes differ from the file (%v)", err)
	}
	wire := proxy.upBytes.Load()
	t.Logf("%d bytes through %d cuts: %d chunk bytes sent, %d bytes on the wire (%.3f x), %d resumes",
		size, proxy.cuts.Load(), res.SentBytes, wire, float64(wire)/float64(size), res.Resumes)
	if float64(wire) > 1.2*float64(size) {
		t.Fatalf("%d bytes on the wire for %d: more than 1.2 x (resumed from zero?)", wire, size)
	}
}

// TestUploadDoesNotHoldUpDelivery: while an upload has chunks out (and is
// held still between checkpoints), a message published to the same client
// is delivered.
func TestUploadDoesNotHoldUpDelivery(t *testing.T) {
	n, _ := startUploadNode(t)
	c := dial(t, n, "ann", nil)
	sub, err := c.Subscribe(t.Context(), "chat:room")
	if err != nil {
		t.Fatal(err)
	}
	data, _ := randfile.New(t, 2<<20)
	hold := make(chan struct{})
	held := make(chan struct{})
	var once sync.Once
	progress := func(done, _ int64) {
		if done > 0 {
			once.Do(func() { close(held); <-hold })
		}
	}
	errc := make(chan error, 1)
	go func() {
		_, err := c.Upload(t.Context(), "a.bin", bytes.NewReader(data), int64(len(data)), client.UploadOptions{Progress: progress})
		errc <- err
	}()
	select {
	case <-held:
	case err := <-errc:
		t.Fatalf("upload ended before its first checkpoint: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("no checkpoint within 30s")
	}
	publishAPI(t, n, "chat:room", map[string]any{"during": "upload"})
	if m := recv(t, sub); string(m.Data) != `{"during":"upload"}` {
		t.Fatalf("got %s", m.Data)
	}
	close(hold)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// TestUploadErrors: the SDK surfaces the server's refusals as
// *client.ServerError with their codes.
func TestUploadErrors(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, func(c *server.Config) { c.Uploads.Dir = dir; c.Uploads.MaxSize = 1000 })
	c := dial(t, n, "ann", nil)
	data, _ := randfile.New(t, 2000)
	_, err := c.Upload(t.Context(), "a.bin", bytes.NewReader(data), 2000, client.UploadOptions{})
	var se *client.ServerError
	if !errors.As(err, &se) || se.Code != 413 {
		t.Fatalf("too large: %v, want a 413", err)
	}
	_, other := randfile.New(t, 1)
	_, err = c.Upload(t.Context(), "b.bin", bytes.NewReader(data[:500]), 500, client.UploadOptions{SHA256: other})
	if !errors.As(err, &se) || se.Code != 409 {
		t.Fatalf("wrong hash: %v, want a 409", err)
	}
}
