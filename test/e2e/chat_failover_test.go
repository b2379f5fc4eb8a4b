package e2e

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lloom/lloom/pkg/backend/backendtest"
)

// TestChatFailover: two executors serve the model; the one the client
// tries first (the only healthy one) has lost its backend. The client
// still gets a complete answer, from the other, and says what happened:
// 6003 from the first, then the answer. The first then announces the
// model unavailable, and available again once its backend is back.
func TestChatFailover(t *testing.T) {
	t.Parallel()
	broken, good := newFake(t), newFake(t)
	h := NewHarness(t)
	v := h.StartValidator("validator")
	e1 := h.StartBackendExecutor("executor-broken", v.Addr, broken.URL())
	// Reported as full (4 of 4), so that the client tries it second: an
	// executor at capacity still queues.
	e2 := h.StartBackendExecutor("executor-good", v.Addr, good.URL(), "--debug-load", chatModel+"=4/0")
	WaitFor(t, Timeout, func() error {
		q, err := h.Query(v.Addr, chatModel)
		if err != nil {
			return err
		}
		if len(q.Executors) != 2 || q.Executors[0].PeerID != e1.PeerID || q.Executors[0].Status != "healthy" ||
			q.Executors[1].Status != "overloaded" {
			return fmt.Errorf("client query shows %+v; want %s healthy, then %s overloaded", q.Executors, e1.PeerID, e2.PeerID)
		}
		return nil
	})

	broken.SetDown(true)
	got, r := h.ChatJSON(v, "", "chat", chatModel, "hello there")
	if r.Code != 0 || !got.Complete || got.Executor != e2.PeerID || got.Text != "w0 w1 w2 w3 w4 w5 w6 w7" {
		t.Fatalf("%s\nwant the complete answer from %s", r, e2.PeerID)
	}
	if got.Receipt == nil || !got.Receipt.Verified || got.Receipt.Executor != e2.PeerID {
		t.Errorf("receipt %+v; want one verified, signed by %s", got.Receipt, e2.PeerID)
	}
	a := got.Attempts
	if len(a) != 2 || a[0].Executor != e1.PeerID || a[0].ErrorCode != 6003 || !strings.Contains(a[0].Error, "6003") ||
		a[1].Executor != e2.PeerID || a[1].ErrorCode != 0 || a[1].Error != "" {
		t.Errorf("attempts %+v; want %s failing with 6003 (and saying so), then %s answering", a, e1.PeerID, e2.PeerID)
	}
	if n := len(good.Requests()); n != 1 {
		t.Errorf("the good backend received %d requests, want 1", n)
	}

	// The failure made the first executor announce the model unavailable.
	took := WaitFor(t, 10*time.Second, h.availability(v, chatModel, e1.PeerID, false))
	t.Logf("%s announced %q unavailable %s after the failed request", e1.Name, chatModel, took.Round(time.Millisecond))
	e1.WaitLog("Backend failed; its models are unavailable until it answers again", nil)
	broken.SetDown(false)
	took = WaitFor(t, 15*time.Second, h.availability(v, chatModel, e1.PeerID, true))
	t.Logf("%s announced %q available %s after its backend came back", e1.Name, chatModel, took.Round(time.Millisecond))
}

// TestChatBackendDownAtStart: an executor whose backend does not answer
// at start still runs, and announces its model unavailable; clients do
// not pick it. When the backend answers, the model is available again
// within a few seconds, without a restart.
func TestChatBackendDownAtStart(t *testing.T) {
	t.Parallel()
	fake := newFake(t)
	fake.SetDown(true)
	h := NewHarness(t)
	v := h.StartValidator("validator")
	e := h.StartBackendExecutor("executor", v.Addr, fake.URL())
	WaitFor(t, Timeout, h.availability(v, chatModel, e.PeerID, false))
	e.WaitLog("Backend does not answer; its models are unavailable until it does", nil)

	got, r := h.ChatJSON(v, "", "chat", chatModel, "hello")
	if r.Code == 0 || got.Complete || !strings.Contains(r.Stderr, "no executor serves") || len(got.Attempts) != 0 {
		t.Errorf("%s\nwant a non-zero exit saying no executor serves the model, without trying the unavailable one", r)
	}
	if n := len(fake.Requests()); n != 0 {
		t.Errorf("the backend received %d completion requests while announced unavailable, want 0", n)
	}

	fake.SetDown(false)
	took := WaitFor(t, 15*time.Second, h.availability(v, chatModel, e.PeerID, true))
	t.Logf("model available %s after the backend came back", took.Round(time.Millisecond))
	e.WaitLog("Backend answers again; its models are available", nil)
	got, r = h.ChatJSON(v, "", "chat", chatModel, "hello")
	if r.Code != 0 || !got.Complete || got.Executor != e.PeerID {
		t.Errorf("%s\nwant a complete answer from %s once its backend is back", r, e.PeerID)
	}
}

