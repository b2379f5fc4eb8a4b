package ollamatest

import (
	"os/exec"
	"syscall"
)

// setProcAttr puts the server in its own process group, so that killGroup
// also reaches the model runner it spawns, and kills it if the test
// process dies first.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// killGroup SIGKILLs the server's process group (server and runner).
func killGroup(cmd *exec.Cmd) {
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
