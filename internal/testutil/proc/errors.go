package proc

import "errors"

// Errors of Process.
var (
	// ErrExited: the process exited before it was ready (WaitReady).
	ErrExited = errors.New("process exited before it was ready")
	// ErrNotReady: the readiness probe did not succeed in time (WaitReady).
	ErrNotReady = errors.New("process not ready")
	// ErrKilled: the process did not exit within the grace period of
	// SIGTERM and was killed (Stop).
	ErrKilled = errors.New("process did not exit after SIGTERM; killed")
	// ErrExitStatus: the process exited with a non-zero status after
	// SIGTERM (Stop).
	ErrExitStatus = errors.New("process exited with a failure status after SIGTERM")
)
