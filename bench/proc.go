package bench

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// CPUTime is the CPU time (user and system) this process has used.
func CPUTime() time.Duration { return rusage(syscall.RUSAGE_SELF) }

// ThreadCPUTime is the CPU time of the calling OS thread; lock the
// goroutine to its thread (runtime.LockOSThread) around what is measured.
func ThreadCPUTime() time.Duration { return rusage(rusageThread) }

func rusage(who int) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// CPUMeter measures the cores a process keeps busy: CPU time over wall
// time since Start.
type CPUMeter struct {
	cpu  time.Duration
	wall time.Time
}

// StartCPU starts measuring this process.
func StartCPU() CPUMeter { return CPUMeter{cpu: CPUTime(), wall: time.Now()} }

// Stop returns the CPU time used and the wall time passed since start.
func (m CPUMeter) Stop() (cpu, wall time.Duration) {
	return CPUTime() - m.cpu, time.Since(m.wall)
}

// Memory is a snapshot of the process's memory.
type Memory struct {
	HeapAlloc uint64 // live heap after a full GC
	HeapSys   uint64 // heap memory obtained from the OS
	Sys       uint64 // all memory the Go runtime obtained
	RSS       uint64 // resident set size (Linux), bytes
	HWM       uint64 // peak resident set size (Linux), bytes
}

// ReadMemory collects garbage twice and reads the heap and the RSS.
func ReadMemory() Memory {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m := Memory{HeapAlloc: ms.HeapAlloc, HeapSys: ms.HeapSys, Sys: ms.Sys}
	m.RSS, m.HWM = procStatus("VmRSS:"), procStatus("VmHWM:")
	return m
}

// procStatus reads a kB field of /proc/self/status, in bytes; 0 where there
// is no /proc.
func procStatus(field string) uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// MiB formats bytes as mebibytes.
func MiB(b uint64) float64 { return float64(b) / (1 << 20) }
