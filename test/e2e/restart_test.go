package e2e

import (
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// freePort returns a port that is free for TCP and UDP on every IPv4
// interface now; nothing holds it when it returns. It comes from below the
// kernel's ephemeral range when it can: a port from that range may be
// handed to any new connection meanwhile — even to the executor's own dial
// of it, which would then connect to itself.
func freePort(t *testing.T) int {
	t.Helper()
	lo := 0
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			lo, _ = strconv.Atoi(f[0])
		}
	}
	for range 50 {
		port := 0 // any: the kernel picks from the ephemeral range
		if lo > 11000 {
			port = 10000 + rand.IntN(lo-10000)
		}
		l, err := net.Listen("tcp4", "0.0.0.0:"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		port = l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp4", "0.0.0.0:"+strconv.Itoa(port))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no port free for both TCP and UDP")
	return 0
}

// restartBound is how soon executors must be back after their validator
// restarts: the executors redial with a backoff that starts at 250ms and
// doubles while the validator is down (about a second here), then a
// heartbeat interval (300ms) brings the announcement.
const restartBound = 10 * time.Second

// TestValidatorComesLater starts an executor before its validator (the
// validator's port is reserved and nothing listens on it yet), then
// restarts the validator with the same identity and port: the executors
// register when it comes up, and again after the restart.
func TestValidatorComesLater(t *testing.T) {
	t.Parallel()
	h := NewHarness(t)
	port := strconv.Itoa(freePort(t))
	early := h.StartExecutor("executor-early", "--validator", "127.0.0.1:"+port, "--model", "early")
	early.WaitLog("Validator unreachable; retrying", nil)

	v := h.NewNode("validator")
	v.validator = true
	up := time.Now()
	v.StartValidator("--port", port)
	if v.HostPort != "127.0.0.1:"+port {
		t.Fatalf("validator listens on %s, want port %s", v.Addr, port)
	}
	took := WaitFor(t, Timeout, h.Serving(v.HostPort, map[string][]string{"early": {early.PeerID}}))
	t.Logf("executor started first registered %s after its validator came up", time.Since(up).Round(time.Millisecond))
	// Its first connection is a connection, not a reconnection.
	early.WaitLog("Connected to validator", nil)
	if ls := early.FindLogs("Reconnected to validator", nil); len(ls) > 0 {
		t.Errorf("%s logged %q on its first connection: %v", early.Name, "Reconnected to validator", ls)
	}
	if took > restartBound {
		t.Errorf("executor registered %s after its validator came up, want within %s", took, restartBound)
	}

	pinned := h.StartExecutor("executor-pinned", "--validator", v.Addr, "--model", "pinned")
	want := map[string][]string{"early": {early.PeerID}, "pinned": {pinned.PeerID}}
	WaitFor(t, Timeout, h.Serving(v.HostPort, want))

	id := v.PeerID
	if code := v.Stop(); code != 0 {
		t.Errorf("validator exit status %d after SIGTERM, want 0", code)
	}
	// While it is down, the client says so.
	r := h.Run(nil, "client", "list", "--validator", v.HostPort, "--timeout", "2s")
	if r.Code == 0 {
		t.Errorf("%s\nwant a non-zero exit while the only validator is down", r)
	}
	checkOneLine(t, r, v.HostPort)

	up = time.Now()
	v.StartValidator("--port", port)
	if v.PeerID != id {
		t.Fatalf("restarted validator is %s, want %s (same identity file)", v.PeerID, id)
	}
	WaitFor(t, Timeout, h.Serving(v.Addr, want))
	took = time.Since(up)
	t.Logf("executors back %s after the validator restarted", took.Round(time.Millisecond))
	if took > restartBound {
		t.Errorf("executors back in client list %s after the validator restarted, want within %s", took, restartBound)
	}
}
