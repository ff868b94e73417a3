package upload

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/tus/tusd/v2/pkg/handler"

	"github.com/ferry-io/ferry/broker"
)

// BrokerLockerConfig configures a BrokerLocker. The zero value of every
// field is its documented default.
type BrokerLockerConfig struct {
	// TTL is the lease of a held lock: the holder refreshes it every TTL/3,
	// and a lock whose holder died (its node crashed or lost the broker)
	// frees itself TTL after the last refresh. Default 30s.
	TTL time.Duration
	// Poll is how often a Lock waiting for a held lock tries again, and how
	// often a holder looks whether another request asked it to release.
	// Default 200ms.
	Poll time.Duration
	// Logger receives lost leases and failed refreshes. Default
	// slog.Default().
	Logger *slog.Logger
}

func (c *BrokerLockerConfig) applyDefaults() {
	if c.TTL <= 0 {
		c.TTL = 30 * time.Second
	}
	if c.Poll <= 0 {
		c.Poll = 200 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// BrokerLocker is a tusd Locker on the cluster broker's broker.Locker: one
// upload's lock is one lease in the broker, so writers of one upload are
// serialized across every node on that broker, whatever file system the
// nodes share.
//
// Release requests (tusd's requestRelease, which ends a PATCH that holds
// the lock when another request wants it) travel through the broker's KV
// when the broker has broker.KV: a waiter sets the upload's release key on
// each failed try, and the holder takes it at its next Poll. Without KV a
// waiter gets the lock when the holder ends by itself, or when its lease
// lapses.
type BrokerLocker struct {
	locks broker.Locker
	kv    broker.KV // nil: no release requests
	cfg   BrokerLockerConfig
}

var (
	_ handler.Locker = (*BrokerLocker)(nil)
	_ handler.Lock   = (*brokerLock)(nil)
)

// NewBrokerLocker returns a tusd Locker on l (and on l's broker.KV for
// release requests when l has it).
func NewBrokerLocker(l broker.Locker, cfg BrokerLockerConfig) *BrokerLocker {
	cfg.applyDefaults()
	kv, _ := l.(broker.KV)
	return &BrokerLocker{locks: l, kv: kv, cfg: cfg}
}

// UseIn registers the locker with a tusd store composer.
func (l *BrokerLocker) UseIn(c *handler.StoreComposer) { c.UseLocker(l) }

// NewLock returns the (not yet taken) lock of upload id.
func (l *BrokerLocker) NewLock(id string) (handler.Lock, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("upload lock %q: %w", id, err)
	}
	return &brokerLock{
		l:       l,
		id:      id,
		key:     "upload.lock." + id,
		release: "upload.release." + id,
		owner:   hex.EncodeToString(b[:]),
	}, nil
}

// brokerLock is one request's hold on one upload's lock. Lock and Unlock
// are called by one goroutine (the request's); the holder goroutine started
// by Lock ends before Unlock touches the broker.
type brokerLock struct {
	l       *BrokerLocker
	id      string
	key     string // the lease in broker.Locker
	release string // the release request in broker.KV
	owner   string // random per lock: this request, on this node

	stop chan struct{}  // closed by Unlock: the holder goroutine ends
	done sync.WaitGroup // the holder goroutine
}

// Lock takes the upload's lock, trying every Poll until ctx ends
// (handler.ErrLockTimeout). While it waits it asks the holder to release.
func (k *brokerLock) Lock(ctx context.Context, requestRelease func()) error {
	if k.stop != nil {
		return fmt.Errorf("upload lock %q: already locked", k.id)
	}
	cfg := k.l.cfg
	for {
		ok, err := k.l.locks.TryLock(ctx, k.key, k.owner, cfg.TTL)
		switch {
		case ctx.Err() != nil:
			if ok {
				k.unlockQuietly()
			}
			return handler.ErrLockTimeout
		case err != nil:
			return fmt.Errorf("upload lock %q: %w", k.id, err)
		case ok:
			k.held(requestRelease)
			return nil
		}
		k.askRelease(ctx)
		select {
		case <-ctx.Done():
			return handler.ErrLockTimeout
		case <-time.After(cfg.Poll):
		}
	}
}

// askRelease records that a request waits for the lock (best effort: a
// lost request only means waiting for the holder to finish).
func (k *brokerLock) askRelease(ctx context.Context) {
	if k.l.kv == nil {
		return
	}
	if err := k.l.kv.Set(ctx, k.release, []byte(k.owner), k.l.cfg.TTL); err != nil && ctx.Err() == nil {
		k.l.cfg.Logger.Debug("upload lock: release request not recorded", "upload", k.id, "err", err)
	}
}

// held starts the holder goroutine: it refreshes the lease every TTL/3
// and calls requestRelease when another request asked for the lock or when
// the lease was lost (refused, or not refreshed for a whole TTL).
func (k *brokerLock) held(requestRelease func()) {
	cfg := k.l.cfg
	if k.l.kv != nil {
		// A request left from before this lock was taken is stale: the
		// waiters still waiting set it again at their next try.
		dctx, cancel := context.WithTimeout(context.Background(), cfg.TTL/3)
		_ = k.l.kv.Delete(dctx, k.release)
		cancel()
	}
	k.stop = make(chan struct{})
	k.done.Add(1)
	go func() {
		defer k.done.Done()
		tick := time.NewTicker(cfg.Poll)
		defer tick.Stop()
		refreshed := time.Now()
		asked := false // requestRelease is called (and a loss logged) once
		ask := func(msg string, args ...any) {
			if asked {
				return
			}
			asked = true
			if msg != "" {
				cfg.Logger.Warn(msg, append([]any{"upload", k.id}, args...)...)
			}
			requestRelease()
		}
		for {
			select {
			case <-k.stop:
				return
			case <-tick.C:
			}
			if k.released() {
				ask("")
			}
			if time.Since(refreshed) < cfg.TTL/3 {
				continue
			}
			ok, err := k.refresh()
			switch {
			case ok:
				refreshed = time.Now()
			case err == nil:
				ask("upload lock: lease lost (another request holds the upload now)")
			case time.Since(refreshed) >= cfg.TTL:
				ask("upload lock: lease not refreshed for its whole ttl; it may be lost", "err", err)
			}
		}
	}()
}

// refresh extends the lease, bounded by a third of the TTL.
func (k *brokerLock) refresh() (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), k.l.cfg.TTL/3)
	defer cancel()
	return k.l.locks.Refresh(ctx, k.key, k.owner, k.l.cfg.TTL)
}

