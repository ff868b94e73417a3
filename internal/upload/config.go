package upload

import (
	"context"
	"log/slog"
	"time"

	"github.com/tus/tusd/v2/pkg/handler"

	"github.com/ferry-io/ferry/internal/metrics"
)

// Config configures a Store. The zero value of every field is its
// documented default, except Dir, which is required.
type Config struct {
	// Dir holds the uploads: tusd's filestore layout (<id> with the bytes,
	// <id>.info with size, offset and metadata) and the lock files.
	// Required; created when missing.
	Dir string
	// BasePath is where the tus handler is mounted; upload URLs are
	// BasePath + id. Default "/v1/uploads/".
	BasePath string
	// MaxSize caps one upload's declared size (413 above it). Default 1 GiB.
	MaxSize int64
	// MaxActivePerUser caps one user's partial uploads in the store (429
	// for one more). Default 4.
	MaxActivePerUser int
	// MaxBytesPerUser caps the declared sizes of one user's partial uploads
	// added up (413 for one that would pass it). Default 4 GiB.
	MaxBytesPerUser int64
	// TTL is how long a partial upload lives without receiving a byte;
	// then it answers 410 and the sweep removes it. Default 24h.
	TTL time.Duration
	// Keep is how long a complete upload stays in the store after its last
	// byte (the application fetches or moves it meanwhile). Default 168h.
	Keep time.Duration
	// NoSync skips the fsync after each write: faster, but an offset told
	// to a client may be lost in a crash of the machine (not of the node).
	// Default false.
	NoSync bool
	// Locker serializes writers of one upload. Default: tusd's filelocker
	// in Dir.
	Locker handler.Locker
	// OnDone is called after an upload's sha256 is verified (see the
	// package doc: at least once). Default: nothing.
	OnDone func(ctx context.Context, d Done)
	// Metrics records the upload series; nil records nothing.
	Metrics *metrics.Metrics
	// Logger receives the store's logs. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Done describes a completed, verified upload, as the server publishes it
// to uploads.channel.
type Done struct {
	Type   string `json:"type"` // "upload.done"
	ID     string `json:"id"`
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	User   string `json:"user"`
	// URL is the upload's tus URL path (BasePath + ID).
	URL string `json:"url"`
}

func (c *Config) applyDefaults() {
	if c.BasePath == "" {
		c.BasePath = "/v1/uploads/"
	}
	if c.MaxSize == 0 {
		c.MaxSize = 1 << 30
	}
	if c.MaxActivePerUser == 0 {
		c.MaxActivePerUser = 4
	}
	if c.MaxBytesPerUser == 0 {
		c.MaxBytesPerUser = 4 << 30
	}
	if c.TTL == 0 {
		c.TTL = 24 * time.Hour
	}
	if c.Keep == 0 {
		c.Keep = 7 * 24 * time.Hour
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}
