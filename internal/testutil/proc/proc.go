package proc

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// pollInterval is the pause between two readiness probes.
const pollInterval = 10 * time.Millisecond

// Config describes a process to start.
type Config struct {
	// Path is the executable. Required.
	Path string
	// Args are the arguments after the executable's name.
	Args []string
	// Dir is the working directory. Default: the test's.
	Dir string
	// Env is the environment, as in exec.Cmd. Default (nil): the test's.
	Env []string
	// LogFile receives the process' standard output and error; it is
	// created (or truncated) by Start. Default "": both are discarded.
	LogFile string
	// Group gives the process a process group of its own (Linux): every
	// signal then goes to the group, and Stop and Kill end what is left of
	// the group once the process has exited. Default false.
	Group bool
}

// Process is one started program. Its methods are safe for concurrent use.
type Process struct {
	cmd   *exec.Cmd
	group bool
	done  chan struct{}
	state *os.ProcessState // set before done is closed
}

// Start starts the program of c. The caller must end it (Stop or Kill).
func Start(c Config) (*Process, error) {
	cmd := exec.Command(c.Path, c.Args...)
	cmd.Dir = c.Dir
	cmd.Env = c.Env
	var logFile *os.File
	if c.LogFile != "" {
		f, err := os.Create(c.LogFile)
		if err != nil {
			return nil, err
		}
		logFile = f
		cmd.Stdout, cmd.Stderr = f, f
	}
	configure(cmd, c.Group)
	if err := cmd.Start(); err != nil {
		if logFile != nil {
			logFile.Close()
		}
		return nil, err
	}
	p := &Process{cmd: cmd, group: c.Group, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		if logFile != nil {
			logFile.Close()
		}
		p.state = cmd.ProcessState
		close(p.done)
	}()
	return p, nil
}

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Running reports whether the process is alive (a stopped one counts).
func (p *Process) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// State is how the process exited, or nil while it runs.
func (p *Process) State() *os.ProcessState {
	select {
	case <-p.done:
		return p.state
	default:
		return nil
	}
}

// Signal sends sig to the process (to its group with Config.Group). It
// fails when the process has exited.
func (p *Process) Signal(sig syscall.Signal) error {
	if !p.Running() {
		return os.ErrProcessDone
	}
	return signal(p.cmd, p.group, sig)
}

// WaitReady calls probe until it returns nil, and returns nil then. It
// returns an error wrapping ErrExited when the process exits first, and
// one wrapping ErrNotReady and the last probe error after timeout; the
// process is left as it is in both cases.
func (p *Process) WaitReady(probe func() error, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := probe()
		if err == nil {
			return nil
		}
		select {
		case <-p.done:
			return ErrExited
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w after %v: %w", ErrNotReady, timeout, err)
		}
		select {
		case <-p.done:
		case <-time.After(pollInterval):
		}
	}
}

// Stop sends SIGTERM and waits for the process to exit; after grace it is
// killed with SIGKILL. It returns an error wrapping ErrKilled when it had
// to be killed, one wrapping ErrExitStatus when it exited with a failure
// status, and nil when it exited cleanly or had exited before.
func (p *Process) Stop(grace time.Duration) error {
	if !p.Running() {
		return nil
	}
	_ = signal(p.cmd, p.group, syscall.SIGTERM)
	timer := time.NewTimer(grace)
	defer timer.Stop()
	var err error
	select {
	case <-p.done:
	case <-timer.C:
		_ = signal(p.cmd, p.group, syscall.SIGKILL)
		<-p.done
		err = fmt.Errorf("%w (grace %v)", ErrKilled, grace)
	}
	p.killGroup()
	if err != nil {
		return err
	}
	if !p.state.Success() {
		return fmt.Errorf("%w: %v", ErrExitStatus, p.state)
	}
	return nil
}

// Kill ends the process at once with SIGKILL, as a crash would, and waits
// for it. Killing an exited process does nothing.
func (p *Process) Kill() {
	if p.Running() {
		_ = signal(p.cmd, p.group, syscall.SIGKILL)
		<-p.done
	}
	p.killGroup()
}

// killGroup ends what is left of the process group (workers exit after
// their master); without Config.Group it does nothing.
func (p *Process) killGroup() {
	if p.group {
		_ = signal(p.cmd, true, syscall.SIGKILL)
	}
}

// ReadTail returns the last n bytes of the file at path (all of it when it
// is shorter).
func ReadTail(path string, n int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if size := st.Size(); size > int64(n) {
		if _, err := f.Seek(size-int64(n), io.SeekStart); err != nil {
			return nil, err
		}
	}
	return io.ReadAll(io.LimitReader(f, int64(n)))
}

// FreePort asks the kernel for a free TCP port on 127.0.0.1. Another
// process can take it before the caller binds it, so callers retry.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
