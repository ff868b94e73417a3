//go:build !linux

package proc

import (
	"os/exec"
	"syscall"
)

// configure does nothing where process groups and the parent-death signal
// are not available.
func configure(cmd *exec.Cmd, group bool) {}

// signal sends sig to the process itself.
func signal(cmd *exec.Cmd, group bool, sig syscall.Signal) error {
	return cmd.Process.Signal(sig)
}
