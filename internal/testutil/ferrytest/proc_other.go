//go:build !linux

package ferrytest

import "os/exec"

// configureProcess does nothing where the parent-death signal is not
// available.
func configureProcess(cmd *exec.Cmd) {}
