package upload

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/tus/tusd/v2/pkg/handler"

	"github.com/ferry-io/ferry/protocol"
)

// lockTimeout bounds the wait for an upload's lock on the session path.
const lockTimeout = 5 * time.Second

// onDoneTimeout bounds Config.OnDone (the publish to uploads.channel).
const onDoneTimeout = 10 * time.Second

// Begin is what upload.begin asks for.
type Begin struct {
	Name   string
	Size   int64
	SHA256 string
	// Upload, when set, names the upload to continue; otherwise the
	// user's upload of the same name, size and sha256 is continued when
	// there is one.
	Upload string
}

// Begin starts an upload for user, or finds the one to continue, and
// returns its id and the offset to send from. Errors are *protocol.Error.
func (s *Store) Begin(ctx context.Context, user string, b Begin) (id string, offset int64, err error) {
	const frame = protocol.TypeUploadBegin
	ctx = WithUser(ctx, user)
	info, found, err := s.findResumable(ctx, b)
	if err != nil {
		return "", 0, asProtocol(frame, err)
	}
	if found {
		if info.Offset > 0 {
			s.cfg.Metrics.UploadResumed()
		}
		return info.ID, info.Offset, nil
	}
	up, err := s.NewUpload(ctx, handler.FileInfo{
		Size:     b.Size,
		MetaData: handler.MetaData{metaName: b.Name, metaSHA: b.SHA256},
	})
	if err != nil {
		return "", 0, asProtocol(frame, err)
	}
	info, err = up.GetInfo(ctx)
	if err != nil {
		return "", 0, asProtocol(frame, err)
	}
	return info.ID, 0, nil
}

// findResumable finds the upload b continues: the named one (which must
// be for the same file), or the newest of the user's uploads of the same
// name, size and sha256.
func (s *Store) findResumable(ctx context.Context, b Begin) (handler.FileInfo, bool, error) {
	same := func(info handler.FileInfo) bool {
		return info.Size == b.Size && info.MetaData[metaName] == b.Name && info.MetaData[metaSHA] == b.SHA256
	}
	if b.Upload != "" {
		up, err := s.GetUpload(ctx, b.Upload)
		if err != nil {
			return handler.FileInfo{}, false, err
		}
		info, err := up.GetInfo(ctx)
		if err != nil {
			return handler.FileInfo{}, false, err
		}
		if !same(info) {
			return handler.FileInfo{}, false, newError(http.StatusConflict, "ERR_OTHER_FILE", "upload %s was begun for another file (name, size or sha256 differ)", b.Upload)
		}
		return info, true, nil
	}
	user := userOf(ctx)
	var best handler.FileInfo
	var bestAt time.Time
	found := false
	err := s.each(ctx, func(_ handler.Upload, info handler.FileInfo) {
		if info.MetaData[metaUser] != user || !same(info) || s.expired(info, s.cfg.Now()) {
			return
		}
		if at := lastActivity(info); !found || at.After(bestAt) {
			best, bestAt, found = info, at, true
		}
	})
	return best, found, err
}

// Chunk writes data at offset to user's upload id and returns the new
// offset, once the bytes are durable. A wrong offset is 409 naming the
// right one; bytes past the declared size are 400. Errors are
// *protocol.Error.
func (s *Store) Chunk(ctx context.Context, user, id string, offset int64, data []byte) (int64, error) {
	const frame = protocol.TypeUploadChunk
	ctx = WithUser(ctx, user)
	unlock, err := s.lock(ctx, id)
	if err != nil {
		return 0, asProtocol(frame, err)
	}
	defer unlock()
	up, err := s.GetUpload(ctx, id)
	if err != nil {
		return 0, asProtocol(frame, err)
	}
	info, err := up.GetInfo(ctx)
	if err != nil {
		return 0, asProtocol(frame, err)
	}
	switch {
	case offset != info.Offset:
		return 0, protocol.Errorf(protocol.CodeConflict, "%s: offset %d is not where upload %s is: continue from offset %d", frame, offset, id, info.Offset)
	case offset+int64(len(data)) > info.Size:
		return 0, protocol.Errorf(protocol.CodeBadRequest, "%s: %d bytes at offset %d pass the upload's declared size %d", frame, len(data), offset, info.Size)
	}
	n, err := up.WriteChunk(ctx, offset, bytes.NewReader(data))
	if err != nil {
		return 0, asProtocol(frame, err)
	}
	return offset + n, nil
}

