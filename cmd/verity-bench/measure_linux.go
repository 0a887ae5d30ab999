package main

import "syscall"

// childProcAttr kills the measured program when the launcher dies (the
// bench's 30 s WaitDelay kills the launcher), so that no orphan keeps
// running or holding the output pipes.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
