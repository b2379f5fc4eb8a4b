package e2e

import (
	"os/exec"
	"syscall"
)

// setDeathSignal has the kernel kill cmd if the test binary dies without
// its cleanups (go test -timeout, a crash), so no node outlives a run.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
