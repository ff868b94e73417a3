package session

import (
	"errors"

	"github.com/ferry-io/ferry/internal/auth"
	"github.com/ferry-io/ferry/protocol"
)

// Adoption is an HTTP session (SSE or long-poll) that this node takes over
// from the record another node saved under its session token: the client's
// next request came here (the old node died, or a load balancer moved it).
type Adoption struct {
	// Session is the session id to resume.
	Session string
	// Claims are the claims the session was opened with (from the record).
	Claims *auth.Claims
	// SessionToken is the HTTP session's credential.
	SessionToken string
	// ResumeSeq is the seq of the last message the client received
	// (Last-Event-ID), or -1 when it did not say.
	ResumeSeq int64
}

// ErrNotAdopted is returned by Adopt when the session could not be taken
// over (the claims were refused); the new session is closed.
var ErrNotAdopted = errors.New("session: could not be adopted")

// binder is a transport that must know its session before the session's
// connect runs (the fallback transport: a refusal closes it).
type binder interface{ Bind(*Session) }

// Adopt starts a session on the pull transport t that resumes the HTTP
// session a describes, without the client's resume token (the record does
// not keep it; holding the session token is the credential). It returns
// the session connected, its connected frame already taken out of the
// queue (it is this node's bookkeeping, not news to the client). When the
// old state is gone (expired) the session is a new one: ResumeInfo's id
// differs from a.Session.
func Adopt(env *Env, t Transport, a Adoption) (*Session, error) {
	s := New(env, t, Handshake{
		Claims:       a.Claims,
		Codec:        protocol.JSON,
		SessionToken: a.SessionToken,
		ResumeSeq:    a.ResumeSeq,
		adopt:        true,
	})
	if b, ok := t.(binder); ok {
		b.Bind(s)
	}
	if env.Metrics != nil {
		env.Metrics.FrameIn(protocol.TypeConnect) // counted as the connect it stands for
	}
	s.handleConnect(&protocol.ClientFrame{Type: protocol.TypeConnect, Resume: &protocol.Resume{Session: a.Session}})
	if !s.Connected() {
		s.Close(protocol.CloseUnauthorized, "session could not be adopted")
		return nil, ErrNotAdopted
	}
	if s.puller != nil {
		_, _ = s.Pull(nil, nil, 1)
	}
	return s, nil
}
