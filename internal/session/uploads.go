package session

import (
	"context"

	"github.com/ferry-io/ferry/internal/upload"
	"github.com/ferry-io/ferry/protocol"
)

// Uploads is the upload store as the session frames use it
// (*upload.Store is one). Every call acts for one user: an upload of
// another user is not found. Errors are *protocol.Error.
//
// A chunk is handled on the connection's frame goroutine (never on the
// socket reactor), so while it is written the connection's other inbound
// frames wait behind it (one chunk: at most a frame, max_frame_bytes),
// while messages to the client keep flowing: they go out through the
// outbound queue and the writer pool, which the chunk does not touch.
type Uploads interface {
	// Begin starts or finds the upload and returns its id and the offset
	// to send from.
	Begin(ctx context.Context, user string, b upload.Begin) (id string, offset int64, err error)
	// Chunk writes data at offset and returns the new offset once the
	// bytes are durable.
	Chunk(ctx context.Context, user, id string, offset int64, data []byte) (int64, error)
	// Commit verifies the complete upload's sha256.
	Commit(ctx context.Context, user, id string) (upload.Done, error)
}

var _ Uploads = (*upload.Store)(nil)

// handleUpload answers upload.begin, upload.chunk and upload.commit.
func (s *Session) handleUpload(ctx context.Context, f *protocol.ClientFrame) error {
	up := s.env.Uploads
	if up == nil {
		return protocol.Errorf(protocol.CodeNotFound, "%s: uploads are not enabled on this server", f.Type)
	}
	user := s.User()
	switch f.Type {
	case protocol.TypeUploadBegin:
		id, off, err := up.Begin(ctx, user, upload.Begin{Name: f.Name, Size: f.Size, SHA256: f.SHA256, Upload: f.Upload})
		if err != nil {
			return err
		}
		s.reply(&protocol.UploadReady{ID: f.ID, Upload: id, Offset: off})
	case protocol.TypeUploadChunk:
		data, err := f.Data.DecodeBytes(nil)
		if err != nil {
			return protocol.Errorf(protocol.CodeBadRequest, "%s: data: %v", f.Type, err)
		}
		off, err := up.Chunk(ctx, user, f.Upload, f.Offset, data)
		if err != nil {
			return err
		}
		s.reply(&protocol.UploadProgress{ID: f.ID, Upload: f.Upload, Offset: off})
	case protocol.TypeUploadCommit:
		d, err := up.Commit(ctx, user, f.Upload)
		if err != nil {
			return err
		}
		s.reply(&protocol.UploadDone{ID: f.ID, Upload: d.ID, Size: d.Size, SHA256: d.SHA256, URL: d.URL})
	}
	return nil
}
