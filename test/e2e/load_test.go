package e2e

import (
	"fmt"
	"testing"
)

// TestLeastLoadedFirst: `client query` lists the executors of a model
// least loaded first, and one whose load reaches its capacity as
// overloaded. The executors report made-up loads with --debug-load.
func TestLeastLoadedFirst(t *testing.T) {
	t.Parallel()
	h := NewHarness(t)
	v := h.StartValidator("validator")
	// Every --model has capacity 4.
	full := h.StartExecutor("executor-full", "--validator", v.Addr, "--model", "gpt-4", "--debug-load", "gpt-4=3/1")
	busy := h.StartExecutor("executor-busy", "--validator", v.Addr, "--model", "gpt-4", "--debug-load", "gpt-4=1/1")
	idle := h.StartExecutor("executor-idle", "--validator", v.Addr, "--model", "gpt-4")
	want := []struct {
		n              *Node
		status         string
		active, queued uint32
	}{{idle, "healthy", 0, 0}, {busy, "healthy", 1, 1}, {full, "overloaded", 3, 1}}
	WaitFor(t, Timeout, func() error {
		q, err := h.Query(v.Addr, "gpt-4")
		if err != nil {
			return err
		}
		if len(q.Executors) != len(want) {
			return fmt.Errorf("client query gpt-4 lists %d executors, want %d", len(q.Executors), len(want))
		}
		for i, w := range want {
			x := q.Executors[i]
			if x.PeerID != w.n.PeerID || x.Status != w.status || x.ActiveRequests != w.active || x.QueuedRequests != w.queued {
				return fmt.Errorf("client query gpt-4: executor %d is %s (%s, %d active, %d queued), want %s (%s, %d active, %d queued)",
					i+1, x.PeerID, x.Status, x.ActiveRequests, x.QueuedRequests, w.n.Name, w.status, w.active, w.queued)
			}
		}
		return nil
	})
	st, err := h.Stats(v.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if st.Executors != 3 || st.Healthy != 2 || st.Overloaded != 1 {
		t.Errorf("client stats: executors %d, healthy %d, overloaded %d; want 3, 2, 1", st.Executors, st.Healthy, st.Overloaded)
	}
}
