package exec

import "syscall"

// sysProcAttr starts the command in its own process group, and has the
// kernel SIGKILL it if the runner dies (kill -9, OOM): the run's lease then
// lapses and another instance runs it again, so the lost attempt's command
// must not go on and apply its side effect a second time.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
