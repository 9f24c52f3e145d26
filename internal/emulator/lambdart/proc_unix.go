//go:build unix

package lambdart

import (
	"os"
	"os/exec"
	"syscall"
)

// setProcAttr puts the process in a process group of its own, so that a
// bootstrap script's children are signalled with it, and a terminal's ^C
// reaches only the parent (which then closes the pool).
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// signalProcess signals p's process group, or p alone if that fails.
func signalProcess(p *os.Process, sig syscall.Signal) {
	if err := syscall.Kill(-p.Pid, sig); err != nil {
		_ = p.Signal(sig)
	}
}
