package e2e

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Keygen runs `lloom keygen --out path` and returns the peer id it prints.
func (h *Harness) Keygen(path string) string {
	h.t.Helper()
	r := h.Run(nil, "keygen", "--out", path)
	if r.Code != 0 {
		h.t.Fatalf("keygen: %s", r)
	}
	return strings.TrimSpace(r.Stdout)
}

// StartValidator starts a validator node. Unless args give --port or
// --listen, it listens on 127.0.0.1, TCP port 0.
func (h *Harness) StartValidator(name string, args ...string) *Node {
	h.t.Helper()
	n := h.NewNode(name)
	n.validator = true
	n.StartValidator(args...)
	return n
}

// StartValidator (re)starts n as a validator, with the identity in its
// directory, and waits until its --addr-file names its addresses; it
// fills in PeerID, Addr and HostPort.
func (n *Node) StartValidator(args ...string) {
	t := n.h.t
	t.Helper()
	addrFile := filepath.Join(n.Dir, "validator.addr")
	if err := os.Remove(addrFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	full := []string{"validator", "--addr-file", addrFile}
	if !hasFlag(args, "--port", "--listen") {
		full = append(full, "--listen", "/ip4/127.0.0.1/tcp/0")
	}
	n.Start(append(full, args...)...)
	WaitFor(t, Timeout, func() error {
		if !n.Running() {
			return n.errExited()
		}
		b, err := os.ReadFile(addrFile) // written whole, by rename
		if err != nil {
			return err
		}
		for _, line := range strings.Fields(string(b)) {
			// /ip4/127.0.0.1/tcp/PORT/p2p/ID
			parts := strings.Split(line, "/")
			if len(parts) == 7 && parts[2] == "127.0.0.1" && parts[3] == "tcp" && parts[5] == "p2p" {
				n.Addr, n.HostPort, n.PeerID = line, "127.0.0.1:"+parts[4], parts[6]
				return nil
			}
		}
		return fmt.Errorf("%s: no 127.0.0.1 TCP address in %s:\n%s", n.Name, addrFile, b)
	})
}

// StartExecutor starts an executor node; see Node.StartExecutor.
func (h *Harness) StartExecutor(name string, args ...string) *Node {
	h.t.Helper()
	n := h.NewNode(name)
	n.StartExecutor(args...)
	return n
}

// StartExecutor (re)starts n as an executor with the identity in its
// directory, which `lloom keygen` creates the first time. It listens on
// 127.0.0.1, TCP port 0, and heartbeats every 300ms unless args say
// otherwise. It waits for "Executor started" and fills in PeerID and
// Addrs.
func (n *Node) StartExecutor(args ...string) {
	t := n.h.t
	t.Helper()
	key := filepath.Join(n.Dir, "executor.key")
	if n.PeerID == "" {
		n.PeerID = n.h.Keygen(key)
	}
	full := []string{"executor", "--identity", key}
	if !hasFlag(args, "--port", "--listen") {
		full = append(full, "--listen", "/ip4/127.0.0.1/tcp/0")
	}
	if !hasFlag(args, "--heartbeat-interval") {
		full = append(full, "--heartbeat-interval", "300ms")
	}
	n.Start(append(full, args...)...)
	started := n.WaitLog("Executor started", nil)
	if got := started.Str("peer"); got != n.PeerID {
		t.Fatalf("%s runs as peer %s, want %s (the key keygen made)", n.Name, got, n.PeerID)
	}
	n.Addrs = started.Strs("addrs")
}
