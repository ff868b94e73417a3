package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"
)

// The worker protocol: the coordinator starts a worker process and writes
// one JSON command per line on its standard input; the worker writes one
// JSON event per line on its standard output.
//
//	-> {"cmd":"spec","spec":{...}}   the worker's share of the run
//	<- {"ev":"ready"}                tokens minted, ready to dial
//	-> {"cmd":"open"}
//	<- {"ev":"progress",...}         about twice a second from now on
//	<- {"ev":"opened","open":{...}}  every connection dialed
//	-> {"cmd":"close"}
//	<- {"ev":"result","result":{...}} histograms and counts; then it exits
//
// A worker that meets the end of its input closes its connections and
// exits, so it never outlives its coordinator for long. Failures are sent
// as {"ev":"error","error":"..."}.

type workerCmd struct {
	Cmd  string     `json:"cmd"`
	Spec *groupSpec `json:"spec,omitempty"`
}

type workerEvent struct {
	Ev       string          `json:"ev"`
	Open     *openReport     `json:"open,omitempty"`
	Progress *progressReport `json:"progress,omitempty"`
	Result   *closeReport    `json:"result,omitempty"`
	Error    string          `json:"error,omitempty"`
}

// progressEvery is how often workers report their counters.
const progressEvery = 500 * time.Millisecond

// RunWorker runs the worker side of the protocol above on in and out until
// the coordinator says close, in ends, or ctx is done. `ferry bench
// --worker` calls it with the process's standard input and output.
func RunWorker(ctx context.Context, in io.Reader, out io.Writer) error {
	var wmu sync.Mutex
	enc := json.NewEncoder(out)
	emit := func(ev workerEvent) error {
		wmu.Lock()
		defer wmu.Unlock()
		return enc.Encode(ev)
	}
	cmds := make(chan workerCmd)
	readErr := make(chan error, 1)
	go func() {
		defer close(cmds)
		dec := json.NewDecoder(in)
		for {
			var c workerCmd
			if err := dec.Decode(&c); err != nil {
				if !errors.Is(err, io.EOF) {
					readErr <- err
				}
				return
			}
			select {
			case cmds <- c:
			case <-ctx.Done():
				return
			}
		}
	}()
	next := func() (workerCmd, bool) {
		select {
		case c, ok := <-cmds:
			return c, ok
		case <-ctx.Done():
			return workerCmd{}, false
		}
	}
	fail := func(err error) error {
		_ = emit(workerEvent{Ev: "error", Error: err.Error()})
		return err
	}

	c, ok := next()
	if !ok || c.Cmd != "spec" || c.Spec == nil {
		return fail(fmt.Errorf("%w: expected a spec command", ErrWorker))
	}
	g, err := newGroup(*c.Spec)
	if err != nil {
		return fail(err)
	}
	if err := g.prepare(); err != nil {
		return fail(err)
	}
	if err := emit(workerEvent{Ev: "ready"}); err != nil {
		return err
	}
	if c, ok = next(); !ok || c.Cmd != "open" {
		return fail(fmt.Errorf("%w: expected an open command", ErrWorker))
	}

	tickDone := make(chan struct{})
	var ticking sync.WaitGroup
	ticking.Add(1)
	go func() {
		defer ticking.Done()
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		for {
			select {
			case <-tickDone:
				return
			case <-t.C:
				p := g.progress()
				_ = emit(workerEvent{Ev: "progress", Progress: &p})
			}
		}
	}()
	stopTicks := sync.OnceFunc(func() { close(tickDone); ticking.Wait() })
	defer stopTicks()

	rep, err := g.openAll(ctx)
	if err != nil {
		_, _ = g.closeAll()
		return fail(err)
	}
	if err := emit(workerEvent{Ev: "opened", Open: &rep}); err != nil {
		_, _ = g.closeAll()
		return err
	}
	_, _ = next() // close, or the end of the input
	stopTicks()
	res, err := g.closeAll()
	if err != nil {
		return fail(err)
	}
	if err := emit(workerEvent{Ev: "result", Result: &res}); err != nil {
		return err
	}
	select {
	case err := <-readErr:
		return fmt.Errorf("%w: reading commands: %v", ErrWorker, err)
	default:
	}
	return nil
}

// shard is one process's share of the connections: this process (local)
// or a worker process (remote).
type shard interface {
	open(ctx context.Context) (openReport, error)
	progress() progressReport
	close(ctx context.Context) (closeReport, error)
	// abort ends the shard without a report (after an error).
	abort()
}

type localShard struct {
	g      *group
	closed atomic.Bool
}

func (s *localShard) open(ctx context.Context) (openReport, error) { return s.g.openAll(ctx) }
func (s *localShard) progress() progressReport                     { return s.g.progress() }