// TestChatCancel: a client that goes away mid-answer — Ctrl-C or SIGKILL —
// cancels the backend call within a couple of seconds, and the executor's
// load returns to zero. Over TCP the kernel closes a killed client's
// connection; over QUIC a killed client sends nothing, and only the
// executor's pings (no reply within 1 s) tell it that the client is gone.
func TestChatCancel(t *testing.T) {
	t.Parallel()
	const quicModel = "quic-model"
	fake := newFake(t, backendtest.WithModels(chatModel, quicModel))
	fake.SetDelay(0, 100*time.Millisecond) // 200 tokens: 20 s, far longer than the test waits
	h := NewHarness(t)
	v := h.StartValidator("validator")
	tcp := h.StartExecutor("executor-tcp", "--validator", v.Addr, "--backend-url", fake.URL(), "--model", chatModel)
	quic := h.StartExecutor("executor-quic", "--validator", v.Addr, "--backend-url", fake.URL(), "--model", quicModel,
		"--listen", "/ip4/127.0.0.1/udp/0/quic-v1")
	WaitFor(t, Timeout, h.Serving(v.Addr, map[string][]string{chatModel: {tcp.PeerID}, quicModel: {quic.PeerID}}))

	for i, c := range []struct {
		name   string
		model  string
		sig    syscall.Signal
		within time.Duration
	}{
		// Ctrl-C: the client resets the stream at once.
		{"SIGINT", chatModel, syscall.SIGINT, 2 * time.Second},
		{"SIGKILL over TCP", chatModel, syscall.SIGKILL, 2 * time.Second},
		// 1 s without a ping reply, pings every 250ms.
		{"SIGKILL over QUIC", quicModel, syscall.SIGKILL, 3 * time.Second},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := h.StartClient("chat", c.model, "tell me a long story", "--max-tokens", "200", "--validator", v.Addr)
			WaitFor(t, Timeout, func() error {
				if out, _ := p.Stdout(); !strings.Contains(out, " w2") {
					return fmt.Errorf("stdout so far: %q", out)
				}
				return nil
			})
			// The answer is under way: the executor reports it in its load.
			WaitFor(t, 10*time.Second, executorLoad(h, v, c.model, 1))
			sent := time.Now()
			if err := p.cmd.Process.Signal(c.sig); err != nil {
				t.Fatal(err)
			}
			fake.WaitCancelled(t, i+1, c.within)
			t.Logf("backend call cancelled %s after %s", time.Since(sent).Round(time.Millisecond), c.name)
			code := p.Wait(t, 10*time.Second)
			if c.sig == syscall.SIGINT {
				if code == 0 {
					t.Errorf("client exit status 0 after Ctrl-C mid-answer; want non-zero (stderr %q)", p.Stderr())
				}
				if bad := crashText(p.Stderr()); bad != "" {
					t.Errorf("client stderr after Ctrl-C shows %q: %s", bad, p.Stderr())
				}
				t.Logf("client after Ctrl-C: exit %d, stderr %q", code, p.Stderr())
			}
			if fake.Active() != 0 {
				t.Errorf("the backend still has %d requests in flight", fake.Active())
			}
			WaitFor(t, 10*time.Second, executorLoad(h, v, c.model, 0))
		})
	}
}

// executorLoad is a WaitFor condition: the only executor of model reports
// n active requests and none queued.
func executorLoad(h *Harness, v *Node, model string, n uint32) func() error {
	return func() error {
		q, err := h.Query(v.Addr, model)
		if err != nil {
			return err
		}
		if len(q.Executors) != 1 || q.Executors[0].ActiveRequests != n || q.Executors[0].QueuedRequests != 0 {
			return fmt.Errorf("client query shows %+v; want the executor's load at %d active, 0 queued", q.Executors, n)
		}
		return nil
	}
}
