package registry

import (
	"errors"
	"slices"
	"testing"
	"time"
)

// drain returns every change after version, failing on ErrBehind.
func drain(tb testing.TB, r *Registry, version uint64) []Change {
	tb.Helper()
	cs, _, err := r.Changes(version, 1<<20, nil)
	if err != nil {
		tb.Fatalf("changes after %d: %v", version, err)
	}
	return cs
}

func kinds(cs []Change) []ChangeKind {
	out := make([]ChangeKind, len(cs))
	for i := range cs {
		out[i] = cs[i].Kind
	}
	return out
}

// An executor's life, as a reader of the feed sees it: one change per
// thing that happened, numbered one by one, each with the state after it.
func TestChangesOfAnExecutorsLife(t *testing.T) {
	cfg := DefaultConfig()
	cfg.FirstVersion = 1000
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	x := newExec(t)
	if v := r.Version(); v != 999 {
		t.Fatalf("version of an empty registry = %d, want FirstVersion-1 = 999", v)
	}

	a1 := x.announce(t, 1, initial, desc("m1"), desc("m2"))
	mustAnnounce(t, r, a1, at(0))                                                                        // added (unverified), then updated (verified)
	mustHeartbeat(t, r, x.heartbeat(t, 1, 1, load("m1", 0, 0, 4), load("m2", 0, 0, 4)), at(time.Second)) // same load: no change
	mustHeartbeat(t, r, x.heartbeat(t, 2, 1, load("m1", 2, 1, 4)), at(2*time.Second))                    // load
	r.Sweep(at(2*time.Second + DefaultStaleAfter + time.Second))                                         // stale
	mustHeartbeat(t, r, x.heartbeat(t, 3, 1, load("m1", 2, 1, 4)), at(40*time.Second))                   // recovered
	mustAnnounce(t, r, x.announce(t, 2, update, desc("m1"), desc("m3")), at(41*time.Second))             // updated
	mustAnnounceUnverified(t, r, x.announce(t, 3, removal), at(42*time.Second))                          // removed

	cs := drain(t, r, 999)
	want := []ChangeKind{ChangeAdded, ChangeUpdated, ChangeLoad, ChangeStale, ChangeRecovered, ChangeUpdated, ChangeRemoved}
	if !slices.Equal(kinds(cs), want) {
		t.Fatalf("changes = %v, want %v", kinds(cs), want)
	}
	for i, c := range cs {
		if c.Version != 1000+uint64(i) {
			t.Errorf("change %d (%s) has version %d, want %d: versions go one by one from FirstVersion", i, c.Kind, c.Version, 1000+i)
		}
		if c.Executor.ID != x.id {
			t.Errorf("change %d names %s, want %s", i, c.Executor.ID, x.id)
		}
	}
	if c := cs[0]; c.Executor.Verified || c.WasVerified {
		t.Errorf("added: verified = %v, was %v; a gossiped newcomer is unverified", c.Executor.Verified, c.WasVerified)
	}
	if c := cs[1]; !c.Executor.Verified || c.WasVerified {
		t.Errorf("the liveness check: verified = %v, was %v; want true, false", c.Executor.Verified, c.WasVerified)
	}
	if m := cs[2].Executor.Models[0]; m.Active != 2 || m.Queued != 1 || m.Capacity != 4 || m.Status != healthy {
		t.Errorf("load change: m1 = %+v, want 2 active, 1 queued, capacity 4, healthy", m)
	}
	if m := cs[2].Executor.Models[1]; m.Active != 0 || m.ID != "m2" {
		t.Errorf("load change: m2 = %+v, want no load (the heartbeat left it out)", m)
	}
	if m := cs[2].Executor.Models[0]; m.InputPriceWei != "1000" || m.OutputPriceWei != "2000" || m.Backend != "ollama" || !m.Available {
		t.Errorf("model state %+v lacks the announced price, backend or availability", m)
	}
	if s := cs[3].Executor.Status; s != stale {
		t.Errorf("stale change: status %v", s)
	}
	if s := cs[4].Executor.Status; s != healthy {
		t.Errorf("recovered change: status %v", s)
	}
	if c := cs[5]; !slices.Equal(c.AddedModels, []string{"m3"}) || !slices.Equal(c.DroppedModels, []string{"m2"}) {
		t.Errorf("update: added %v dropped %v, want [m3] [m2]", c.AddedModels, c.DroppedModels)
	}
	if c := cs[6]; !c.Executor.Serves("m3") || !c.WasVerified {
		t.Errorf("removed: last state %+v should still list its models and say it was verified", c.Executor)
	}
	if r.Version() != 1006 {
		t.Errorf("version = %d, want 1006", r.Version())
	}
}

