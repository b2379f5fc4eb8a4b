package registry

import (
	"testing"
	"time"

	"github.com/lloom/lloom/protocol/pb"
)

func (r *Registry) profileRefs() map[*profile]int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	refs := make(map[*profile]int)
	for _, p := range r.profiles {
		refs[p] = p.refs
	}
	return refs
}

func TestProfilesSharedAndReleased(t *testing.T) {
	r := newTestRegistry(t)
	xs := newExecs(t, 3)
	vllm := func(d *pb.ModelDescriptor) { d.BackendType = "vllm" }
	mustAnnounce(t, r, xs[0].announce(t, 1, initial, desc("a"), desc("b")), at(0))
	mustAnnounce(t, r, xs[1].announce(t, 1, initial, desc("a"), desc("c", vllm)), at(0))
	// Same strings in other fields must not make the same key.
	mustAnnounce(t, r, xs[2].announce(t, 1, initial, desc("d", func(d *pb.ModelDescriptor) {
		d.BackendType, d.Features = "", []string{"ollama", "chat", "completion"}
	})), at(0))

	tests := []struct {
		step  func()
		want  int // distinct profiles
		users int // models in all
	}{
		{func() {}, 3, 5},
		{func() { mustAnnounce(t, r, xs[1].announce(t, 2, update, desc("a", vllm)), at(time.Second)) }, 3, 4},
		{func() { mustAnnounce(t, r, xs[2].announce(t, 2, removal), at(time.Second)) }, 2, 3},
		{func() { r.Sweep(at(time.Hour)) }, 0, 0},
	}
	for i, tt := range tests {
		tt.step()
		refs := r.profileRefs()
		users := 0
		for _, n := range refs {
			users += n
		}
		if len(refs) != tt.want || users != tt.users {
			t.Fatalf("step %d: %d profiles used %d times, want %d used %d times", i, len(refs), users, tt.want, tt.users)
		}
	}

	// The interned strings still read right.
	mustAnnounce(t, r, xs[0].announce(t, 5, initial, desc("a", vllm)), at(time.Hour))
	got := findModel(t, r, "a", &pb.QueryFilters{BackendType: "VLLM", RequiredFeatures: []string{"completion"}, MaxOutputPriceWei: "2000"}, 0, 0, at(time.Hour))
	if got.GetTotalCount() != 1 {
		t.Fatalf("find-model through an interned profile: total %d, want 1", got.GetTotalCount())
	}
}
