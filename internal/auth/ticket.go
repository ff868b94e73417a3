package auth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// KV keeps small values with expiry where every node can read them; the
// broker provides it. Take must return the value and delete the key in one
// atomic step, so that of two concurrent Takes of a key only one gets the
// value.
type KV interface {
	Set(ctx context.Context, key string, val []byte, ttl time.Duration) error
	Take(ctx context.Context, key string) ([]byte, error)
}

// TicketConfig configures a TicketStore.
type TicketConfig struct {
	// TTL is how long a ticket can be redeemed. Default 30s.
	TTL time.Duration
	// NotFound is the error the KV returns from Take for a missing or
	// expired key (for a broker: broker.ErrNotFound); Redeem turns it into
	// ErrTicketInvalid. A Take that returns a nil value and no error is
	// also taken as missing. Default none: every Take error is reported as
	// a store failure.
	NotFound error
	// Clock tells the time. Default time.Now.
	Clock func() time.Time
}

// ticketIDLen is the length of a ticket: 128 random bits in unpadded
// base64url.
const ticketIDLen = 22

// ticketKeyPrefix namespaces tickets in the KV.
const ticketKeyPrefix = "ticket:"

// TicketStore issues and redeems single-use tickets: a ticket stands for a
// credential (a verified token, or a session token) for a short time, so
// that clients that cannot set headers (browser WebSocket, EventSource)
// can put the ticket, not the credential, in a URL. Safe for concurrent
// use.
type TicketStore struct {
	kv       KV
	ttl      time.Duration
	notFound error
	clock    func() time.Time
}

// NewTicketStore returns a store keeping tickets in kv.
func NewTicketStore(kv KV, cfg TicketConfig) *TicketStore {
	ttl := cfg.TTL
	if ttl <= 0 {
		ttl = 30 * time.Second
	}
	clock := cfg.Clock
	if clock == nil {
		clock = time.Now
	}
	return &TicketStore{kv: kv, ttl: ttl, notFound: cfg.NotFound, clock: clock}
}

// Issue stores token (which the caller has verified) under a new random
// ticket and returns the ticket. It is valid for the store's TTL and can
// be redeemed once.
func (s *TicketStore) Issue(ctx context.Context, token string) (string, error) {
	if token == "" {
		return "", errors.New("auth: issue ticket: empty token")
	}
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", fmt.Errorf("auth: issue ticket: %w", err)
	}
	ticket := base64.RawURLEncoding.EncodeToString(id[:])
	// The expiry travels with the value too, so that a KV whose expiry is
	// coarse or lazy cannot stretch a ticket's life.
	val := make([]byte, 8, 8+len(token))
	binary.BigEndian.PutUint64(val, uint64(s.clock().Add(s.ttl).UnixNano()))
	val = append(val, token...)
	if err := s.kv.Set(ctx, ticketKeyPrefix+ticket, val, s.ttl); err != nil {
		return "", fmt.Errorf("auth: issue ticket: %w", err)
	}
	return ticket, nil
}

// Redeem returns the token a ticket stands for and consumes the ticket.
// An unknown, already used or expired ticket gives ErrTicketInvalid; other
// errors are the KV's. Redeem does not verify the token again; callers
// that need it still valid (exp may have passed meanwhile) verify it.
func (s *TicketStore) Redeem(ctx context.Context, ticket string) (string, error) {
	if !validTicket(ticket) {
		return "", ErrTicketInvalid
	}
	val, err := s.kv.Take(ctx, ticketKeyPrefix+ticket)
	if err != nil {
		if s.notFound != nil && errors.Is(err, s.notFound) {
			return "", ErrTicketInvalid
		}
		return "", fmt.Errorf("auth: redeem ticket: %w", err)
	}
	if len(val) <= 8 {
		return "", ErrTicketInvalid
	}
	exp := int64(binary.BigEndian.Uint64(val))
	if s.clock().UnixNano() >= exp {
		return "", ErrTicketInvalid
	}
	return string(val[8:]), nil
}

// validTicket checks the shape of a ticket before any KV round trip.
func validTicket(t string) bool {
	if len(t) != ticketIDLen {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