func TestChangesSweepRemovalAndEviction(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxExecutors = 1
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	x, y := newExec(t), newExec(t)
	mustAnnounce(t, r, x.announce(t, 1, initial, desc("m")), at(0))
	v := r.Version()
	// x goes stale; verified y arrives and evicts it.
	now := at(DefaultStaleAfter + time.Second)
	if _, err := r.Reached(y.announce(t, 1, initial, desc("m")), testIP(y.id), now); err != nil {
		t.Fatal(err)
	}
	cs := drain(t, r, v)
	if got := kinds(cs); !slices.Equal(got, []ChangeKind{ChangeRemoved, ChangeAdded, ChangeUpdated}) {
		t.Fatalf("eviction: changes %v, want removed (x), added and updated (y verified)", got)
	}
	if cs[0].Executor.ID != x.id || cs[1].Executor.ID != y.id {
		t.Errorf("eviction: removed %s, added %s; want x then y", cs[0].Executor.ID, cs[1].Executor.ID)
	}
	v = r.Version()
	r.Sweep(now.Add(DefaultRemoveAfter + time.Second))
	if got := kinds(drain(t, r, v)); !slices.Equal(got, []ChangeKind{ChangeRemoved}) {
		t.Errorf("sweep past remove-after: changes %v, want one removal (not stale first)", got)
	}
}

// The log is bounded by count and by bytes; a reader whose version fell
// out of it, or a version it never made, gets ErrBehind.
func TestChangesHistoryBounds(t *testing.T) {
	cfg := DefaultConfig()
	cfg.History = 8
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	x := newExec(t)
	mustAnnounce(t, r, x.announce(t, 1, initial, desc("m")), at(0)) // versions 1, 2
	for i := range 20 {
		mustHeartbeat(t, r, x.heartbeat(t, uint64(i+1), 1, load("m", uint32(i%3+1), 0, 4)), at(time.Duration(i)*time.Millisecond))
	}
	last := r.Version()
	if _, _, err := r.Changes(last-8, 100, nil); err != nil {
		t.Errorf("the newest 8 changes should be held: %v", err)
	}
	if cs := drain(t, r, last-8); len(cs) != 8 {
		t.Errorf("%d changes after last-8, want 8", len(cs))
	}
	if _, _, err := r.Changes(last-9, 100, nil); !errors.Is(err, ErrBehind) {
		t.Errorf("a version older than the history: err = %v, want ErrBehind", err)
	}
	if _, _, err := r.Changes(last+1, 100, nil); !errors.Is(err, ErrBehind) {
		t.Errorf("a version not made yet: err = %v, want ErrBehind", err)
	}

	cfg.History, cfg.HistoryBytes = 1000, 4096
	r, _ = New(cfg)
	mustAnnounce(t, r, x.announce(t, 1, initial, desc("m")), at(0))
	for i := range 200 {
		mustHeartbeat(t, r, x.heartbeat(t, uint64(i+1), 1, load("m", uint32(i%3+1), 0, 4)), at(0))
	}
	r.log.mu.Lock()
	n, size := r.log.n, r.log.bytes
	r.log.mu.Unlock()
	if size > 4096 || n >= 200 {
		t.Errorf("log holds %d changes of %d bytes; want at most 4096 bytes", n, size)
	}
}

// A reader that has everything waits on a channel that the next change
// closes; a snapshot and its version continue exactly into the changes.
func TestChangesWakeAndSnapshot(t *testing.T) {
	r := newTestRegistry(t)
	x, y := newExec(t), newExec(t)
	mustAnnounce(t, r, x.announce(t, 1, initial, desc("a")), at(0))
	v, states := r.Snapshot("", at(0))
	if len(states) != 1 || states[0].ID != x.id || v != r.Version() {
		t.Fatalf("snapshot: version %d (registry at %d), %d states", v, r.Version(), len(states))
	}
	cs, wake, err := r.Changes(v, 10, nil)
	if err != nil || len(cs) != 0 || wake == nil {
		t.Fatalf("nothing new after the snapshot: %d changes, wake %v, err %v", len(cs), wake, err)
	}
	select {
	case <-wake:
		t.Fatal("woken before any change")
	default:
	}
	mustAnnounce(t, r, y.announce(t, 1, initial, desc("b")), at(time.Second))
	select {
	case <-wake:
	case <-time.After(time.Second):
		t.Fatal("the next change did not wake the reader")
	}
	if got := drain(t, r, v); len(got) != 2 || got[0].Executor.ID != y.id {
		t.Errorf("after the snapshot: %v", kinds(got))
	}
	if _, states := r.Snapshot("b", at(time.Second)); len(states) != 1 || states[0].ID != y.id {
		t.Errorf("snapshot of model b: %d states", len(states))
	}
	if _, states := r.Snapshot("nope", at(time.Second)); len(states) != 0 {
		t.Errorf("snapshot of an unknown model: %d states", len(states))
	}
	if seen := r.SeenSince(at(500*time.Millisecond), 10); len(seen) != 1 || seen[0].ID != y.id {
		t.Errorf("seen since 0.5 s: %v, want y only", seen)
	}
}
