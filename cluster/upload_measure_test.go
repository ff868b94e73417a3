package cluster_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/ferry-io/ferry/client"
	"github.com/ferry-io/ferry/internal/testutil/ferrytest"
	"github.com/ferry-io/ferry/internal/testutil/randfile"
	"github.com/ferry-io/ferry/protocol"
)

// TestUploadThroughput measures upload MiB/s into one real ferry process on
// loopback, over one WebSocket (the Go SDK, JSON and protobuf) and over tus
// (one PATCH), with the server's CPU seconds per MiB from its
// process_cpu_seconds_total. It is a measurement, not a check: it runs only
// with FERRY_UPLOAD_MEASURE=1 (FERRY_UPLOAD_MEASURE_MIB sets the size,
// default 64; FERRY_UPLOAD_MEASURE_NO_SYNC=1 turns the fsync per chunk
// off), and on a quiet machine.
func TestUploadThroughput(t *testing.T) {
	if os.Getenv("FERRY_UPLOAD_MEASURE") != "1" {
		t.Skip("a measurement: set FERRY_UPLOAD_MEASURE=1")
	}
	mib := 64
	if s := os.Getenv("FERRY_UPLOAD_MEASURE_MIB"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			t.Fatalf("FERRY_UPLOAD_MEASURE_MIB=%q: want a positive number", s)
		}
		mib = n
	}
	env := []string{
		"FERRY_UPLOADS_DIR=" + t.TempDir(), "FERRY_UPLOADS_MAX_SIZE=" + strconv.Itoa(2*mib<<20),
		"FERRY_UPLOADS_MAX_BYTES_PER_USER=" + strconv.Itoa(8*mib<<20),
	}
	if os.Getenv("FERRY_UPLOAD_MEASURE_NO_SYNC") == "1" {
		env = append(env, "FERRY_UPLOADS_NO_SYNC=true") // to see what the fsync per chunk costs
	}
	n := ferrytest.Start(t, "meas", ferrytest.Options{Binary: ferryBin.Path(t), Env: env})
	data, sum := randfile.New(t, mib<<20)
	measure := func(name string, run func() error) {
		cpu0 := metricValue(t, n.BaseURL(), "process_cpu_seconds_total")
		start := time.Now()
		if err := run(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		wall := time.Since(start).Seconds()
		cpu := metricValue(t, n.BaseURL(), "process_cpu_seconds_total") - cpu0
		t.Logf("%-28s %d MiB in %.2f s: %.1f MiB/s, server CPU %.1f ms/MiB", name, mib, wall, float64(mib)/wall, 1000*cpu/float64(mib))
	}
	for i, codec := range []protocol.Codec{protocol.JSON, protocol.Protobuf} {
		tok := mintOrFail(t, fmt.Sprintf("ws%d", i))
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
		cl, err := client.Dial(ctx, n.BaseURL(), client.Config{Token: tok, Codec: codec})
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		measure("websocket "+codec.Name(), func() error {
			_, err := cl.Upload(ctx, "m.bin", bytes.NewReader(data), int64(len(data)), client.UploadOptions{SHA256: sum})
			return err
		})
		_ = cl.Close()
		cancel()
	}
	measure("tus (POST + one PATCH)", func() error {
		return tusOnePatch(n.BaseURL(), mintOrFail(t, "tus"), data, sum)
	})
}

func mintOrFail(t testing.TB, user string) string {
	t.Helper()
	tok, err := authMint(ferrytest.DefaultSecret, user)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// tusOnePatch creates an upload and sends all of it in one PATCH.
func tusOnePatch(base, tok string, data []byte, sum string) error {
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/uploads/", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Upload-Length", strconv.Itoa(len(data)))
	req.Header.Set("Upload-Metadata", "filename "+base64.StdEncoding.EncodeToString([]byte("m.bin"))+",sha256 "+base64.StdEncoding.EncodeToString([]byte(sum)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("POST: %d", resp.StatusCode)
	}
	req, _ = http.NewRequest(http.MethodPatch, resp.Header.Get("Location"), bytes.NewReader(data))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Upload-Offset", "0")
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("PATCH: %d %s", resp.StatusCode, body)
	}
	return nil
}
