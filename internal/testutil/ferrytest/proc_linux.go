package ferrytest

import (
	"os/exec"
	"syscall"
)

// configureProcess makes the kernel kill the node when the test process
// dies, so an interrupted test run leaves no ferry process behind.
func configureProcess(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
