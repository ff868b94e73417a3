package proxytest

import (
	"os/exec"
	"syscall"
)

// configureProcess puts the proxy and its workers in a process group of
// their own (so Stop can signal them all) and makes the kernel kill the
// master when the test process dies.
func configureProcess(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// signalGroup sends sig to the proxy's process group.
func signalGroup(cmd *exec.Cmd, sig syscall.Signal) {
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, sig)
	}
}
