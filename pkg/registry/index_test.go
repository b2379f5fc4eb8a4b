package registry

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/lloom/lloom/protocol/pb"
)

// checkIndex fails unless every model's slots are exactly what its
// executors hold: a write path that forgot syncSlots would show here.
func checkIndex(t *testing.T, r *Registry) {
	t.Helper()
	r.mu.RLock()
	defer r.mu.RUnlock()
	entries := 0
	for id, idx := range r.models {
		if idx.id != id || len(idx.slots) == 0 {
			t.Fatalf("model %q: index named %q, %d slots", id, idx.id, len(idx.slots))
		}
		for i, s := range idx.slots {
			m := s.e.find(id)
			if m == nil || int(m.pos) != i || r.executors[s.e.id] != s.e {
				t.Fatalf("model %q: slot %d points at an executor not serving it there (%v)", id, i, m)
			}
			if want := r.slotOf(s.e, m); s != want {
				t.Fatalf("model %q, executor %s: slot %+v, want %+v", id, s.e.id, s, want)
			}
		}
		entries += len(idx.slots)
	}
	n := 0
	for _, e := range r.executors {
		n += len(e.models)
	}
	if n != entries {
		t.Fatalf("executors serve %d models, the index holds %d entries", n, entries)
	}
}

// Random announcements, heartbeats, removals and sweeps keep the index's
// slots equal to the executors' state, and a list sees every model.
func TestIndexFollowsEveryChange(t *testing.T) {
	r := newTestRegistry(t)
	xs := newExecs(t, 6)
	rng := rand.New(rand.NewPCG(5, 6))
	seqs := make([]uint64, len(xs))
	hbs := make([]uint64, len(xs))
	now := at(0)
	for step := range 400 {
		now = now.Add(time.Duration(rng.IntN(4000)) * time.Millisecond)
		i := rng.IntN(len(xs))
		x := xs[i]
		switch op := rng.IntN(10); {
		case op < 4:
			var ds []*pb.ModelDescriptor
			for _, m := range rng.Perm(5)[:1+rng.IntN(4)] {
				ds = append(ds, desc(fmt.Sprintf("m%d", m), func(d *pb.ModelDescriptor) { d.Capacity = uint32(rng.IntN(4)) }))
			}
			seqs[i]++
			kind := update
			if rng.IntN(8) == 0 {
				kind, ds = pb.AnnouncementKind_ANNOUNCEMENT_KIND_REMOVAL, nil
			}
			_, _ = r.ApplyAnnouncement(x.announce(t, seqs[i], kind, ds...), now)
		case op < 9:
			hbs[i]++
			var ls []*pb.ModelLoad
			for m := range 5 {
				if rng.IntN(2) == 0 {
					ls = append(ls, load(fmt.Sprintf("m%d", m), rng.Uint32N(6), rng.Uint32N(3), rng.Uint32N(5)))
				}
			}
			_, _ = r.ApplyHeartbeat(x.heartbeat(t, hbs[i], seqs[i], ls...), now)
		default:
			r.Sweep(now)
		}
		checkIndex(t, r)

		var want []string
		r.mu.RLock()
		for id := range r.models {
			want = append(want, id)
		}
		r.mu.RUnlock()
		slices.Sort(want)
		var got []string
		for _, s := range listModels(t, r, &pb.QueryFilters{IncludeStale: true, IncludeUnavailable: true, IncludeUnverified: true}, 0, 0, now).GetModels().GetModels() {
			got = append(got, s.GetModelId())
		}
		if !slices.Equal(got, want) {
			t.Fatalf("step %d: list shows %v, the registry holds %v", step, got, want)
		}
	}
}

// A list over more than one batch of entries lets writers in between
// batches: a heartbeat is applied in the middle of it, and the list still
// names every model once.
func TestLongListReleasesTheLock(t *testing.T) {
	r := newTestRegistry(t)
	x := newExec(t)
	var ds []*pb.ModelDescriptor
	for m := range 64 {
		ds = append(ds, desc(fmt.Sprintf("m%02d", m)))
	}
	mustAnnounce(t, r, x.announce(t, 1, initial, ds...), at(0))
	// Copies of one executor's entries, so that the test needs no
	// thousands of keys: the index is what a list reads.
	r.mu.Lock()
	for _, idx := range r.models {
		for len(idx.slots) < 200 {
			idx.slots = append(idx.slots, idx.slots[0])
		}
	}
	r.mu.Unlock()

	batches, writes := 0, 0
	listHook = func() {
		batches++
		if !r.mu.TryLock() {
			t.Error("the list holds the registry lock between batches")
			return
		}
		r.mu.Unlock()
		writes++
	}
	t.Cleanup(func() { listHook = nil })
	resp, scanned := r.QueryWork(&pb.QueryRequest{Query: &pb.QueryRequest_ListModels{ListModels: &pb.ListModelsQuery{}}}, 100, at(time.Second))
	if got := len(resp.GetModels().GetModels()); got != 64 || resp.GetTotalCount() != 64 {
		t.Fatalf("%d models of %d, want 64", got, resp.GetTotalCount())
	}
	// 64 models of 200 entries: 12,800 entries, about four batches.
	if batches < 3 || writes != batches {
		t.Fatalf("%d batches, %d with the lock free; want at least 3, each free", batches, writes)
	}
	if scanned < 64*200 {
		t.Fatalf("list reports %d entries examined, want at least %d", scanned, 64*200)
	}
}
