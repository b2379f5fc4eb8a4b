//go:build !linux

package e2e

import "os/exec"

// setDeathSignal does nothing here: only Linux can tie a child's life to
// its parent's.
func setDeathSignal(*exec.Cmd) {}
