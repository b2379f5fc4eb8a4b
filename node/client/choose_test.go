package client

import (
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/lloom/lloom/protocol/pb"
)

func executor(id string, status pb.ExecutorStatus, available bool, active, queued, capacity uint32) *Executor {
	return &Executor{
		PeerID: peer.ID(id), Status: status, Active: active, Queued: queued, Capacity: capacity,
		Model: &pb.ModelDescriptor{ModelId: "m", Available: available, Capacity: capacity},
	}
}

func ids(xs []*Executor) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = string(x.PeerID)
	}
	return out
}

const (
	healthy    = pb.ExecutorStatus_EXECUTOR_STATUS_HEALTHY
	overloaded = pb.ExecutorStatus_EXECUTOR_STATUS_OVERLOADED
	stale      = pb.ExecutorStatus_EXECUTOR_STATUS_STALE
)

// Stale and unavailable executors are skipped with their reason; healthy
// ones come least loaded first, then overloaded ones least loaded first;
// the first is the least or the second least loaded as pick says.
func TestChoose(t *testing.T) {
	execs := []*Executor{
		executor("over-full", overloaded, true, 4, 2, 4),
		executor("busy", healthy, true, 3, 0, 4),
		executor("stale-idle", stale, true, 0, 0, 4),
		executor("over-half", overloaded, true, 2, 1, 2),
		executor("unavailable-idle", healthy, false, 0, 0, 4),
		executor("idle", healthy, true, 0, 0, 4),
		executor("quarter", healthy, true, 1, 0, 4),
	}
	tests := []struct {
		name string
		pick int
		want []string
	}{
		{"pick the least loaded", 0, []string{"idle", "quarter", "busy", "over-half", "over-full"}},
		{"pick the second least loaded", 1, []string{"quarter", "idle", "busy", "over-half", "over-full"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cands, order := Choose(execs, func() int { return tt.pick })
			if got := ids(order); !equal(got, tt.want) {
				t.Fatalf("order %v, want %v", got, tt.want)
			}
			skipped := map[string]string{}
			for _, c := range cands {
				if c.Skipped != "" {
					skipped[string(c.Executor.PeerID)] = c.Skipped
				}
			}
			if len(cands) != len(execs) || len(skipped) != 2 || skipped["stale-idle"] != "stale" || skipped["unavailable-idle"] != "unavailable" {
				t.Fatalf("%d candidates, skipped %v; want all %d listed, the stale and the unavailable one skipped", len(cands), skipped, len(execs))
			}
		})
	}
}

// With no healthy executor, the two least-loaded overloaded ones are the
// choice, as pick says.
func TestChooseAllOverloaded(t *testing.T) {
	execs := []*Executor{
		executor("full", overloaded, true, 2, 2, 2), executor("half", overloaded, true, 2, 0, 2), executor("more", overloaded, true, 2, 1, 2),
	}
	for pick, want := range [][]string{{"half", "more", "full"}, {"more", "half", "full"}} {
		if _, order := Choose(execs, func() int { return pick }); !equal(ids(order), want) {
			t.Fatalf("pick %d: order %v, want %v", pick, ids(order), want)
		}
	}
}

// Executors with equal loads come in random order, not by peer id: with
// pick fixed, each of three alike is first sometimes (all overloaded, as
// when a busy network's view lags, and all healthy).
func TestChooseBreaksTiesAtRandom(t *testing.T) {
	for _, status := range []pb.ExecutorStatus{healthy, overloaded} {
		execs := []*Executor{
			executor("a", status, true, 2, 0, 2), executor("b", status, true, 2, 0, 2), executor("c", status, true, 2, 0, 2),
		}
		firsts := map[string]int{}
		for range 300 {
			_, order := Choose(execs, func() int { return 0 })
			firsts[string(order[0].PeerID)]++
		}
		if len(firsts) != 3 {
			t.Fatalf("%v: first choices over 300 draws %v; want each of the three alike", status, firsts)
		}
	}
}

// Power of two choices needs two healthy candidates; with one, pick does
// not matter, and overloaded ones still come after it.
func TestChooseOneHealthy(t *testing.T) {
	execs := []*Executor{executor("over", overloaded, true, 2, 0, 2), executor("only", healthy, true, 1, 0, 2)}
	for pick := range 2 {
		if _, order := Choose(execs, func() int { return pick }); !equal(ids(order), []string{"only", "over"}) {
			t.Fatalf("pick %d: order %v, want [only over]", pick, ids(order))
		}
	}
	if _, order := Choose(nil, nil); len(order) != 0 {
		t.Fatalf("no executors: order %v", ids(order))
	}
}

// With the random pick, both of the two least-loaded executors come first
// sometimes, and the third never does.
func TestChooseRandomPick(t *testing.T) {
	execs := []*Executor{
		executor("a", healthy, true, 0, 0, 2), executor("b", healthy, true, 0, 0, 2), executor("c", healthy, true, 1, 0, 2),
	}
	firsts := map[string]int{}
	for range 200 {
		_, order := Choose(execs, nil)
		firsts[string(order[0].PeerID)]++
	}
	if firsts["a"] == 0 || firsts["b"] == 0 || firsts["c"] != 0 {
		t.Fatalf("first choices over 200 draws: %v; want a and b both, never c", firsts)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
