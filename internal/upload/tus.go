package upload

import (
	"context"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tus/tusd/v2/pkg/handler"
	xslog "golang.org/x/exp/slog"
)

// Authenticate finds the user of a tus request. It writes the refusal and
// returns ok=false when the request must not go on.
type Authenticate func(w http.ResponseWriter, r *http.Request) (user string, ok bool)

// Handler returns the tus 1.0 handler (core, creation,
// creation-with-upload, termination, expiration) for requests under
// Config.BasePath, with the path as it came (the handler strips BasePath).
// Every request but OPTIONS is authenticated by authn; CORS is the
// caller's (tusd's own is off).
func (s *Store) Handler(authn Authenticate) (http.Handler, error) {
	composer := handler.NewStoreComposer()
	composer.UseCore(s)
	composer.UseTerminater(s)
	composer.UseContentServer(s)
	composer.UseLocker(s.locker)
	h, err := handler.NewHandler(handler.Config{
		StoreComposer:             composer,
		BasePath:                  s.cfg.BasePath,
		MaxSize:                   s.cfg.MaxSize,
		DisableConcatenation:      true,
		Cors:                      &handler.CorsConfig{Disable: true},
		PreFinishResponseCallback: s.tusFinished,
		// After a request ends tusd keeps its context (and a goroutine)
		// this long for the store to finish; our writes do not wait on
		// the context, so a short grace is enough.
		GracefulRequestCompletionTimeout: time.Second,
		// tusd logs through golang.org/x/exp/slog: its warnings and
		// errors go to stderr, its per-request info lines nowhere.
		Logger: xslog.New(xslog.NewTextHandler(os.Stderr, &xslog.HandlerOptions{Level: xslog.LevelWarn})),
	})
	if err != nil {
		return nil, err
	}
	base := strings.TrimSuffix(s.cfg.BasePath, "/")
	tus := http.StripPrefix(base, h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w = &tusWriter{ResponseWriter: w, store: s, method: r.Method}
		if r.Method == http.MethodOptions {
			tus.ServeHTTP(w, r) // capability discovery and preflights carry no credentials
			return
		}
		id := strings.Trim(strings.TrimPrefix(r.URL.Path, base), "/")
		if id != "" && !validID.MatchString(id) {
			http.Error(w, errBadID.Error(), http.StatusNotFound)
			return
		}
		user, ok := authn(w, r)
		if !ok {
			return
		}
		if user == "" {
			http.Error(w, errNoUser.Error(), http.StatusUnauthorized)
			return
		}
		tus.ServeHTTP(w, r.WithContext(WithUser(r.Context(), user)))
	}), nil
}

// tusFinished verifies the hash when a tus request completes an upload.
func (s *Store) tusFinished(ev handler.HookEvent) (handler.HTTPResponse, error) {
	ctx := ev.Context
	if ctx == nil {
		ctx = context.Background()
	}
	up, info, err := s.load(ctx, ev.Upload.ID)
	if err != nil {
		return handler.HTTPResponse{}, err
	}
	if _, err := s.verify(ctx, up, info); err != nil {
		return handler.HTTPResponse{}, err
	}
	return handler.HTTPResponse{}, nil
}

// tusWriter adds what tusd does not say: the expiration extension (the
// Upload-Expires header on creation and PATCH replies, "expiration" in
// Tus-Extension), and counts resumes (a HEAD finding a partial upload with
// bytes).
type tusWriter struct {
	http.ResponseWriter
	store  *Store
	method string
	wrote  bool
}

func (w *tusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.wrote = true
		h := w.Header()
		if ext := h.Get("Tus-Extension"); ext != "" {
			h.Set("Tus-Extension", ext+",expiration")
		}
		ok := code >= 200 && code < 300
		if ok && (w.method == http.MethodPost || w.method == http.MethodPatch) {
			if off, len := h.Get("Upload-Offset"), h.Get("Upload-Length"); off == "" || off != len {
				// The TTL counts from the last byte received: this request.
				h.Set("Upload-Expires", w.store.cfg.Now().Add(w.store.cfg.TTL).UTC().Format(http.TimeFormat))
			}
		}
		if ok && w.method == http.MethodHead {
			if off, _ := strconv.ParseInt(h.Get("Upload-Offset"), 10, 64); off > 0 && h.Get("Upload-Offset") != h.Get("Upload-Length") {
				w.store.cfg.Metrics.UploadResumed()
			}
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *tusWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (tusd sets
// read deadlines through it).
func (w *tusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
