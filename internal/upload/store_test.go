package upload

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-io/ferry/internal/testutil/randfile"
	"github.com/ferry-io/ferry/protocol"
)

func newTestStore(t testing.TB, mod func(*Config)) (*Store, *[]Done) {
	t.Helper()
	var mu sync.Mutex
	var done []Done
	cfg := Config{
		Dir: t.TempDir(),
		OnDone: func(_ context.Context, d Done) {
			mu.Lock()
			done = append(done, d)
			mu.Unlock()
		},
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, &done
}

// wantCode fails unless err is a protocol error with code whose reason
// holds every one of parts.
func wantCode(t testing.TB, err error, code int, parts ...string) {
	t.Helper()
	var pe *protocol.Error
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v, want a protocol error %d", err, code)
	}
	if pe.Code != code {
		t.Fatalf("code = %d (%s), want %d", pe.Code, pe.Reason, code)
	}
	for _, p := range parts {
		if !strings.Contains(pe.Reason, p) {
			t.Fatalf("reason %q lacks %q", pe.Reason, p)
		}
	}
}

func TestSessionUploadRoundTripAndResume(t *testing.T) {
	ctx := context.Background()
	s, done := newTestStore(t, nil)
	data, sum := randfile.New(t, 100_000)
	id, off, err := s.Begin(ctx, "ann", Begin{Name: "a.bin", Size: int64(len(data)), SHA256: sum})
	if err != nil || off != 0 {
		t.Fatalf("begin: %q %d %v", id, off, err)
	}
	off, err = s.Chunk(ctx, "ann", id, 0, data[:40_000])
	if err != nil || off != 40_000 {
		t.Fatalf("chunk: %d %v", off, err)
	}
	// A new begin of the same file (after a reconnect) finds the upload
	// and its offset; so does a begin naming it.
	for _, b := range []Begin{{Name: "a.bin", Size: int64(len(data)), SHA256: sum}, {Name: "a.bin", Size: int64(len(data)), SHA256: sum, Upload: id}} {
		id2, off2, err := s.Begin(ctx, "ann", b)
		if err != nil || id2 != id || off2 != 40_000 {
			t.Fatalf("resume %+v: %q %d %v", b, id2, off2, err)
		}
	}
	// Another user with the same file starts their own.
	if id3, off3, err := s.Begin(ctx, "bob", Begin{Name: "a.bin", Size: int64(len(data)), SHA256: sum}); err != nil || id3 == id || off3 != 0 {
		t.Fatalf("bob's begin: %q %d %v", id3, off3, err)
	}
	if _, err := s.Chunk(ctx, "ann", id, 40_000, data[40_000:]); err != nil {
		t.Fatal(err)
	}
	d, err := s.Commit(ctx, "ann", id)
	if err != nil {
		t.Fatal(err)
	}
	want := Done{Type: "upload.done", ID: id, Name: "a.bin", Size: int64(len(data)), SHA256: sum, User: "ann", URL: "/v1/uploads/" + id}
	if d != want || len(*done) != 1 || (*done)[0] != want {
		t.Fatalf("done = %+v, notified %+v, want %+v", d, *done, want)
	}
	got, err := os.ReadFile(filepath.Join(s.cfg.Dir, id))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("stored bytes differ (%v)", err)
	}
}

