package upload

import (
	"context"
	"time"

	"github.com/tus/tusd/v2/pkg/handler"
)

// Sweep removes partial uploads that saw no bytes for Config.TTL and
// complete ones older than Config.Keep, and sets ferry_uploads_active. It
// returns how many it removed. An upload whose lock is held (a write in
// progress) is left for the next sweep.
func (s *Store) Sweep(ctx context.Context, now time.Time) (removed int, err error) {
	active := 0
	err = s.each(ctx, func(up handler.Upload, info handler.FileInfo) {
		partial := info.Offset < info.Size
		age := now.Sub(lastActivity(info))
		switch {
		case partial && age > s.cfg.TTL:
		case !partial && age > s.cfg.Keep:
		default:
			if partial {
				active++
			}
			return
		}
		unlock, lerr := s.tryLock(ctx, info.ID)
		if lerr != nil {
			return
		}
		defer unlock()
		s.remove(ctx, up, info)
		removed++
		if partial {
			s.cfg.Metrics.UploadExpired()
		}
	})
	s.cfg.Metrics.SetUploadsActive(active)
	return removed, err
}

// tryLock takes an upload's lock unless another holder has it.
func (s *Store) tryLock(ctx context.Context, id string) (func(), error) {
	ctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	return s.lock(ctx, id)
}

// Run sweeps every interval until ctx is done.
func (s *Store) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if _, err := s.Sweep(ctx, now); err != nil && ctx.Err() == nil {
				s.cfg.Logger.Warn("upload: sweep", "err", err)
			}
		}
	}
}
