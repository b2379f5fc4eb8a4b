package e2e

import (
	"fmt"
	"syscall"
	"testing"
	"time"
)

// TestExecutorSIGTERM: an executor stopped with SIGTERM withdraws its
// announcement, and its models leave `client list` at once, long before
// the validator would have timed it out.
func TestExecutorSIGTERM(t *testing.T) {
	t.Parallel()
	h := NewHarness(t)
	v := h.StartValidator("validator") // stale after 30s: only a REMOVAL explains a quick exit
	stay := h.StartExecutor("executor-stay", "--validator", v.Addr, "--model", "shared")
	leave := h.StartExecutor("executor-leave", "--validator", v.Addr, "--model", "shared", "--model", "leaving")
	WaitFor(t, Timeout, h.Serving(v.Addr, map[string][]string{
		"shared":  {stay.PeerID, leave.PeerID},
		"leaving": {leave.PeerID},
	}))

	leave.Signal(syscall.SIGTERM)
	code, ok := leave.Wait(StopTimeout)
	if !ok {
		t.Fatalf("executor did not exit within %s of SIGTERM", StopTimeout)
	}
	if code != 0 {
		t.Errorf("executor exit status %d after SIGTERM, want 0", code)
	}
	if len(leave.FindLogs("Published REMOVAL", nil)) == 0 {
		t.Errorf("executor log has no \"Published REMOVAL\"")
	}
	took := WaitFor(t, 10*time.Second, func() error {
		got, err := h.List(v.Addr)
		if err != nil {
			return err
		}
		if m := got.Model("leaving"); m != nil {
			return fmt.Errorf("client list still shows %q (executors %d)", "leaving", len(m.Executors))
		}
		if m := got.Model("shared"); m.Executor(leave.PeerID) != nil || m.Executor(stay.PeerID) == nil {
			return fmt.Errorf("client list shows %q as %+v, want only %s", "shared", m, stay.PeerID)
		}
		return nil
	})
	t.Logf("models withdrawn %s after the executor exited", took.Round(time.Millisecond))
	v.WaitLog("Executor withdrew its announcement (REMOVAL)", func(l LogLine) bool { return l.Str("executor") == leave.PeerID })

	// Started again with the same identity, it is back: its new
	// announcement is newer than the REMOVAL the validator remembers.
	leave.StartExecutor("--validator", v.Addr, "--model", "shared", "--model", "leaving")
	WaitFor(t, Timeout, h.Serving(v.Addr, map[string][]string{
		"shared":  {stay.PeerID, leave.PeerID},
		"leaving": {leave.PeerID},
	}))
}

// TestExecutorSIGKILL: an executor killed without a word goes stale in
// `client list` and `client query` (listed last), leaves `client
// discover`, and is removed after --remove-after.
//
// Two validators watch the same executors, so that no check has to fit in
// a window of time: one keeps a stale executor for an hour, and each
// client view of it is polled with a deadline until it shows the stale
// state, which cannot end under the test; the other removes it after 4 s,
// and its log and its views are polled for the removal.
func TestExecutorSIGKILL(t *testing.T) {
	t.Parallel()
	h := NewHarness(t)
	hold := h.StartValidator("validator-hold", "--stale-after", "1s", "--remove-after", "1h")
	v := h.StartValidator("validator", "--stale-after", "1s", "--remove-after", "4s")
	both := hold.Addr + "," + v.Addr
	live := h.StartExecutor("executor-live", "--validator", both, "--model", "gpt-4")
	dead := h.StartExecutor("executor-dead", "--validator", both, "--model", "gpt-4", "--model", "dead-only")
	for _, val := range []*Node{hold, v} {
		WaitFor(t, Timeout, h.Serving(val.Addr, map[string][]string{
			"gpt-4":     {live.PeerID, dead.PeerID},
			"dead-only": {dead.PeerID},
		}))
	}

	if code := dead.Kill(); code != -1 {
		t.Errorf("exit status %d after SIGKILL, want -1 (killed)", code)
	}
	killed := time.Now()
	WaitFor(t, 10*time.Second, func() error {
		list, err := h.List(hold.Addr)
		if err != nil {
			return err
		}
		for _, model := range []string{"gpt-4", "dead-only"} {
			if x := list.Model(model).Executor(dead.PeerID); x == nil || x.Status != "stale" {
				return fmt.Errorf("client list: %s of the killed executor is %+v, want it listed stale", model, x)
			}
		}
		if x := list.Model("gpt-4").Executor(live.PeerID); x == nil || x.Status != "healthy" {
			return fmt.Errorf("client list: gpt-4 of the live executor is %+v, want it healthy", x)
		}
		return nil
	})
	t.Logf("killed executor seen stale %s after SIGKILL", time.Since(killed).Round(time.Millisecond))
	// From here the killed executor stays stale on hold for an hour.
	WaitFor(t, 10*time.Second, func() error {
		q, err := h.Query(hold.Addr, "gpt-4")
		if err != nil {
			return err
		}
		if len(q.Executors) != 2 || q.Executors[0].PeerID != live.PeerID || q.Executors[0].Status != "healthy" ||
			q.Executors[1].PeerID != dead.PeerID || q.Executors[1].Status != "stale" {
			return fmt.Errorf("client query gpt-4 lists %+v, want the live executor (healthy) first, then the killed one (stale)", q.Executors)
		}
		return nil
	})
	WaitFor(t, 10*time.Second, func() error {
		var live1 QueryOut
		if _, err := h.ClientJSON(nil, &live1, "query", "gpt-4", "--exclude-stale", "--validator", hold.Addr); err != nil {
			return err
		}
		if p := live1.Peers(); len(p) != 1 || p[0] != live.PeerID {
			return fmt.Errorf("client query gpt-4 --exclude-stale lists %v, want only the live executor %s", p, live.PeerID)
		}
		return nil
	})
	WaitFor(t, 10*time.Second, func() error {
		d, err := h.Discover(hold.Addr)
		if err != nil {
			return err
		}
		if d.Model("dead-only") != nil || d.Model("gpt-4").Executor(dead.PeerID) != nil || d.Model("gpt-4").Executor(live.PeerID) == nil {
			return fmt.Errorf("client discover shows %+v, want gpt-4 by the live executor only", d.Models)
		}
		return nil
	})

	WaitFor(t, 15*time.Second, func() error {
		list, err := h.List(v.Addr)
		if err != nil {
			return err
		}
		if list.Model("dead-only") != nil || list.Model("gpt-4").Executor(dead.PeerID) != nil {
			return fmt.Errorf("client list still shows the killed executor: %v", list.IDs())
		}
		if x := list.Model("gpt-4").Executor(live.PeerID); x == nil {
			return fmt.Errorf("client list lost the live executor too")
		}
		return nil
	})
	t.Logf("killed executor removed %s after SIGKILL", time.Since(killed).Round(time.Millisecond))
	isDead := func(l LogLine) bool { return l.Str("executor") == dead.PeerID }
	v.WaitLog("Executor is stale: no heartbeat within the stale timeout", isDead)
	v.WaitLog("Executor removed: no heartbeat within the removal timeout", isDead)
	st, err := h.Stats(v.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if st.Executors != 1 || st.Healthy != 1 || st.Stale != 0 || st.ExecutorsRemoved < 1 {
		t.Errorf("client stats: executors %d, healthy %d, stale %d, executors_removed %d; want 1, 1, 0, ≥ 1",
			st.Executors, st.Healthy, st.Stale, st.ExecutorsRemoved)
	}
}