func TestSessionUploadBadInput(t *testing.T) {
	ctx := context.Background()
	data, sum := randfile.New(t, 1000)
	size := int64(len(data))
	cases := []struct {
		name  string
		cfg   func(*Config)
		run   func(s *Store, id string) error
		code  int
		parts []string
	}{
		{"wrong offset names the right one", nil, func(s *Store, id string) error {
			if _, err := s.Chunk(ctx, "ann", id, 0, data[:100]); err != nil {
				return err
			}
			_, err := s.Chunk(ctx, "ann", id, 300, data[300:400])
			return err
		}, protocol.CodeConflict, []string{"continue from offset 100"}},
		{"chunk past the declared size", nil, func(s *Store, id string) error {
			_, err := s.Chunk(ctx, "ann", id, 0, append(append([]byte{}, data...), 1))
			return err
		}, protocol.CodeBadRequest, []string{"declared size 1000"}},
		{"another user's id is not found", nil, func(s *Store, id string) error {
			_, err := s.Chunk(ctx, "bob", id, 0, data)
			return err
		}, protocol.CodeNotFound, []string{"upload not found"}},
		{"another user's id on commit", nil, func(s *Store, id string) error {
			_, err := s.Commit(ctx, "bob", id)
			return err
		}, protocol.CodeNotFound, []string{"upload not found"}},
		{"malformed id", nil, func(s *Store, _ string) error {
			_, err := s.Chunk(ctx, "ann", "../etc", 0, data)
			return err
		}, protocol.CodeNotFound, nil},
		{"commit before the last byte", nil, func(s *Store, id string) error {
			_, err := s.Commit(ctx, "ann", id)
			return err
		}, protocol.CodeConflict, []string{"0 of its 1000 bytes"}},
		{"anonymous", nil, func(s *Store, _ string) error {
			_, _, err := s.Begin(ctx, "", Begin{Name: "x", Size: 1, SHA256: sum})
			return err
		}, protocol.CodeUnauthorized, nil},
		{"too large", func(c *Config) { c.MaxSize = 999 }, nil, protocol.CodeTooLarge, []string{"uploads.max_size"}},
		{"too many at once", func(c *Config) { c.MaxActivePerUser = 1 }, func(s *Store, _ string) error {
			_, _, err := s.Begin(ctx, "ann", Begin{Name: "b.bin", Size: size, SHA256: sum})
			return err
		}, protocol.CodeRateLimited, []string{"max_active_per_user"}},
		{"byte quota", func(c *Config) { c.MaxBytesPerUser = 1500 }, func(s *Store, _ string) error {
			_, _, err := s.Begin(ctx, "ann", Begin{Name: "b.bin", Size: size, SHA256: sum})
			return err
		}, protocol.CodeTooLarge, []string{"max_bytes_per_user"}},
		{"begin naming an upload of another file", nil, func(s *Store, id string) error {
			_, _, err := s.Begin(ctx, "ann", Begin{Name: "other.bin", Size: size, SHA256: sum, Upload: id})
			return err
		}, protocol.CodeConflict, []string{"another file"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newTestStore(t, tc.cfg)
			id, _, err := s.Begin(ctx, "ann", Begin{Name: "a.bin", Size: size, SHA256: sum})
			if tc.run == nil {
				wantCode(t, err, tc.code, tc.parts...)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			wantCode(t, tc.run(s, id), tc.code, tc.parts...)
		})
	}
}

func TestWrongHashRemovesTheUpload(t *testing.T) {
	ctx := context.Background()
	s, done := newTestStore(t, nil)
	data, _ := randfile.New(t, 5000)
	_, other := randfile.New(t, 10)
	id, _, err := s.Begin(ctx, "ann", Begin{Name: "a.bin", Size: 5000, SHA256: other})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Chunk(ctx, "ann", id, 0, data); err != nil {
		t.Fatal(err)
	}
	_, err = s.Commit(ctx, "ann", id)
	wantCode(t, err, protocol.CodeConflict, "not the declared "+other, "removed")
	if len(*done) != 0 {
		t.Fatalf("a rejected upload was reported done: %+v", *done)
	}
	_, err = s.Commit(ctx, "ann", id)
	wantCode(t, err, protocol.CodeNotFound)
	if left, _ := filepath.Glob(filepath.Join(s.cfg.Dir, id+"*")); len(left) != 0 {
		t.Fatalf("files left: %v", left)
	}
}

func TestExpiryAndSweep(t *testing.T) {
	ctx := context.Background()
	var now time.Time
	var nowMu sync.Mutex
	clock := func() time.Time { nowMu.Lock(); defer nowMu.Unlock(); return now }
	setNow := func(t time.Time) { nowMu.Lock(); now = t; nowMu.Unlock() }
	setNow(time.Now())
	s, _ := newTestStore(t, func(c *Config) { c.TTL = time.Hour; c.Keep = 3 * time.Hour; c.Now = clock })
	data, sum := randfile.New(t, 1000)
	expiring, _, err := s.Begin(ctx, "ann", Begin{Name: "a.bin", Size: 1000, SHA256: sum})
	if err != nil {
		t.Fatal(err)
	}
	complete, _, err := s.Begin(ctx, "ann", Begin{Name: "c.bin", Size: 1000, SHA256: sum})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Chunk(ctx, "ann", complete, 0, data); err != nil {
		t.Fatal(err)
	}
	setNow(time.Now().Add(2 * time.Hour))
	// The request that finds an expired upload gets a clear error.
	_, err = s.Chunk(ctx, "ann", expiring, 0, data[:10])
	wantCode(t, err, protocol.CodeNotFound, "expired")

	// A partial upload the sweep finds expired.
	if _, _, err := s.Begin(ctx, "ann", Begin{Name: "b.bin", Size: 1000, SHA256: sum}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Sweep(ctx, time.Now().Add(2*time.Hour)); err != nil || n != 1 {
		t.Fatalf("sweep at +2h removed %d (%v), want 1 (the new partial upload)", n, err)
	}
	if _, err := s.Commit(ctx, "ann", complete); err != nil {
		t.Fatalf("a complete upload is kept past the TTL: %v", err)
	}
	if n, err := s.Sweep(ctx, time.Now().Add(4*time.Hour)); err != nil || n != 1 {
		t.Fatalf("sweep at +4h removed %d (%v), want 1 (the complete upload past Keep)", n, err)
	}
}
