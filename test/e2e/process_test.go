package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"
)

// Node is one long-running lloom process (validator or executor). Its
// directory is its LLOOM_HOME and working directory; stderr, with the JSON
// log, goes to node.log there and stdout to stdout.log. A node can be
// started again after it stopped, with the same directory and identity.
type Node struct {
	h    *Harness
	Name string
	Dir  string
	Env  []string // KEY=VALUE added to the environment

	// Filled in by StartValidator and StartExecutor.
	PeerID   string
	Addr     string   // validator: full multiaddr on 127.0.0.1 TCP
	HostPort string   // validator: "127.0.0.1:PORT", the short form
	Addrs    []string // executor: full multiaddrs from "Executor started"

	validator bool // stopped after the others

	mu       sync.Mutex
	cmd      *exec.Cmd     // guarded by mu
	done     chan struct{} // guarded by mu: closed when cmd has exited
	logStart int64         // guarded by mu: where this run's log begins
}

// NewNode makes a node and its directory; Start runs it.
func (h *Harness) NewNode(name string) *Node {
	h.t.Helper()
	n := &Node{h: h, Name: name, Dir: filepath.Join(h.dir, name)}
	if err := os.MkdirAll(n.Dir, 0o700); err != nil {
		h.t.Fatal(err)
	}
	h.mu.Lock()
	h.nodes = append(h.nodes, n)
	h.mu.Unlock()
	return n
}

// LogPath is the file that holds the node's stderr (its JSON log).
func (n *Node) LogPath() string { return filepath.Join(n.Dir, "node.log") }

// StdoutPath is the file that holds the node's stdout.
func (n *Node) StdoutPath() string { return filepath.Join(n.Dir, "stdout.log") }

// Start runs `lloom args… --log-format json` in the background.
func (n *Node) Start(args ...string) {
	t := n.h.t
	t.Helper()
	if n.Running() {
		t.Fatalf("%s: started while running", n.Name)
	}
	logf, err := os.OpenFile(n.LogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close() // the child has its own descriptor
	outf, err := os.OpenFile(n.StdoutPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer outf.Close()
	st, err := logf.Stat()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, append(slices.Clone(args), "--log-format", "json")...)
	cmd.Dir = n.Dir
	cmd.Env = environ(n.Dir, n.Env)
	cmd.Stdout, cmd.Stderr = outf, logf
	setDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", n.Name, err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait() // the exit status is read from cmd.ProcessState
		close(done)
	}()
	n.mu.Lock()
	n.cmd, n.done, n.logStart = cmd, done, st.Size()
	n.mu.Unlock()
}

func (n *Node) proc() (*exec.Cmd, chan struct{}) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cmd, n.done
}

// Running reports whether the node's process has been started and has
// not exited.
func (n *Node) Running() bool {
	_, done := n.proc()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// Signal sends sig to the node's process; a process that has already
// exited is not an error.
func (n *Node) Signal(sig os.Signal) {
	n.h.t.Helper()
	cmd, _ := n.proc()
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		n.h.t.Errorf("%s: signal %v: %v", n.Name, sig, err)
	}
}

// Wait waits up to timeout for the process to exit and returns its exit
// status (-1 when a signal killed it); ok is false if it is still running.
func (n *Node) Wait(timeout time.Duration) (code int, ok bool) {
	cmd, done := n.proc()
	select {
	case <-done:
		return cmd.ProcessState.ExitCode(), true
	case <-time.After(timeout):
		return 0, false
	}
}

// StopTimeout is how long a node gets to exit after SIGTERM.
const StopTimeout = 15 * time.Second

// Stop sends SIGTERM and waits for the exit; after StopTimeout it kills
// the process and fails the test. It returns the exit status.
func (n *Node) Stop() int {
	n.h.t.Helper()
	n.Signal(syscall.SIGTERM)
	if code, ok := n.Wait(StopTimeout); ok {
		return code
	}
	n.h.t.Errorf("%s did not exit within %s of SIGTERM; killing it", n.Name, StopTimeout)
	return n.Kill()
}

// Kill sends SIGKILL and waits for the exit.
func (n *Node) Kill() int {
	n.h.t.Helper()
	n.Signal(syscall.SIGKILL)
	code, ok := n.Wait(StopTimeout)
	if !ok {
		n.h.t.Errorf("%s did not exit after SIGKILL", n.Name)
	}
	return code
}

// errExited ends a wait when the node it waits for has exited.
func (n *Node) errExited() error {
	cmd, _ := n.proc()
	b, _ := os.ReadFile(n.LogPath())
	return Fatal(fmt.Errorf("%s exited (%v) while waited for; log:\n%s", n.Name, cmd.ProcessState, tail(string(b), 30)))
}
