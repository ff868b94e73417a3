package proc

import (
	"os/exec"
	"syscall"
)

// configure makes the kernel kill the process when the test process dies
// and, with group, gives it a process group of its own.
func configure(cmd *exec.Cmd, group bool) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: group, Pdeathsig: syscall.SIGKILL}
}

// signal sends sig to the process, or to its process group with group.
func signal(cmd *exec.Cmd, group bool, sig syscall.Signal) error {
	if group {
		return syscall.Kill(-cmd.Process.Pid, sig)
	}
	return cmd.Process.Signal(sig)
}
