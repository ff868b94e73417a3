package proc

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// sh starts a shell script with its output in a log file; the test ends
// it when it is over.
func sh(t *testing.T, script string, group bool) (*Process, string) {
	t.Helper()
	shell := RequireBinary(t, "sh", "")
	log := filepath.Join(t.TempDir(), "out.log")
	p, err := Start(Config{Path: shell, Args: []string{"-c", script}, LogFile: log, Group: group})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(p.Kill)
	return p, log
}

func TestWaitReady(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "ready")
	probeMarker := func() error {
		_, err := os.Stat(marker)
		return err
	}
	tests := []struct {
		name    string
		script  string
		timeout time.Duration
		wantErr error
	}{
		{"ready", "sleep 0.2; touch " + marker + "; exec sleep 60", time.Minute, nil},
		{"exits first", "echo bye; exit 3", time.Minute, ErrExited},
		{"never ready", "exec sleep 60", 100 * time.Millisecond, ErrNotReady},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.Remove(marker)
			p, log := sh(t, tt.script, false)
			err := p.WaitReady(probeMarker, tt.timeout)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("WaitReady = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr == ErrNotReady && !errors.Is(err, os.ErrNotExist) {
				t.Errorf("WaitReady = %v, want the last probe error in it", err)
			}
			if tt.wantErr == ErrExited {
				<-p.Done()
				if st := p.State(); st == nil || st.ExitCode() != 3 {
					t.Errorf("State = %v, want exit status 3", st)
				}
				if b, err := ReadTail(log, 100); err != nil || strings.TrimSpace(string(b)) != "bye" {
					t.Errorf("log = %q, %v; want bye", b, err)
				}
			} else if !p.Running() {
				t.Errorf("process exited; want it running")
			}
		})
	}
}

func TestStop(t *testing.T) {
	tests := []struct {
		name    string
		script  string
		grace   time.Duration
		wantErr error
	}{
		{"clean exit on SIGTERM", "trap 'exit 0' TERM; echo trapped; while :; do sleep 0.05; done", time.Minute, nil},
		{"failure status", "trap 'exit 4' TERM; echo trapped; while :; do sleep 0.05; done", time.Minute, ErrExitStatus},
		{"ignores SIGTERM", "trap '' TERM; echo trapped; while :; do sleep 0.05; done", 200 * time.Millisecond, ErrKilled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, log := sh(t, tt.script, false)
			// The trap must be set before SIGTERM comes.
			ready := func() error {
				if b, _ := os.ReadFile(log); len(b) > 0 {
					return nil
				}
				return errors.New("no trap yet")
			}
			if err := p.WaitReady(ready, time.Minute); err != nil {
				t.Fatal(err)
			}
			err := p.Stop(tt.grace)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Stop = %v, want %v", err, tt.wantErr)
			}
			if p.Running() {
				t.Fatal("running after Stop")
			}
			if err := p.Stop(tt.grace); err != nil {
				t.Errorf("second Stop = %v, want nil", err)
			}
			if err := p.Signal(syscall.SIGTERM); !errors.Is(err, os.ErrProcessDone) {
				t.Errorf("Signal after exit = %v, want os.ErrProcessDone", err)
			}
		})
	}
}

func TestKillEndsGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	p, _ := sh(t, "sleep 60 & echo $! > "+pidFile+"; wait", true)
	var child int
	err := p.WaitReady(func() error {
		b, err := os.ReadFile(pidFile)
		if err != nil {
			return err
		}
		_, err = fmt.Sscan(string(b), &child)
		return err
	}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	p.Kill()
	if p.Running() {
		t.Fatal("running after Kill")
	}
	// The child was in the group: it is gone (or a zombie of a dead
	// parent, reaped by init) once the kernel delivered SIGKILL.
	deadline := time.Now().Add(time.Minute)
	for alive(child) {
		if time.Now().After(deadline) {
			t.Fatalf("child %d of the group survived Kill", child)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestReadTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	if err := os.WriteFile(path, []byte("0123456789"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		n    int
		want string
	}{{4, "6789"}, {10, "0123456789"}, {50, "0123456789"}, {0, ""}} {
		got, err := ReadTail(path, tt.n)
		if err != nil || string(got) != tt.want {
			t.Errorf("ReadTail(%d) = %q, %v; want %q", tt.n, got, err, tt.want)
		}
	}
	if _, err := ReadTail(filepath.Join(t.TempDir(), "none"), 4); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadTail of a missing file = %v, want ErrNotExist", err)
	}
}

func TestFreePort(t *testing.T) {
	port, err := FreePort()
	if err != nil || port <= 0 || port > 65535 {
		t.Fatalf("FreePort = %d, %v", port, err)
	}
}

// recordingTB records Skip and Fatal instead of ending the test.
type recordingTB struct {
	testing.TB
	skipped, failed string
}

func (r *recordingTB) Helper()           {}
func (r *recordingTB) Skip(args ...any)  { r.skipped = fmt.Sprint(args...) }
func (r *recordingTB) Fatal(args ...any) { r.failed = fmt.Sprint(args...) }

func TestRequireBinary(t *testing.T) {
	dir := t.TempDir()
	tool := filepath.Join(dir, "proctest-tool")
	if err := os.WriteFile(tool, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, bin, envVal, ci string
		dirs                  []string
		want, skip, fail      string
	}{
		{name: "env override", bin: "proctest-none", envVal: "/opt/x", want: "/opt/x"},
		{name: "extra dir", bin: "proctest-tool", dirs: []string{dir}, want: tool},
		{name: "missing skips", bin: "proctest-none", skip: "proctest-none not found in PATH (install the Debian package proctest-none, or set PROCTEST_BIN); skipping"},
		{name: "missing fails on CI", bin: "proctest-none", ci: "1", fail: "CI is set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("PROCTEST_BIN", tt.envVal)
			t.Setenv("CI", tt.ci)
			r := &recordingTB{TB: t}
			got := RequireBinary(r, tt.bin, "PROCTEST_BIN", tt.dirs...)
			if got != tt.want {
				t.Errorf("RequireBinary = %q, want %q", got, tt.want)
			}
			if r.skipped != tt.skip {
				t.Errorf("skipped with %q, want %q", r.skipped, tt.skip)
			}
			if !strings.Contains(r.failed, tt.fail) || (tt.fail == "") != (r.failed == "") {
				t.Errorf("failed with %q, want it to contain %q", r.failed, tt.fail)
			}
		})
	}
}

// alive reports whether pid is a live process; a zombie (dead, waiting to
// be reaped) is not.
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	return err != nil || !strings.Contains(string(b), ") Z ")
}
