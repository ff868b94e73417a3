package nats

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Reads from a replicated stream are answered by its leader only. A
// request that reaches the servers while the stream has no leader (just
// created, or electing a new one after the old leader fell behind on a
// loaded machine) is dropped without an answer, and the leader elected a
// moment later does not answer it either. Waiting for it would spend the
// whole Config.Timeout on a request nobody will answer; reads are
// therefore sent again after a fraction of it. They change nothing, so
// repeating them is safe.

// minReadAttempt is the shortest time one read waits for its answer.
const minReadAttempt = 250 * time.Millisecond

// readAttempt is how long one read waits before it is sent again.
func (b *Broker) readAttempt() time.Duration {
	return max(b.cfg.Timeout/4, minReadAttempt)
}

// retryRead calls read with a deadline of attempt each time, again while
// the answer did not come in time and ctx is not done.
func retryRead[T any](ctx context.Context, attempt time.Duration, read func(context.Context) (T, error)) (T, error) {
	for {
		actx, cancel := context.WithTimeout(ctx, attempt)
		v, err := read(actx)
		cancel()
		if err == nil || ctx.Err() != nil ||
			!(errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)) {
			return v, err
		}
	}
}

// lastMsg reads the latest message of subj in stream s.
func (b *Broker) lastMsg(ctx context.Context, s jetstream.Stream, subj string) (*jetstream.RawStreamMsg, error) {
	return retryRead(ctx, b.readAttempt(), func(ctx context.Context) (*jetstream.RawStreamMsg, error) {
		return s.GetLastMsgForSubject(ctx, subj)
	})
}

// msgAt reads the message at sequence seq of stream s.
func (b *Broker) msgAt(ctx context.Context, s jetstream.Stream, seq uint64) (*jetstream.RawStreamMsg, error) {
	return retryRead(ctx, b.readAttempt(), func(ctx context.Context) (*jetstream.RawStreamMsg, error) {
		return s.GetMsg(ctx, seq)
	})
}

// awaitLeader reports whether s has a leader answering reads: it asks
// once for the latest message of subj (found or not, an answer is all it
// needs), waiting readAttempt for it. CreateStream answers at once for a
// stream that exists with the same config, even while that stream, just
// created by another node, has not elected its leader yet.
func (b *Broker) awaitLeader(ctx context.Context, s jetstream.Stream, subj string) error {
	ctx, cancel := context.WithTimeout(ctx, b.readAttempt())
	defer cancel()
	_, err := s.GetLastMsgForSubject(ctx, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil
	}
	return err
}
