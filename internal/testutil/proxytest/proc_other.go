//go:build !linux

package proxytest

import (
	"os/exec"
	"syscall"
)

// configureProcess does nothing where process groups and the parent-death
// signal are not available.
func configureProcess(cmd *exec.Cmd) {}

// signalGroup signals the proxy's main process.
func signalGroup(cmd *exec.Cmd, sig syscall.Signal) {
	if cmd.Process != nil {
		_ = cmd.Process.Signal(sig)
	}
}
