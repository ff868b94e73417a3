package cluster_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-io/ferry/client"
	"github.com/ferry-io/ferry/internal/auth"
	"github.com/ferry-io/ferry/internal/testutil/ferrytest"
	"github.com/ferry-io/ferry/internal/testutil/randfile"
)

// dialSDK connects a Go SDK client for user to a node.
func dialSDK(t testing.TB, url, secret, user string) *client.Client {
	t.Helper()
	tok, err := authMint(secret, user)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := client.Dial(ctx, url, client.Config{Token: tok, Backoff: client.Backoff{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond}})
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

// TestUploadSurvivesSIGKILL: a real ferry process is killed with SIGKILL
// in the middle of an upload and started again on the same port and upload
// directory; the SDK reconnects and the upload continues from the node's
// last checkpoint (the bytes sent stay well under twice the file), and the
// stored file is the one sent.
func TestUploadSurvivesSIGKILL(t *testing.T) {
	dir := t.TempDir()
	n := ferrytest.Start(t, "up1", ferrytest.Options{Binary: ferryBin.Path(t), Env: []string{"FERRY_UPLOADS_DIR=" + dir}})
	data, sum := randfile.New(t, 4<<20)
	cl := dialSDK(t, n.BaseURL(), ferrytest.DefaultSecret, "ann")

	var once sync.Once
	var killedAt int64
	progress := func(done, size int64) {
		if done >= size/2 {
			once.Do(func() {
				killedAt = done
				n.Kill()
				n.Restart()
			})
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	res, err := cl.Upload(ctx, "crash.bin", bytes.NewReader(data), int64(len(data)), client.UploadOptions{Progress: progress})
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	if killedAt == 0 {
		t.Fatal("the node was never killed: the test did not test a crash")
	}
	// The restarted process counts what it wrote: the rest of the file
	// after the checkpoint, plus at most the chunks that were in flight.
	t.Logf("killed at %d of %d bytes; %d resumes", killedAt, len(data), res.Resumes)
	checkResumed(t, dir, res, data, sum, n, killedAt)
}

// checkResumed fails unless the upload res stored data (of sha256 sum) in
// dir, and node n, which finished it, wrote only what came after from
// (plus at most the chunks in flight at the cut): it continued the upload.
func checkResumed(t testing.TB, dir string, res client.UploadResult, data []byte, sum string, n *ferrytest.Node, from int64) {
	t.Helper()
	if res.SHA256 != sum {
		t.Fatalf("result %+v, want sha256 %s", res, sum)
	}
	stored, err := os.ReadFile(filepath.Join(dir, res.ID))
	if err != nil || !bytes.Equal(stored, data) {
		t.Fatalf("stored file differs (%v)", err)
	}
	written := int64(metricValue(t, n.BaseURL(), "ferry_upload_bytes_total"))
	t.Logf("%s wrote %d bytes after offset %d", n.ID, written, from)
	if rest := int64(len(data)) - from; written > rest+256<<10 {
		t.Fatalf("%s wrote %d bytes, the rest after offset %d is %d: it did not continue from the checkpoint", n.ID, written, from, rest)
	}
}

// authMint mints an hour's token for user.
func authMint(secret, user string) (string, error) {
	return auth.Mint([]byte(secret), user, time.Hour, nil)
}

// metricValue reads one unlabelled series from a node's /metrics.
func metricValue(t testing.TB, base, name string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("no %s in /metrics", name)
	return 0
}

// TestUploadAcrossNodesOnRedis: two nodes on Redis share an upload
// directory (and lock uploads through Redis, uploads.lock auto). An upload
// begun on one node and cut off halfway is finished on the other, which
// writes only the rest; the stored file is the one sent.
func TestUploadAcrossNodesOnRedis(t *testing.T) {
	dir := t.TempDir()
	c := startCluster(t, 2, "FERRY_UPLOADS_DIR="+dir, "FERRY_UPLOADS_NO_SYNC=true")
	a, b := c.nodes.Nodes[0], c.nodes.Nodes[1]
	for _, n := range c.nodes.Nodes {
		if l := n.Log(); !strings.Contains(l, `"msg":"uploads on"`) || !strings.Contains(l, `"lock":"broker"`) {
			t.Fatalf("%s does not lock uploads through the broker; its log:\n%s", n.ID, n.LogTail(20))
		}
	}
	data, sum := randfile.New(t, 2<<20)

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cut, stop := context.WithCancel(ctx)
	var cutAt int64
	_, err := dialSDK(t, a.BaseURL(), ferrytest.DefaultSecret, "ann").Upload(cut, "moved.bin", bytes.NewReader(data), int64(len(data)), client.UploadOptions{
		Progress: func(done, size int64) {
			if done >= size/2 && cutAt == 0 {
				cutAt = done
				stop()
			}
		},
	})
	stop()
	if err == nil || cutAt == 0 {
		t.Fatalf("the upload on the first node was not cut off (err %v)", err)
	}
	res, err := dialSDK(t, b.BaseURL(), ferrytest.DefaultSecret, "ann").Upload(ctx, "moved.bin", bytes.NewReader(data), int64(len(data)), client.UploadOptions{})
	if err != nil {
		t.Fatalf("upload on the second node: %v", err)
	}
	checkResumed(t, dir, res, data, sum, b, cutAt)
	// No lock is left behind in Redis once the upload is done.
	keys, err := c.redis.Do("KEYS", "*upload.lock.*")
	if err != nil {
		t.Fatalf("KEYS: %v", err)
	}
	if l, ok := keys.([]any); !ok || len(l) != 0 {
		t.Fatalf("locks left in Redis: %v", keys)
	}
}
