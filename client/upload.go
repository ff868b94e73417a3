package client

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/ferry-io/ferry/protocol"
)

// UploadOptions are the options of one Upload. The zero value is the
// documented defaults.
type UploadOptions struct {
	// SHA256 is the file's sha256 in hex. Default: Upload reads the file
	// once to compute it.
	SHA256 string
	// ChunkSize is the bytes of one upload.chunk frame. Default (and
	// upper bound): the most that fits the server's frame limit as base64.
	ChunkSize int
	// Window is how many chunks may be out before the first is
	// acknowledged. Default 4. A cut connection costs at most this many
	// chunks sent again.
	Window int
	// Progress, when set, is called with the bytes the server holds
	// durably (each upload.progress checkpoint) and the size.
	Progress func(done, size int64)
}

// UploadResult describes a completed upload.
type UploadResult struct {
	// ID is the upload's id (the last segment of its tus URL).
	ID     string
	Size   int64
	SHA256 string
	// URL is where its owner can fetch it over HTTP (a path on the server).
	URL string
	// Resumes counts the times the upload learned its offset again after a
	// lost connection or a refused chunk (0 when it went through at once).
	Resumes int
	// SentBytes is the chunk bytes read from the file and sent; a chunk
	// that went out again on a new connection by itself counts once, one
	// sent again after upload.begin told the offset again counts again.
	SentBytes int64
}

// Upload sends size bytes of r to the server as the file name (PROTOCOL.md
// section 5) and returns once the server verified their sha256.
//
// It resumes on its own: requests out when the connection drops go again
// on the next one (to whichever node the client reconnects to: the store is
// shared), and when a chunk is refused for its offset (409) Upload asks
// upload.begin again, which answers the offset the server holds, and goes
// on from there. Running it again after it failed (or in another process)
// for the same name, size and hash also continues where the server is.
// Errors from the server are *ServerError: 413/429 for the server's limits,
// 409 for a hash that does not match (the server dropped the upload).
func (c *Client) Upload(ctx context.Context, name string, r io.ReaderAt, size int64, opts UploadOptions) (UploadResult, error) {
	if name == "" || size <= 0 {
		return UploadResult{}, fmt.Errorf("upload: need a name and a size > 0 (got %q, %d)", name, size)
	}
	sum := opts.SHA256
	if sum == "" {
		h := sha256.New()
		if _, err := io.Copy(h, io.NewSectionReader(r, 0, size)); err != nil {
			return UploadResult{}, fmt.Errorf("upload %q: hash: %w", name, err)
		}
		sum = hex.EncodeToString(h.Sum(nil))
	}
	u := uploader{c: c, r: r, size: size, opts: opts, res: UploadResult{Size: size, SHA256: sum}}
	begin := protocol.ClientFrame{Type: protocol.TypeUploadBegin, Name: name, Size: size, SHA256: sum}
	for {
		rep, err := c.do(ctx, begin)
		if err != nil && begin.Upload != "" && isCode(err, protocol.CodeNotFound) {
			begin.Upload = "" // expired or dropped meanwhile: start again
			continue
		}
		if err != nil {
			return u.res, fmt.Errorf("upload %q: %w", name, err)
		}
		u.res.ID, begin.Upload = rep.Upload, rep.Upload
		off := int64(rep.Offset)
		if u.opts.Progress != nil {
			u.opts.Progress(off, size)
		}
		off, err = u.send(ctx, off)
		if isCode(err, protocol.CodeConflict) {
			u.res.Resumes++
			continue // learn the offset again
		}
		if err != nil {
			return u.res, fmt.Errorf("upload %q: %w", name, err)
		}
		done, err := c.do(ctx, protocol.ClientFrame{Type: protocol.TypeUploadCommit, Upload: u.res.ID})
		if err != nil {
			if isCode(err, protocol.CodeConflict) && off < size {
				u.res.Resumes++
				continue
			}
			return u.res, fmt.Errorf("upload %q: %w", name, err)
		}
		u.res.URL = done.URL
		return u.res, nil
	}
}

// uploader is one Upload's state.
type uploader struct {
	c    *Client
	r    io.ReaderAt
	size int64
	opts UploadOptions
	res  UploadResult
}

// send sends the chunks from off with up to Window out at once and
// returns the offset the server acknowledged last. A refused chunk (409)
// ends it after the chunks still out are answered.
func (u *uploader) send(ctx context.Context, off int64) (int64, error) {
	window := u.opts.Window
	if window <= 0 {
		window = 4
	}
	chunk := u.chunkSize()
	buf := make([]byte, chunk)
	var out []*request
	next, acked := off, off
	var firstErr error
	for next < u.size || len(out) > 0 {
		for firstErr == nil && next < u.size && len(out) < window {
			n := min(int64(chunk), u.size-next)
			if _, err := u.r.ReadAt(buf[:n], next); err != nil && !errors.Is(err, io.EOF) {
				firstErr = fmt.Errorf("read at %d: %w", next, err)
				break
			}
			data := make([]byte, 0, base64.StdEncoding.EncodedLen(int(n))+2)
			data = append(data, '"')
			data = base64.StdEncoding.AppendEncode(data, buf[:n])
			data = append(data, '"')
			r, err := u.c.start(ctx, protocol.ClientFrame{Type: protocol.TypeUploadChunk, Upload: u.res.ID, Offset: next, Data: data}, true, nil)
			if err != nil {
				firstErr = err
				break
			}
			out = append(out, r)
			u.res.SentBytes += n
			next += n
		}
		if len(out) == 0 {
			break
		}
		rep, err := u.c.await(ctx, out[0])
		out = out[1:]
		switch {
		case err != nil:
			if firstErr == nil {
				firstErr = err
			}
		case int64(rep.Offset) > acked:
			acked = int64(rep.Offset)
			if u.opts.Progress != nil {
				u.opts.Progress(acked, u.size)
			}
		}
	}
	return acked, firstErr
}

// chunkSize is the chunk that fits the server's frame limit as base64 in
// a JSON frame, with room for the rest of the frame.
func (u *uploader) chunkSize() int {
	u.c.mu.Lock()
	limit := u.c.maxFrame
	u.c.mu.Unlock()
	const overhead = 256 // type, ids, offset, quotes
	most := max((limit-overhead)/4*3, 1)
	if u.opts.ChunkSize > 0 && u.opts.ChunkSize < most {
		return u.opts.ChunkSize
	}
	return most
}

// isCode reports whether err is a server error with code.
func isCode(err error, code int) bool {
	var se *ServerError
	return errors.As(err, &se) && se.Code == code
}
