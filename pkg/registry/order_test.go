package registry

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/lloom/lloom/protocol/pb"
)

func TestLeastLoadedOrder(t *testing.T) {
	type exec struct {
		active, queued, hbCap, descCap uint32
		stale                          bool
	}
	tests := []struct {
		name  string
		execs []exec // executor i has the i-th smallest peer id
		want  []int
	}{
		{"by utilization", []exec{{3, 0, 0, 4, false}, {1, 0, 0, 4, false}, {2, 0, 0, 4, false}}, []int{1, 2, 0}},
		{"utilization, not request count", []exec{{2, 0, 0, 8, false}, {1, 0, 0, 2, false}}, []int{0, 1}},
		{"queued counts as load", []exec{{0, 3, 0, 4, false}, {2, 0, 0, 4, false}}, []int{1, 0}},
		{"equal utilization: fewer requests first", []exec{{2, 0, 0, 4, false}, {1, 0, 0, 2, false}}, []int{1, 0}},
		{"idle: larger capacity first", []exec{{0, 0, 0, 2, false}, {0, 0, 0, 8, false}, {0, 0, 0, 0, false}}, []int{1, 0, 2}},
		{"heartbeat capacity over announced", []exec{{2, 0, 16, 4, false}, {3, 0, 0, 16, false}}, []int{0, 1}},
		{"full tie: peer id", []exec{{1, 0, 0, 4, false}, {1, 0, 0, 4, false}, {1, 0, 0, 4, false}}, []int{0, 1, 2}},
		{"stale last even when idle", []exec{{0, 0, 0, 4, true}, {4, 0, 0, 4, false}}, []int{1, 0}},
		{"stale ones by load", []exec{{2, 0, 0, 4, true}, {1, 0, 0, 4, true}, {3, 0, 0, 4, false}}, []int{2, 1, 0}},
		{"overloaded past capacity", []exec{{9, 9, 0, 2, false}, {2, 0, 0, 2, false}, {0, 0, 0, 2, false}}, []int{2, 1, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newTestRegistry(t)
			xs := newExecs(t, len(tt.execs))
			live := at(40 * time.Second) // executors seen at 0 are stale by then
			// Register in reverse so that registration order cannot pass
			// for the peer id tie-break.
			for i := len(xs) - 1; i >= 0; i-- {
				e := tt.execs[i]
				mustAnnounce(t, r, xs[i].announce(t, 1, initial, desc("m", func(d *pb.ModelDescriptor) { d.Capacity = e.descCap })), at(0))
				seen := live
				if e.stale {
					seen = at(0)
				}
				mustHeartbeat(t, r, xs[i].heartbeat(t, 1, 1, load("m", e.active, e.queued, e.hbCap)), seen)
			}
			resp := findModel(t, r, "m", &pb.QueryFilters{IncludeStale: true}, 0, 0, live)
			want := make([]peer.ID, len(tt.want))
			for i, j := range tt.want {
				want[i] = xs[j].id
			}
			if got := peers(resp.GetExecutors().GetExecutors()); !slices.Equal(got, want) {
				t.Fatalf("order = %v, want %v", got, want)
			}
		})
	}
}

// Utilization compares exactly where 64-bit products would wrap.
func TestCompareLoadExtremes(t *testing.T) {
	const u32 = 1<<32 - 1
	tests := []struct {
		name        string
		aUsed, aCap uint64
		bUsed, bCap uint64
		want        int
	}{
		{"products past 64 bits", 1 << 32, u32, 1<<33 - 2, u32, -1},
		{"equal utilization at the extremes", 1<<33 - 2, u32, 1 << 32, 1 << 31, 1},
		{"small", 1, 2, 1, 3, 1},
	}
	for _, tt := range tests {
		ca := candidate{used: tt.aUsed, cap: tt.aCap}
		cb := candidate{used: tt.bUsed, cap: tt.bCap}
		if got := compareLoad(ca, cb); got != tt.want {
			t.Errorf("%s: compareLoad = %d, want %d", tt.name, got, tt.want)
		}
		if got := compareLoad(cb, ca); got != -tt.want {
			t.Errorf("%s: reversed compareLoad = %d, want %d", tt.name, got, -tt.want)
		}
	}
}

// sortTop must put exactly the first n of a full sort first, ties included.
func TestSortTopMatchesSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	slots := make([]slot, 60)
	cs := make([]candidate, len(slots))
	for i := range slots {
		// Ids sharing their first 16 bytes in pairs exercise the full
		// comparison behind the prefix.
		id := peer.ID(fmt.Sprintf("%016d%04d", i/2, rng.IntN(10000)))
		slots[i] = slot{e: &executor{id: id, idKey: idPrefix(id)}}
		cs[i] = candidate{used: rng.Uint64N(4), cap: 1 + rng.Uint64N(3), idKey: idPrefix(id), ref: int32(i), stale: rng.IntN(5) == 0}
	}
	want := ranking{slots: slots, cs: slices.Clone(cs)}
	want.sort()
	for n := 0; n <= len(cs)+1; n++ {
		got := ranking{slots: slots, cs: slices.Clone(cs)}
		got.sortTop(n)
		m := min(n, len(cs))
		if !slices.Equal(got.cs[:m], want.cs[:m]) {
			t.Fatalf("sortTop(%d) prefix differs from a full sort", n)
		}
		if !sameCandidates(got.cs, want.cs) {
			t.Fatalf("sortTop(%d) lost or duplicated candidates", n)
		}
	}
}

func sameCandidates(a, b []candidate) bool {
	key := func(c candidate) int32 { return c.ref }
	x, y := make([]int32, len(a)), make([]int32, len(b))
	for i := range a {
		x[i] = key(a[i])
	}
	for i := range b {
		y[i] = key(b[i])
	}
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}

func TestCompareTieBreaksByID(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"0123456789abcdef-1", "0123456789abcdef-2", -1}, // differ past the prefix
		{"1123456789abcdef-1", "0123456789abcdef-2", 1},  // differ in the prefix
		{"abc", "abc\x00", -1},                           // same zero-padded prefix
		{"same", "same", 0},
	}
	for _, tt := range tests {
		ids := []peer.ID{peer.ID(tt.a), peer.ID(tt.b)}
		k := ranking{slots: []slot{{e: &executor{id: ids[0]}}, {e: &executor{id: ids[1]}}}}
		a := candidate{used: 1, cap: 2, idKey: idPrefix(ids[0]), ref: 0}
		b := candidate{used: 1, cap: 2, idKey: idPrefix(ids[1]), ref: 1}
		if got := k.compare(a, b); got != tt.want {
			t.Errorf("compare(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}