func (s *localShard) close(context.Context) (closeReport, error) {
	if !s.closed.CompareAndSwap(false, true) {
		return closeReport{}, nil
	}
	return s.g.closeAll()
}

func (s *localShard) abort() { _, _ = s.close(context.Background()) }

// remoteShard drives a worker process.
type remoteShard struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	enc    *json.Encoder
	events chan workerEvent
	last   atomic.Pointer[progressReport]
	exited chan struct{}
	once   sync.Once
}

// startRemote starts a worker, sends it its spec and waits until it is
// ready.
func startRemote(ctx context.Context, cfg Config, spec groupSpec) (*remoteShard, error) {
	argv := cfg.WorkerCommand
	if len(argv) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrWorker, err)
		}
		argv = []string{exe, "bench", "--worker"}
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), cfg.WorkerEnv...)
	cmd.Stderr = cfg.Stderr
	if cmd.Stderr == nil {
		cmd.Stderr = io.Discard
	}
	cmd.WaitDelay = 5 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrWorker, err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrWorker, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%w: start %s: %v", ErrWorker, argv[0], err)
	}
	r := &remoteShard{cmd: cmd, stdin: stdin, enc: json.NewEncoder(stdin), events: make(chan workerEvent, 16), exited: make(chan struct{})}
	go func() {
		defer close(r.exited)
		defer close(r.events)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 64<<20)
		for sc.Scan() {
			var ev workerEvent
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				r.events <- workerEvent{Ev: "error", Error: "bad event: " + err.Error()}
				continue
			}
			if ev.Ev == "progress" && ev.Progress != nil {
				r.last.Store(ev.Progress)
				continue
			}
			r.events <- ev
		}
		_ = cmd.Wait()
	}()
	if err := r.enc.Encode(workerCmd{Cmd: "spec", Spec: &spec}); err != nil {
		r.abort()
		return nil, fmt.Errorf("%w: sending the spec: %v", ErrWorker, err)
	}
	if _, err := r.await(ctx, "ready", time.Minute+time.Duration(spec.Count)*time.Millisecond); err != nil {
		r.abort()
		return nil, err
	}
	return r, nil
}

// await waits for the next event other than progress, which must be want.
func (r *remoteShard) await(ctx context.Context, want string, timeout time.Duration) (workerEvent, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case ev, ok := <-r.events:
		switch {
		case !ok:
			return ev, fmt.Errorf("%w: the worker exited", ErrWorker)
		case ev.Ev == "error":
			return ev, fmt.Errorf("%w: %s", ErrWorker, ev.Error)
		case ev.Ev != want:
			return ev, fmt.Errorf("%w: got %q, want %q", ErrWorker, ev.Ev, want)
		}
		return ev, nil
	case <-t.C:
		return workerEvent{}, fmt.Errorf("%w: no %q within %v", ErrWorker, want, timeout)
	case <-ctx.Done():
		return workerEvent{}, ctx.Err()
	}
}

func (r *remoteShard) open(ctx context.Context) (openReport, error) {
	if err := r.enc.Encode(workerCmd{Cmd: "open"}); err != nil {
		return openReport{}, fmt.Errorf("%w: %v", ErrWorker, err)
	}
	// Bounded by the connect timeout of every connection in turn at worst.
	ev, err := r.await(ctx, "opened", 30*time.Minute)
	if err != nil {
		return openReport{}, err
	}
	if ev.Open == nil {
		return openReport{}, errNoReport
	}
	return *ev.Open, nil
}

func (r *remoteShard) progress() progressReport {
	if p := r.last.Load(); p != nil {
		return *p
	}
	return progressReport{}
}

func (r *remoteShard) close(ctx context.Context) (closeReport, error) {
	if err := r.enc.Encode(workerCmd{Cmd: "close"}); err != nil {
		return closeReport{}, fmt.Errorf("%w: %v", ErrWorker, err)
	}
	ev, err := r.await(ctx, "result", 2*time.Minute)
	r.abort()
	if err != nil {
		return closeReport{}, err
	}
	if ev.Result == nil {
		return closeReport{}, errNoReport
	}
	return *ev.Result, nil
}

// abort closes the worker's input (it then closes its connections and
// exits) and waits for it, killing it if it takes too long.
func (r *remoteShard) abort() {
	r.once.Do(func() {
		_ = r.stdin.Close()
		t := time.NewTimer(30 * time.Second)
		defer t.Stop()
		for {
			select {
			case _, ok := <-r.events:
				if ok {
					continue // drain what it still says
				}
				<-r.exited
				return
			case <-t.C:
				_ = r.cmd.Process.Kill()
				for range r.events {
				}
				<-r.exited
				return
			}
		}
	})
}

var errNoReport = fmt.Errorf("%w: an event without its report", ErrWorker)
