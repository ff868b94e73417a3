package upload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/tus/tusd/v2/pkg/filelocker"
	"github.com/tus/tusd/v2/pkg/filestore"
	"github.com/tus/tusd/v2/pkg/handler"
)

// Metadata keys of an upload (tus Upload-Metadata keys, kept in the
// upload's .info file).
const (
	metaName = "filename" // tus-js-client and Uppy send the file name under this key
	metaSHA  = "sha256"   // 64 lower-case hex digits
	metaUser = "ferry_user"
)

// maxNameBytes caps an upload's name.
const maxNameBytes = 255

// validID is what an upload id may look like: tusd's ids are 32 hex digits;
// anything with a slash or a dot would reach outside Dir.
var validID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Store is the upload store both paths share: a tusd DataStore over tusd's
// filestore that adds ownership, limits, expiry, fsync and hash checks
// (see the package doc).
type Store struct {
	cfg    Config
	files  filestore.FileStore
	locker handler.Locker

	// creating serializes the quota check and the creation of an upload on
	// this node, so two begins of one user cannot both pass the last free
	// place. (Across nodes the limits may be passed by one upload per node.)
	creating sync.Mutex
}

var (
	_ handler.DataStore              = (*Store)(nil)
	_ handler.TerminaterDataStore    = (*Store)(nil)
	_ handler.ContentServerDataStore = (*Store)(nil)
	_ handler.Upload                 = (*storedUpload)(nil)
)

// New opens the store in cfg.Dir, creating the directory.
func New(cfg Config) (*Store, error) {
	cfg.applyDefaults()
	if cfg.Dir == "" {
		return nil, errors.New("upload: Config.Dir is required")
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("upload: %w", err)
	}
	s := &Store{cfg: cfg, files: filestore.New(cfg.Dir), locker: cfg.Locker}
	if s.locker == nil {
		s.locker = filelocker.New(cfg.Dir)
	}
	return s, nil
}

// Config returns the store's configuration (defaults applied).
func (s *Store) Config() Config { return s.cfg }

type userKey struct{}

// WithUser returns ctx carrying the user the store acts for: every
// GetUpload and NewUpload reads it (the tus handler's hooks and store calls
// see the request context's values).
func WithUser(ctx context.Context, user string) context.Context {
	return context.WithValue(ctx, userKey{}, user)
}

func userOf(ctx context.Context) string {
	u, _ := ctx.Value(userKey{}).(string)
	return u
}

// NewUpload creates an upload for the context's user after the checks of
// its metadata and the user's limits.
func (s *Store) NewUpload(ctx context.Context, info handler.FileInfo) (handler.Upload, error) {
	user := userOf(ctx)
	if user == "" {
		return nil, errNoUser
	}
	if info.SizeIsDeferred || info.IsPartial || info.IsFinal {
		return nil, newError(http.StatusBadRequest, "ERR_UNSUPPORTED", "deferred lengths and concatenation are not supported: declare Upload-Length")
	}
	meta := handler.MetaData{}
	for k, v := range info.MetaData {
		meta[k] = v
	}
	name := meta[metaName]
	if name == "" {
		name = meta["name"]
	}
	sum := strings.ToLower(meta[metaSHA])
	switch {
	case info.Size <= 0:
		return nil, newError(http.StatusBadRequest, "ERR_BAD_SIZE", "upload size %d: want > 0", info.Size)
	case name == "" || len(name) > maxNameBytes:
		return nil, newError(http.StatusBadRequest, "ERR_BAD_METADATA", "upload needs a name of 1 to %d bytes (metadata \"filename\")", maxNameBytes)
	case !isSHA256Hex(sum):
		return nil, newError(http.StatusBadRequest, "ERR_BAD_METADATA", "upload needs the sha256 of its bytes as 64 hex digits (metadata \"sha256\")")
	case info.Size > s.cfg.MaxSize:
		return nil, newError(http.StatusRequestEntityTooLarge, "ERR_MAX_SIZE_EXCEEDED", "upload size %d passes the limit of %d bytes (uploads.max_size)", info.Size, s.cfg.MaxSize)
	}
	meta[metaName], meta[metaSHA], meta[metaUser] = name, sum, user
	delete(meta, "name")
	info.MetaData = meta
	info.ID = "" // the store makes it: a client-chosen id could collide or reach outside Dir

	s.creating.Lock()
	defer s.creating.Unlock()
	active, bytes, err := s.usage(ctx, user)
	if err != nil {
		return nil, err
	}
	switch {
	case active >= s.cfg.MaxActivePerUser:
		return nil, newError(http.StatusTooManyRequests, "ERR_TOO_MANY_UPLOADS", "user has %d unfinished uploads, the limit (uploads.max_active_per_user): finish or delete one first", active)
	case bytes+info.Size > s.cfg.MaxBytesPerUser:
		return nil, newError(http.StatusRequestEntityTooLarge, "ERR_QUOTA_EXCEEDED", "user's unfinished uploads declare %d bytes; %d more would pass the limit of %d (uploads.max_bytes_per_user)", bytes, info.Size, s.cfg.MaxBytesPerUser)
	}
	up, err := s.files.NewUpload(ctx, info)
	if err != nil {
		return nil, err
	}
	info, err = up.GetInfo(ctx)
	if err != nil {
		return nil, err
	}
	return &storedUpload{Upload: up, store: s, info: info}, nil
}

