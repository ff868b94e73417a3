//go:build linux

package bench

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// reactor reads handed-over connections from a few epoll loops. Each loop
// owns a 64 KiB read buffer and a latency histogram, so a delivery costs
// one read(2), no goroutine switch, and no lock.
type reactor struct {
	g     *group
	loops []*rloop
	next  atomic.Uint32
	stop  atomic.Bool
	wg    sync.WaitGroup
}

type rloop struct {
	epfd int
	rc   *readCtx
	buf  []byte
}

// reactorAvailable reports whether ClientReactor works on this system.
const reactorAvailable = true

func newReactor(g *group, loops int) (*reactor, error) {
	r := &reactor{g: g}
	for range loops {
		fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			r.closeLoops()
			return nil, fmt.Errorf("epoll_create1: %w", err)
		}
		r.loops = append(r.loops, &rloop{epfd: fd, rc: newReadCtx(false), buf: make([]byte, 64<<10)})
	}
	for _, l := range r.loops {
		r.wg.Add(1)
		go r.run(l)
	}
	return r, nil
}

// add takes over c's socket: it duplicates the descriptor, closes the
// net.Conn (so Go's poller forgets it) and registers the duplicate with a
// loop. Bytes c has already read stay in its parser.
func (r *reactor) add(c *conn) error {
	tc, ok := c.nc.(syscall.Conn)
	if !ok {
		return errors.New("not a syscall.Conn")
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return err
	}
	fd := -1
	var derr error
	if err := raw.Control(func(s uintptr) {
		fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return err
	}
	if derr != nil {
		return fmt.Errorf("dup: %w", derr)
	}
	_ = c.nc.Close()
	c.nc, c.fd = nil, fd
	l := r.loops[int(r.next.Add(1))%len(r.loops)]
	c.rc = l.rc
	r.g.conns[c.idx].Store(c)
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(fd), Pad: c.idx}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		r.g.conns[c.idx].Store(nil)
		_ = unix.Close(fd)
		c.fd = -1
		return fmt.Errorf("epoll_ctl: %w", err)
	}
	return nil
}

func (r *reactor) run(l *rloop) {
	defer r.wg.Done()
	events := make([]unix.EpollEvent, 256)
	pause := r.g.spec.ReadPause
	for !r.stop.Load() {
		n, err := unix.EpollWait(l.epfd, events, 100)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return
		}
		now := time.Now().UnixNano()
		for k := range events[:n] {
			if k > 0 && k%16 == 0 {
				now = time.Now().UnixNano()
			}
			c := r.g.conns[events[k].Pad].Load()
			if c == nil || c.fd < 0 {
				continue
			}
			r.readOnce(l, c, now)
		}
		if pause > 0 && n < len(events) {
			time.Sleep(pause)
		}
	}
}

// readOnce reads what the socket holds (level-triggered: what does not fit
// is reported again by the next epoll_wait).
func (r *reactor) readOnce(l *rloop, c *conn, now int64) {
	m, err := unix.Read(c.fd, l.buf)
	if m > 0 {
		c.now = now
		if perr := c.p.feed(l.buf[:m], c); perr != nil {
			r.drop(l, c, 1002)
			return
		}
		if c.state&stDead != 0 {
			r.drop(l, c, c.closeCode)
		}
		return
	}
	if err != nil && (errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR)) {
		return
	}
	code := c.closeCode
	if code == 0 {
		code = 1006
	}
	r.drop(l, c, code)
}

// drop closes a connection the server ended (or broke); only its loop
// calls it.
func (r *reactor) drop(l *rloop, c *conn, code int) {
	_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, c.fd, nil)
	_ = unix.Close(c.fd)
	c.fd = -1
	c.state |= stDead
	r.g.lose(c, code)
}

// halt stops the loops and waits for them; afterwards the connections
// belong to the caller.
func (r *reactor) halt() {
	r.stop.Store(true)
	r.wg.Wait()
	r.closeLoops()
}

func (r *reactor) closeLoops() {
	for _, l := range r.loops {
		if l.epfd >= 0 {
			_ = unix.Close(l.epfd)
			l.epfd = -1
		}
	}
}

func (r *reactor) readCtxs() []*readCtx {
	out := make([]*readCtx, len(r.loops))
	for i, l := range r.loops {
		out[i] = l.rc
	}
	return out
}

// writeFD writes b to a non-blocking socket, once.
func writeFD(fd int, b []byte) {
	if fd >= 0 {
		_, _ = unix.Write(fd, b)
	}
}

// closeFD closes a socket handed over to the reactor.
func closeFD(fd int) {
	if fd >= 0 {
		_ = unix.Close(fd)
	}
}

// bindNoPort lets the kernel pick the source port at connect time, so one
// source address serves as many connections as there are 4-tuples.
func bindNoPort(_, _ string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}