// released reports whether another request asked for the lock (taking
// the request, so that it is answered once).
func (k *brokerLock) released() bool {
	if k.l.kv == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), k.l.cfg.Poll)
	defer cancel()
	_, err := k.l.kv.Take(ctx, k.release)
	return err == nil
}

// Unlock stops the holder goroutine and frees the lease. ErrNotHeld means
// the lease had lapsed (or was taken over) while this request held it.
func (k *brokerLock) Unlock() error {
	if k.stop == nil {
		return fmt.Errorf("upload lock %q: not locked", k.id)
	}
	close(k.stop)
	k.done.Wait()
	k.stop = nil
	ctx, cancel := context.WithTimeout(context.Background(), k.l.cfg.TTL/3)
	defer cancel()
	if err := k.l.locks.Unlock(ctx, k.key, k.owner); err != nil {
		return fmt.Errorf("upload lock %q: %w", k.id, err)
	}
	return nil
}

// unlockQuietly frees a lease taken just as the caller gave up waiting.
func (k *brokerLock) unlockQuietly() {
	ctx, cancel := context.WithTimeout(context.Background(), k.l.cfg.TTL/3)
	defer cancel()
	if err := k.l.locks.Unlock(ctx, k.key, k.owner); err != nil && !errors.Is(err, broker.ErrNotHeld) {
		k.l.cfg.Logger.Warn("upload lock: unlock", "upload", k.id, "err", err)
	}
}