// GetUpload finds an upload of the context's user. Another user's upload
// is not found (404, as an id that does not exist); a partial upload past
// its TTL is removed and answers 410.
func (s *Store) GetUpload(ctx context.Context, id string) (handler.Upload, error) {
	user := userOf(ctx)
	if user == "" {
		return nil, errNoUser
	}
	up, info, err := s.load(ctx, id)
	if err != nil {
		return nil, err
	}
	if info.MetaData[metaUser] != user {
		return nil, errNotFound
	}
	if s.expired(info, s.cfg.Now()) {
		s.remove(ctx, up, info)
		s.cfg.Metrics.UploadExpired()
		return nil, errExpired
	}
	return &storedUpload{Upload: up, store: s, info: info}, nil
}

// load reads an upload whoever owns it.
func (s *Store) load(ctx context.Context, id string) (handler.Upload, handler.FileInfo, error) {
	if !validID.MatchString(id) {
		return nil, handler.FileInfo{}, errBadID
	}
	up, err := s.files.GetUpload(ctx, id)
	if err != nil {
		if errors.Is(err, handler.ErrNotFound) {
			err = errNotFound
		}
		return nil, handler.FileInfo{}, err
	}
	info, err := up.GetInfo(ctx)
	return up, info, err
}

// AsTerminatableUpload lets the tus handler delete an upload (DELETE).
func (s *Store) AsTerminatableUpload(up handler.Upload) handler.TerminatableUpload {
	return s.files.AsTerminatableUpload(unwrap(up))
}

// AsServableUpload lets the owner download an upload (GET).
func (s *Store) AsServableUpload(up handler.Upload) handler.ServableUpload {
	return s.files.AsServableUpload(unwrap(up))
}

func unwrap(up handler.Upload) handler.Upload {
	if su, ok := up.(*storedUpload); ok {
		return su.Upload
	}
	return up
}

// lastActivity is when an upload last received bytes (or was created).
func lastActivity(info handler.FileInfo) time.Time {
	var t time.Time
	for _, p := range []string{info.Storage[filestore.StorageKeyPath], info.Storage[filestore.StorageKeyInfoPath]} {
		if st, err := os.Stat(p); err == nil && st.ModTime().After(t) {
			t = st.ModTime()
		}
	}
	return t
}

// expired reports whether a partial upload passed its TTL.
func (s *Store) expired(info handler.FileInfo, now time.Time) bool {
	return info.Offset < info.Size && now.Sub(lastActivity(info)) > s.cfg.TTL
}

// remove deletes an upload's files (errors are logged: the sweep tries
// again).
func (s *Store) remove(ctx context.Context, up handler.Upload, info handler.FileInfo) {
	if err := s.files.AsTerminatableUpload(unwrap(up)).Terminate(ctx); err != nil {
		s.cfg.Logger.Warn("upload: remove", "upload", info.ID, "err", err)
	}
}

// usage counts a user's partial uploads and adds up their declared sizes.
// It reads every .info file in Dir: fine for the thousands of uploads a
// node holds at once; an index is the next step past that.
func (s *Store) usage(ctx context.Context, user string) (active int, bytes int64, err error) {
	err = s.each(ctx, func(_ handler.Upload, info handler.FileInfo) {
		if info.MetaData[metaUser] == user && info.Offset < info.Size {
			active++
			bytes += info.Size
		}
	})
	return active, bytes, err
}

// each calls fn for every upload in the store.
func (s *Store) each(ctx context.Context, fn func(handler.Upload, handler.FileInfo)) error {
	names, err := filepath.Glob(filepath.Join(s.cfg.Dir, "*.info"))
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		id := strings.TrimSuffix(filepath.Base(n), ".info")
		up, info, err := s.load(ctx, id)
		if err != nil {
			continue // removed meanwhile, or half written: not counted
		}
		fn(up, info)
	}
	return nil
}

// storedUpload is a filestore upload whose writes are made durable and
// counted.
type storedUpload struct {
	handler.Upload
	store *Store
	info  handler.FileInfo
}

// WriteChunk appends src and, unless Config.NoSync, fsyncs the file before
// it returns: the offset the caller reports is then on disk.
func (u *storedUpload) WriteChunk(ctx context.Context, offset int64, src io.Reader) (int64, error) {
	n, err := u.Upload.WriteChunk(ctx, offset, src)
	u.store.cfg.Metrics.UploadBytes(n)
	if n > 0 && !u.store.cfg.NoSync {
		if serr := syncFile(u.info.Storage[filestore.StorageKeyPath]); err == nil {
			err = serr
		}
	}
	return n, err
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func isSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
