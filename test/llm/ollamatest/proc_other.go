//go:build !unix

package ollamatest

import "os/exec"

func setProcAttr(*exec.Cmd) {}

// killGroup kills the server; its runner is not reached on this platform.
func killGroup(cmd *exec.Cmd) {
	if cmd.Process != nil {
		_ = cmd.Process.Kill()
	}
}
