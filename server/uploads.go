package server

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/tus/tusd/v2/pkg/handler"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/internal/hooks"
	"github.com/ferry-io/ferry/internal/upload"
)

// UploadDone is a verified upload, as Options.OnUploadDone and the
// uploads.channel message report it: Type "upload.done", ID, Name, Size,
// SHA256, User, and URL (the upload's tus URL path, where its owner can GET
// it).
type UploadDone = upload.Done

// uploadSweepInterval is how often the node sweeps the upload store for
// expired uploads.
const uploadSweepInterval = 30 * time.Second

// openUploads opens the upload store when uploads.dir is set (or in Dev,
// in a new temporary directory) and hands it to the sessions.
func (s *Server) openUploads(onDone func(context.Context, UploadDone)) error {
	u := s.cfg.Uploads
	dir := u.Dir
	if dir == "" && !s.cfg.Dev {
		return nil // uploads off
	}
	if ch := u.Channel; ch != "" {
		if _, err := s.rulesOrNotFound(strings.ReplaceAll(ch, "{user}", "u")); err != nil {
			return fmt.Errorf("uploads.channel: %w: configure its namespace", err)
		}
	}
	if dir == "" {
		d, err := os.MkdirTemp("", "ferry-uploads-")
		if err != nil {
			return fmt.Errorf("uploads: %w", err)
		}
		dir, s.uploadTmp = d, d
		s.log.Info("uploads kept in a temporary directory (--dev): set uploads.dir to keep them across restarts", slog.String("dir", d))
	}
	locker, lockKind, err := s.uploadLocker()
	if err != nil {
		return err
	}
	st, err := upload.New(upload.Config{
		Locker:           locker,
		Dir:              dir,
		MaxSize:          u.MaxSize,
		MaxActivePerUser: u.MaxActivePerUser,
		MaxBytesPerUser:  u.MaxBytesPerUser,
		TTL:              u.TTL,
		Keep:             u.Keep,
		NoSync:           u.NoSync,
		Metrics:          s.metrics,
		Logger:           s.log,
		OnDone: func(ctx context.Context, d upload.Done) {
			s.uploadDone(ctx, d, onDone)
		},
	})
	if err != nil {
		return err
	}
	h, err := st.Handler(s.uploadUser)
	if err != nil {
		return fmt.Errorf("uploads: %w", err)
	}
	s.uploads, s.uploadsHTTP = st, h
	s.log.Info("uploads on", slog.String("dir", dir), slog.String("lock", lockKind))
	s.env.Uploads = st
	return nil
}

// The values of uploads.lock besides "" (auto).
const (
	UploadLockBroker = "broker"
	UploadLockFile   = "file"
)

// uploadLocker picks what serializes writers of one upload (see
// UploadsConfig.Lock) and names it; a nil Locker is the store's default,
// tusd's filelocker.
func (s *Server) uploadLocker() (handler.Locker, string, error) {
	u := s.cfg.Uploads
	l, ok := s.broker.(broker.Locker)
	switch {
	case u.Lock == UploadLockFile || u.Lock == "" && !ok:
		return nil, UploadLockFile, nil
	case !ok:
		return nil, "", fmt.Errorf("uploads.lock %q: the broker (%T) has no locks (broker.Locker): use %q", u.Lock, s.broker, UploadLockFile)
	}
	return upload.NewBrokerLocker(l, upload.BrokerLockerConfig{TTL: u.LockTTL, Logger: s.log}), UploadLockBroker, nil
}

// uploadDone tells who wants to know of a verified upload: the configured
// channel, the webhook (hooks.webhook, event upload.done) and
// Options.OnUploadDone. A failed
// publish is logged: the upload itself is done and stays.
func (s *Server) uploadDone(ctx context.Context, d UploadDone, hook func(context.Context, UploadDone)) {
	if ch := s.cfg.Uploads.Channel; ch != "" {
		ch = strings.ReplaceAll(ch, "{user}", d.User)
		data, _ := json.Marshal(d)
		// The idempotency key makes a repeated commit (a lost reply
		// retried) one message within the idempotency window.
		if _, err := s.Publish(ctx, ch, data, WithKey("upload.done:"+d.ID)); err != nil {
			s.log.Warn("uploads: publish upload.done", slog.String("channel", ch), slog.String("upload", d.ID), slog.Any("err", err))
		}
	}
	if h := s.env.Hooks; h != nil && h.Webhooks != nil {
		h.Webhooks.UploadDone("", d.User, hooks.UploadEvent{ID: d.ID, Name: d.Name, Size: d.Size, SHA256: d.SHA256, URL: d.URL})
	}
	if hook != nil {
		hook(ctx, d)
	}
}

// uploadUser authenticates a tus request like a handshake: Authorization
// header, cookie or single-use ticket, never a token in the URL; the
// Origin must be allowed.
func (s *Server) uploadUser(w http.ResponseWriter, r *http.Request) (string, bool) {
	tok, ok := s.requestToken(w, r)
	if !ok {
		return "", false
	}
	if tok == "" {
		httpError(w, http.StatusUnauthorized, "uploads need a token: send it in the Authorization header (Bearer) or the "+s.cfg.Auth.CookieName+" cookie")
		return "", false
	}
	claims, ok := s.verifyRequestToken(w, r, tok)
	if !ok {
		return "", false
	}
	return claims.Subject, true
}

// serveUploads is tus 1.0 at /v1/uploads/ with the node's origin policy
// and CORS.
func (s *Server) serveUploads(w http.ResponseWriter, r *http.Request) {
	if err := s.origins.Check(r); err != nil {
		httpError(w, http.StatusForbidden, err.Error())
		return
	}
	s.cors(w, r)
	h := w.Header()
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		h.Set("Access-Control-Allow-Methods", "POST, HEAD, PATCH, DELETE, GET, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Upload-Length, Upload-Offset, Tus-Resumable, Upload-Metadata, X-HTTP-Method-Override, X-Requested-With")
		h.Set("Access-Control-Max-Age", "600")
	} else if r.Header.Get("Origin") != "" {
		h.Set("Access-Control-Expose-Headers", "Location, Upload-Offset, Upload-Length, Upload-Expires, Upload-Metadata, Tus-Resumable, Tus-Version, Tus-Extension, Tus-Max-Size")
	}
	s.uploadsHTTP.ServeHTTP(w, r)
}

// runUploadSweep sweeps the upload store until the node's work stops.
func (s *Server) runUploadSweep() {
	s.uploads.Run(s.lifetime, uploadSweepInterval)
}

// closeUploads removes the temporary upload directory of a Dev node.
func (s *Server) closeUploads() {
	if s.uploadTmp != "" {
		_ = os.RemoveAll(s.uploadTmp)
	}
}
