//go:build !unix

package lambdart

import (
	"os"
	"os/exec"
	"syscall"
)

func setProcAttr(cmd *exec.Cmd) {}

// signalProcess signals p; where there are no signals, any signal kills it.
func signalProcess(p *os.Process, sig syscall.Signal) {
	if err := p.Signal(sig); err != nil {
		_ = p.Kill()
	}
}
