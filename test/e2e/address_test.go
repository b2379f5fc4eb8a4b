package e2e

import (
	"strconv"
	"strings"
	"testing"
)

// TestValidatorAddress checks both forms of VALIDATOR_ADDRESS (a full
// multiaddr with /p2p/, and 127.0.0.1:PORT) for executors and clients, set
// in the environment only, and a client asking two validators at once.
func TestValidatorAddress(t *testing.T) {
	t.Parallel()
	h := NewHarness(t)
	// Two validators that do not know each other: each knows only the
	// executors that bootstrap from it.
	v1 := h.StartValidator("validator-1")
	v2 := h.StartValidator("validator-2")

	start := func(name, addr, model string) *Node {
		n := h.NewNode(name)
		n.Env = []string{"VALIDATOR_ADDRESS=" + addr}
		n.StartExecutor("--model", model)
		return n
	}
	full := start("executor-full", v1.Addr, "m-full")
	short := start("executor-short", v1.HostPort, "m-short")
	other := start("executor-other", v2.HostPort, "m-other")
	WaitFor(t, Timeout, h.Serving(v1.Addr, map[string][]string{"m-full": {full.PeerID}, "m-short": {short.PeerID}}))
	WaitFor(t, Timeout, h.Serving(v2.Addr, map[string][]string{"m-other": {other.PeerID}}))

	// The short form is trust on first use: the executor says whom it
	// trusted, and how to pin it.
	for _, n := range []*Node{short, other} {
		v := v1
		if n == other {
			v = v2
		}
		learned := n.FindLogs("", func(l LogLine) bool {
			return strings.HasPrefix(l.Message(), "Learned validator peer id on first contact")
		})
		if len(learned) == 0 || learned[0].Str("level") != "warn" || learned[0].Str("peer") != v.PeerID ||
			!strings.Contains(learned[0].Message(), v.Addr) {
			t.Errorf("%s (VALIDATOR_ADDRESS=%s) did not warn that it learned validator %s on first contact, naming %s: %v",
				n.Name, v.HostPort, v.PeerID, v.Addr, learned)
		}
	}

	for _, addr := range []string{v1.Addr, v1.HostPort} {
		var got ModelsOut
		if _, err := h.ClientJSON([]string{"VALIDATOR_ADDRESS=" + addr}, &got, "list"); err != nil {
			t.Fatalf("VALIDATOR_ADDRESS=%s: %v", addr, err)
		}
		if ids := got.IDs(); !sameSet(ids, []string{"m-full", "m-short"}) {
			t.Errorf("VALIDATOR_ADDRESS=%s lloom client list shows %v, want m-full and m-short (validator-1's)", addr, ids)
		}
		if got.Model("m-full").Executor(full.PeerID) == nil || got.Model("m-short").Executor(short.PeerID) == nil {
			t.Errorf("VALIDATOR_ADDRESS=%s lloom client list: %+v, want m-full by %s and m-short by %s",
				addr, got, full.PeerID, short.PeerID)
		}
	}

	// Two validators, comma-separated: the client merges their answers.
	both := []string{"VALIDATOR_ADDRESS=" + v1.Addr + "," + v2.HostPort}
	var got ModelsOut
	if _, err := h.ClientJSON(both, &got, "list"); err != nil {
		t.Fatal(err)
	}
	if ids := got.IDs(); !sameSet(ids, []string{"m-full", "m-short", "m-other"}) {
		t.Errorf("%s lloom client list shows %v, want m-full, m-short (validator-1's) and m-other (validator-2's)", both[0], ids)
	}
	for model, v := range map[string]*Node{"m-full": v1, "m-other": v2} {
		m := got.Model(model)
		if m == nil || len(m.Executors) != 1 {
			continue // reported above
		}
		vs := m.Executors[0].Validators
		if len(vs) != 1 || !strings.Contains(vs[0], v.PeerID) && vs[0] != v.HostPort {
			t.Errorf("%s: %s's validators are %v, want only %s", both[0], model, vs, v.Name)
		}
	}
	var q QueryOut
	if _, err := h.ClientJSON(both, &q, "query", "m-other"); err != nil {
		t.Fatal(err)
	}
	if p := q.Peers(); len(p) != 1 || p[0] != other.PeerID {
		t.Errorf("%s lloom client query m-other lists %v, want %s", both[0], p, other.PeerID)
	}
	var st StatsOut
	if _, err := h.ClientJSON(both, &st, "stats"); err != nil {
		t.Fatal(err)
	}
	if len(st.Validators) != 2 {
		t.Errorf("%s lloom client stats reports %d validators, want 2: %+v", both[0], len(st.Validators), st.Validators)
	}

	// One validator down: the other's answer, and a warning naming the
	// one that did not answer. (The client retries a refused connection
	// until --timeout, 10s by default; 2s keeps the test short.)
	down := "127.0.0.1:" + strconv.Itoa(freePort(t))
	r := h.Run([]string{"VALIDATOR_ADDRESS=" + v1.Addr + "," + down}, "client", "list", "--json", "--timeout", "2s")
	got = ModelsOut{}
	if err := decodeStrict(r.Stdout, &got); r.Code != 0 || err != nil || !sameSet(got.IDs(), []string{"m-full", "m-short"}) {
		t.Errorf("%s\nwant exit 0 and validator-1's models (m-full, m-short) as JSON (%v)", r, err)
	}
	if lines := strings.Split(strings.TrimSpace(r.Stderr), "\n"); len(lines) != 1 ||
		!strings.HasPrefix(lines[0], "warning: ") || !strings.Contains(lines[0], down) {
		t.Errorf("%s\nwant one warning on stderr naming %s", r, down)
	}
}

// TestValidatorsPeer: a validator started with --validator peers with
// another and learns, through it, of executors that only know the other.
func TestValidatorsPeer(t *testing.T) {
	t.Parallel()
	h := NewHarness(t)
	v1 := h.StartValidator("validator-1")
	v2 := h.StartValidator("validator-2", "--validator", v1.HostPort)
	e := h.StartExecutor("executor", "--validator", v1.Addr, "--model", "m")
	WaitFor(t, Timeout, h.Serving(v2.Addr, map[string][]string{"m": {e.PeerID}}))
	var got ModelsOut
	if _, err := h.ClientJSON([]string{"VALIDATOR_ADDRESS=" + v1.Addr + "," + v2.Addr}, &got, "list"); err != nil {
		t.Fatal(err)
	}
	if x := got.Model("m").Executor(e.PeerID); x == nil || !sameSet(x.Validators, []string{v1.Addr, v2.Addr}) {
		t.Errorf("client list of both validators shows %+v, want the executor known to both", got)
	}
}
