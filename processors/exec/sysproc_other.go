//go:build !linux

package exec

import "syscall"

// sysProcAttr starts the command in its own process group.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
