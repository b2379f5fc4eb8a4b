//go:build !linux

package bench

import "syscall"

// Without RUSAGE_THREAD, thread CPU time falls back to the process's.
const rusageThread = syscall.RUSAGE_SELF
