package session

import "sync"

// Writers is the node's pool of writer goroutines. A session with something
// to send is queued here once (its scheduled flag keeps it from being
// queued twice), so the queue never holds more entries than there are
// sessions and enqueue never blocks. No connection has a writer goroutine
// of its own.
type Writers struct {
	mu     sync.Mutex
	cond   *sync.Cond
	q      []*Session
	head   int // q[head:] is waiting
	closed bool
	wg     sync.WaitGroup
}

// NewWriters starts n writer goroutines.
func NewWriters(n int) *Writers {
	w := &Writers{}
	w.cond = sync.NewCond(&w.mu)
	for i := 0; i < n; i++ {
		w.wg.Add(1)
		go w.run()
	}
	return w
}

func (w *Writers) enqueue(s *Session) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.q = append(w.q, s)
	w.mu.Unlock()
	w.cond.Signal()
}

func (w *Writers) run() {
	defer w.wg.Done()
	var buf []byte
	var batch []*Session
	for {
		w.mu.Lock()
		for len(w.q) == w.head && !w.closed {
			w.cond.Wait()
		}
		if w.closed {
			w.mu.Unlock()
			return
		}
		// Take a few sessions at once to cut lock traffic.
		n := min(len(w.q)-w.head, 16)
		batch = append(batch[:0], w.q[w.head:w.head+n]...)
		clear(w.q[w.head : w.head+n])
		w.head += n
		if w.head == len(w.q) {
			w.q, w.head = w.q[:0], 0
		} else if w.head > 4096 && w.head > len(w.q)/2 {
			m := copy(w.q, w.q[w.head:])
			clear(w.q[m:])
			w.q, w.head = w.q[:m], 0
		}
		w.mu.Unlock()
		for _, s := range batch {
			buf = s.flush(buf)
		}
		clear(batch)
		if cap(buf) > 1<<20 {
			buf = nil // do not keep a huge buffer after a burst
		}
	}
}

// Close stops the writers and waits for them.
func (w *Writers) Close() {
	w.mu.Lock()
	w.closed = true
	w.q, w.head = nil, 0
	w.mu.Unlock()
	w.cond.Broadcast()
	w.wg.Wait()
}
