package upload

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/tus/tusd/v2/pkg/handler"

	"github.com/ferry-io/ferry/protocol"
)

// Errors are tusd's handler.Error (an HTTP status, a code and a message), so
// that the tus handler answers them as they are; the session path turns
// them into protocol errors with the same code (asProtocol).
var (
	errNoUser   = handler.NewError("ERR_UNAUTHORIZED", "uploads need an authenticated user (a token with a subject)", http.StatusUnauthorized)
	errNotFound = handler.NewError("ERR_UPLOAD_NOT_FOUND", "upload not found", http.StatusNotFound)
	errBadID    = handler.NewError("ERR_UPLOAD_NOT_FOUND", "upload not found (malformed id)", http.StatusNotFound)
	errExpired  = handler.NewError("ERR_UPLOAD_EXPIRED", "upload expired: it saw no bytes for uploads.ttl and was removed; begin again", http.StatusGone)
	errBusy     = handler.NewError("ERR_UPLOAD_BUSY", "upload is locked by another request: retry", http.StatusServiceUnavailable)
)

func newError(status int, code, format string, args ...any) handler.Error {
	return handler.NewError(code, fmt.Sprintf(format, args...), status)
}

// asProtocol turns an error of the store into a protocol error for a
// session reply: a handler.Error keeps its HTTP status as the code, any
// other error is a 500.
func asProtocol(frame string, err error) *protocol.Error {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return pe
	}
	var he handler.Error
	if errors.As(err, &he) {
		code := he.HTTPResponse.StatusCode
		if code == http.StatusGone {
			code = protocol.CodeNotFound // the protocol's codes have no 410
		}
		return protocol.Errorf(code, "%s: %s", frame, he.Message)
	}
	return protocol.Errorf(protocol.CodeInternal, "%s: %v", frame, err)
}
