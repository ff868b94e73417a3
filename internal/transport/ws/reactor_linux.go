//go:build linux

package ws

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// reactorEvents is what a loop asks epoll to report for a connection that
// is reading: readability, and the peer's half-close.
const reactorEvents = unix.EPOLLIN | unix.EPOLLRDHUP

// reactorReadSize is the read buffer of one loop: every connection of the
// loop reads into it in turn, so no connection holds a buffer of its own.
const reactorReadSize = 64 << 10

// Reactor waits for inbound bytes on many connections with a few epoll
// loops instead of a goroutine per connection, so an idle connection costs
// neither a goroutine stack nor a read buffer. Each loop reads a ready
// connection into its own buffer, parses what arrived and calls the
// connection's Handler.OnMessage in line: handlers served by a Reactor must
// return quickly (queue the work, never wait for it).
//
// Writes do not go through the Reactor: they stay non-blocking attempts on
// the caller's goroutine, with a flusher only while a backlog lasts.
//
// A Reactor is shared by every connection of a server (Options.Reactor) and
// closed once after them (Close).
type Reactor struct {
	loops []*loop
	next  atomic.Uint32
	ids   atomic.Uint64 // connection ids; 0 is each loop's wake descriptor
	wg    sync.WaitGroup
	once  sync.Once
}

// loop is one epoll instance with the goroutine that waits on it.
type loop struct {
	epfd   int
	wakefd int // eventfd: Close wakes the loop through it

	mu     sync.Mutex
	conns  map[uint64]*Conn
	closed bool

	rd *rawReader // reads into the loop's own buffer; used by the loop goroutine only
}

// NewReactor starts n epoll loops (n <= 0: one per CPU the Go scheduler
// uses). It fails only when the kernel refuses an epoll or eventfd
// descriptor.
func NewReactor(n int) (*Reactor, error) {
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	r := &Reactor{}
	for range n {
		l, err := newLoop()
		if err != nil {
			for _, l := range r.loops {
				l.closeFDs()
			}
			return nil, err
		}
		r.loops = append(r.loops, l)
	}
	for _, l := range r.loops {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			l.run()
		}()
	}
	return r, nil
}

func newLoop() (*loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("websocket: epoll_create1: %w", err)
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		_ = unix.Close(epfd)
		return nil, fmt.Errorf("websocket: eventfd: %w", err)
	}
	// The wake descriptor is registered with id 0; connections get ids
	// from 1.
	ev := unix.EpollEvent{Events: unix.EPOLLIN}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, &ev); err != nil {
		_ = unix.Close(epfd)
		_ = unix.Close(wakefd)
		return nil, fmt.Errorf("websocket: epoll_ctl: %w", err)
	}
	return &loop{epfd: epfd, wakefd: wakefd, conns: make(map[uint64]*Conn), rd: newRawReader(make([]byte, reactorReadSize), 0)}, nil
}

func (l *loop) closeFDs() {
	_ = unix.Close(l.epfd)
	_ = unix.Close(l.wakefd)
}

// Close stops the loops. Connections still registered are closed at once
// (their handlers get OnClose with CloseAbnormal, as with CloseNow). Close
// waits for the loops and returns nil; calling it again does nothing.
func (r *Reactor) Close() error {
	r.once.Do(func() {
		var left []*Conn
		for _, l := range r.loops {
			l.mu.Lock()
			l.closed = true
			for _, c := range l.conns {
				left = append(left, c)
			}
			l.mu.Unlock()
			var one [8]byte
			binary.NativeEndian.PutUint64(one[:], 1) // an eventfd counter is host-endian
			_, _ = unix.Write(l.wakefd, one[:])
		}
		r.wg.Wait()
		for _, l := range r.loops {
			l.closeFDs()
		}
		for _, c := range left {
			c.CloseNow()
		}
	})
	return nil
}

// Conns reports how many connections the reactor watches.
func (r *Reactor) Conns() int {
	n := 0
	for _, l := range r.loops {
		l.mu.Lock()
		n += len(l.conns)
		l.mu.Unlock()
	}
	return n
}

var (
	// errReactorClosed is returned when a connection is served after Close.
	errReactorClosed = errors.New("websocket: reactor closed")
	// errConnClosed is returned when a connection was closed before Serve
	// could register it.
	errConnClosed = errors.New("websocket: connection closed before it was served")
)

// add registers c with the next loop in turn; c.rmu is held by the
// caller, so events that arrive at once wait until the caller is done.
// When c was closed before it could be registered, add returns
// errConnClosed and c.loop stays nil.
func (r *Reactor) add(c *Conn) error {
	l := r.loops[int(r.next.Add(1)%uint32(len(r.loops)))]
	c.wmu.Lock()
	if c.closed {
		c.wmu.Unlock()
		return errConnClosed
	}
	// From here closeTCP reports OnClose through finishClosed.
	c.loop, c.loopID = l, r.ids.Add(1)
	c.wmu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errReactorClosed
	}
	if err := l.ctl(c, unix.EPOLL_CTL_ADD, reactorEvents); err != nil {
		return fmt.Errorf("websocket: register with reactor: %w", err)
	}
	l.conns[c.loopID] = c
	return nil
}

// ctl runs epoll_ctl for c's descriptor; l.mu is held, so registering,
// pausing and removing one connection never interleave.
func (l *loop) ctl(c *Conn, op int, events uint32) error {
	var err error
	cerr := c.rc.Control(func(fd uintptr) {
		ev := unix.EpollEvent{Events: events}
		ev.Fd = int32(uint32(c.loopID))
		ev.Pad = int32(uint32(c.loopID >> 32))
		err = unix.EpollCtl(l.epfd, op, int(fd), &ev)
	})
	if cerr != nil {
		return cerr
	}
	return err
}

func eventID(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

// remove stops watching c for good (idempotent). The descriptor may
// already be closed, in which case the kernel dropped it from the epoll set
// itself.
func (l *loop) remove(c *Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.conns[c.loopID]; !ok {
		return
	}
	delete(l.conns, c.loopID)
	_ = l.ctl(c, unix.EPOLL_CTL_DEL, 0)
}

// pause stops reporting c's readability until resume. A paused socket is
// out of the epoll set entirely, so not even a hang-up can wake the loop
// for it over and over.
func (l *loop) pause(c *Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.conns[c.loopID]; ok {
		_ = l.ctl(c, unix.EPOLL_CTL_DEL, 0)
	}
}

// resume undoes pause, unless c was removed meanwhile.
func (l *loop) resume(c *Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.conns[c.loopID]; ok {
		_ = l.ctl(c, unix.EPOLL_CTL_ADD, reactorEvents)
	}
}

func (l *loop) run() {
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := unix.EpollWait(l.epfd, events, -1)
		if err != nil {
			if err == syscall.EINTR {
				continue
			}
			// Only a broken epoll descriptor gets here; nothing can be
			// read any more. Back off rather than spin.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		for i := range n {
			id := eventID(&events[i])
			if id == 0 {
				l.mu.Lock()
				closed := l.closed
				l.mu.Unlock()
				if closed {
					return
				}
				continue
			}
			l.mu.Lock()
			c := l.conns[id]
			l.mu.Unlock()
			if c != nil {
				c.onReadable(l.rd)
			}
		}
	}
}

// reactorSupported tells Serve whether Options.Reactor can be used.
const reactorSupported = true