// Commit verifies the sha256 of user's complete upload id and reports it
// done (Config.OnDone). A wrong hash removes the upload: 409. Errors are
// *protocol.Error.
func (s *Store) Commit(ctx context.Context, user, id string) (Done, error) {
	const frame = protocol.TypeUploadCommit
	ctx = WithUser(ctx, user)
	unlock, err := s.lock(ctx, id)
	if err != nil {
		return Done{}, asProtocol(frame, err)
	}
	defer unlock()
	up, err := s.GetUpload(ctx, id)
	if err != nil {
		return Done{}, asProtocol(frame, err)
	}
	info, err := up.GetInfo(ctx)
	if err != nil {
		return Done{}, asProtocol(frame, err)
	}
	if info.Offset < info.Size {
		return Done{}, protocol.Errorf(protocol.CodeConflict, "%s: upload %s has %d of its %d bytes: send from offset %d first", frame, id, info.Offset, info.Size, info.Offset)
	}
	d, err := s.verify(ctx, up, info)
	if err != nil {
		return Done{}, asProtocol(frame, err)
	}
	return d, nil
}

// verify hashes a complete upload: on a match it reports the upload done,
// on a mismatch it removes the upload and returns a 409.
func (s *Store) verify(ctx context.Context, up handler.Upload, info handler.FileInfo) (Done, error) {
	r, err := up.GetReader(ctx)
	if err != nil {
		return Done{}, err
	}
	h := sha256.New()
	_, err = io.Copy(h, r)
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return Done{}, err
	}
	got, want := hex.EncodeToString(h.Sum(nil)), info.MetaData[metaSHA]
	if got != want {
		s.remove(ctx, up, info)
		s.cfg.Metrics.UploadRejected()
		return Done{}, newError(http.StatusConflict, "ERR_CHECKSUM_MISMATCH", "the upload's bytes hash to sha256 %s, not the declared %s: the upload was removed, begin again", got, want)
	}
	d := Done{
		Type: protocol.TypeUploadDone, ID: info.ID, Name: info.MetaData[metaName], Size: info.Size, SHA256: want,
		User: info.MetaData[metaUser], URL: s.cfg.BasePath + info.ID,
	}
	s.cfg.Metrics.UploadCompleted()
	if s.cfg.OnDone != nil {
		// Hashing a large file may have used up the request's time: the
		// report gets its own, still carrying the request's values.
		octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), onDoneTimeout)
		defer cancel()
		s.cfg.OnDone(octx, d)
	}
	return d, nil
}

// lock takes the upload's lock (the one the tus handler takes for a PATCH
// or DELETE) and returns its release.
func (s *Store) lock(ctx context.Context, id string) (func(), error) {
	if !validID.MatchString(id) {
		return nil, errBadID
	}
	l, err := s.locker.NewLock(id)
	if err != nil {
		return nil, err
	}
	lctx, cancel := context.WithTimeout(ctx, lockTimeout)
	defer cancel()
	// requestRelease: a chunk holds the lock for one write, so a request
	// that asks for it gets it when this write ends.
	if err := l.Lock(lctx, func() {}); err != nil {
		if errors.Is(err, handler.ErrLockTimeout) {
			return nil, errBusy
		}
		return nil, err
	}
	return func() {
		if err := l.Unlock(); err != nil {
			s.cfg.Logger.Warn("upload: unlock", "upload", id, "err", err)
		}
	}, nil
}
