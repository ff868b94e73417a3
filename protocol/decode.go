package protocol

import (
	"fmt"
	"io"
)

// MaxFramesPerMessage is the most frames one message may batch. A message
// with more is malformed: without a bound, a message of empty objects
// ("[{},{},...]") would cost a receiver about a hundred times its size in
// decoded frames.
const MaxFramesPerMessage = 1024

// What a field of a client frame wants, in error reasons. Both codecs use
// the same words.
const (
	wantString = "a string"
	wantBool   = "true or false"
	wantUint32 = "an integer from 0 to 4294967295"
	wantUint64 = "a non-negative integer"
	wantInt    = "an integer"
	wantObject = "an object"
)

// invalidField is the reason for a frame with a field of the wrong type.
func invalidField(path, want, got string) string {
	const maxGot = 40 // "got number 123456..." can be as long as the input
	if len(got) > maxGot {
		got = got[:maxGot] + "..."
	}
	return fmt.Sprintf("field %q: want %s, got %s", path, want, got)
}

// malformed wraps ErrMalformed with what was wrong.
func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// internType returns the frame type named by b, without allocating for the
// known types.
func internType(b []byte) string {
	switch string(b) {
	case TypeConnect:
		return TypeConnect
	case TypeSubscribe:
		return TypeSubscribe
	case TypeUnsubscribe:
		return TypeUnsubscribe
	case TypePublish:
		return TypePublish
	case TypeAck:
		return TypeAck
	case TypePing:
		return TypePing
	case TypeRefresh:
		return TypeRefresh
	case TypeHistory:
		return TypeHistory
	case TypePresence:
		return TypePresence
	case TypeUploadBegin:
		return TypeUploadBegin
	case TypeUploadChunk:
		return TypeUploadChunk
	case TypeUploadCommit:
		return TypeUploadCommit
	case TypeRPC:
		return TypeRPC
	}
	return string(b)
}

// internPriority returns the priority named by b, without allocating for the
// known names.
func internPriority(b []byte) string {
	for _, p := range [...]Priority{PriorityNormal, PriorityCritical, PriorityDroppable} {
		if name := p.String(); string(b) == name {
			return name
		}
	}
	return string(b)
}

// appendWriter is an io.Writer (and io.ByteWriter) that appends to b; the
// encoders of AppendFrame write straight into the caller's buffer through it.
type appendWriter struct{ b []byte }

var _ io.ByteWriter = (*appendWriter)(nil)

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

func (w *appendWriter) WriteByte(c byte) error {
	w.b = append(w.b, c)
	return nil
}
