package client

import "sync"

// eventQueue runs callbacks one at a time, in order, on a goroutine of its
// own, so that the reader never waits for the application. It is unbounded:
// state changes and errors are few.
type eventQueue struct {
	mu      sync.Mutex
	fns     []func()
	wake    chan struct{}
	stopped bool // no more pushes; the goroutine exits once drained
	exited  chan struct{}
}

func newEventQueue() *eventQueue {
	return &eventQueue{wake: make(chan struct{}, 1), exited: make(chan struct{})}
}

// push queues fn; after stop it is dropped.
func (q *eventQueue) push(fn func()) {
	q.mu.Lock()
	if q.stopped {
		q.mu.Unlock()
		return
	}
	q.fns = append(q.fns, fn)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// stop lets the goroutine exit after the queued callbacks have run.
func (q *eventQueue) stop() {
	q.mu.Lock()
	q.stopped = true
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// run is the goroutine.
func (q *eventQueue) run() {
	defer close(q.exited)
	for {
		q.mu.Lock()
		fns := q.fns
		q.fns = nil
		stopped := q.stopped
		q.mu.Unlock()
		for _, fn := range fns {
			fn()
		}
		if len(fns) > 0 {
			continue
		}
		if stopped {
			return
		}
		<-q.wake
	}
}
