package registry

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/lloom/lloom/protocol/pb"
)

func TestFindModelPagination(t *testing.T) {
	r := newTestRegistry(t)
	xs := newExecs(t, 5)
	// Executor i runs i of 8 slots, so the order is xs's.
	for i, x := range xs {
		mustAnnounce(t, r, x.announce(t, 1, initial, desc("m", func(d *pb.ModelDescriptor) { d.Capacity = 8 })), at(0))
		mustHeartbeat(t, r, x.heartbeat(t, 1, 1, load("m", uint32(4-i), 0, 0)), at(0))
	}
	slices.Reverse(xs)
	tests := []struct {
		offset, limit uint32
		want          []*execKey
	}{
		{0, 0, xs},
		{0, 2, xs[:2]},
		{2, 2, xs[2:4]},
		{4, 2, xs[4:]},
		{5, 2, nil},
		{100, 0, nil},
		{1, 1000, xs[1:]},
	}
	for _, tt := range tests {
		resp := findModel(t, r, "m", nil, tt.offset, tt.limit, at(time.Second))
		if got, want := peers(resp.GetExecutors().GetExecutors()), idsOf(tt.want...); !slices.Equal(got, want) {
			t.Errorf("offset %d limit %d: %v, want %v", tt.offset, tt.limit, got, want)
		}
		if resp.GetTotalCount() != 5 {
			t.Errorf("offset %d limit %d: total_count %d, want 5 (before pagination)", tt.offset, tt.limit, resp.GetTotalCount())
		}
	}
}

func TestFindModelEntryIsPerModel(t *testing.T) {
	r := newTestRegistry(t)
	x := newExec(t)
	mustAnnounce(t, r, x.announce(t, 1, initial, desc("idle"), desc("busy")), at(0))
	mustHeartbeat(t, r, x.heartbeat(t, 1, 1, load("busy", 4, 2, 0), load("idle", 1, 0, 0)), at(0))

	got := findModel(t, r, "idle", nil, 0, 0, at(time.Second)).GetExecutors().GetExecutors()
	if len(got) != 1 {
		t.Fatalf("%d entries, want 1", len(got))
	}
	e := got[0]
	if e.GetStatus() != healthy {
		t.Errorf("status %v, want the model's own: healthy", e.GetStatus())
	}
	l := e.GetLoad().GetModels()
	if len(l) != 1 || l[0].GetModelId() != "idle" || l[0].GetActive() != 1 || l[0].GetCapacity() != 4 {
		t.Errorf("load %v, want just idle: 1 active of 4", l)
	}
	if len(e.GetAnnouncementEnvelope()) == 0 || len(e.GetHeartbeatEnvelope()) == 0 || len(e.GetAddrs()) != 2 || e.GetAnnouncementSeq() != 1 {
		t.Errorf("entry lacks envelopes, addrs or seq: %v", e)
	}
	whole, _ := r.Get(x.id, at(time.Second))
	if whole.GetStatus() != overloaded || len(whole.GetLoad().GetModels()) != 2 {
		t.Errorf("executor-level entry: %v, want overloaded with both loads", whole)
	}
}

func TestFindModelUnknown(t *testing.T) {
	r := newTestRegistry(t)
	mustAnnounce(t, r, newExec(t).announce(t, 1, initial, desc("a")), at(0))
	resp := findModel(t, r, "nope", nil, 0, 0, at(0))
	if resp.GetErrorCode() != 0 || resp.GetTotalCount() != 0 || resp.GetExecutors() == nil || len(resp.GetExecutors().GetExecutors()) != 0 {
		t.Fatalf("find-model of an unknown model = %v, want success with an empty list", resp)
	}
}

func listModels(t *testing.T, r *Registry, f *pb.QueryFilters, offset, limit uint32, now time.Time) *pb.QueryResponse {
	t.Helper()
	return query(t, r, &pb.QueryRequest{
		QueryId: 9,
		Query:   &pb.QueryRequest_ListModels{ListModels: &pb.ListModelsQuery{}},
		Filters: f, Offset: offset, Limit: limit,
	}, now)
}

// summary is a ModelSummary in a comparable form; best is the best load
// as active, queued, capacity.
type summary struct {
	id                                string
	count, healthy, overloaded, stale uint32
	best                              [3]uint32
}

func summaries(ms []*pb.ModelSummary) []summary {
	var out []summary
	for _, m := range ms {
		b := m.GetBestLoad()
		out = append(out, summary{m.GetModelId(), m.GetExecutorCount(), m.GetHealthyCount(), m.GetOverloadedCount(), m.GetStaleCount(),
			[3]uint32{b.GetActive(), b.GetQueued(), b.GetCapacity()}})
	}
	return out
}

func TestListModels(t *testing.T) {
	r := newTestRegistry(t)
	xs := newExecs(t, 5)
	now := at(40 * time.Second)
	mustAnnounce(t, r, xs[0].announce(t, 1, initial, desc("b"), desc("a")), at(0))
	mustAnnounce(t, r, xs[1].announce(t, 1, initial, desc("c"), desc("b")), at(0))
	mustAnnounce(t, r, xs[2].announce(t, 1, initial, desc("c")), at(0)) // stale by now
	mustAnnounce(t, r, xs[3].announce(t, 1, initial, desc("d", func(d *pb.ModelDescriptor) { d.Available = false })), at(0))
	mustAnnounce(t, r, xs[4].announce(t, 1, initial, desc("b", func(d *pb.ModelDescriptor) { d.BackendType, d.Capacity = "vllm", 16 })), at(0))
	mustHeartbeat(t, r, xs[0].heartbeat(t, 1, 1, load("b", 2, 1, 0)), now)
	mustHeartbeat(t, r, xs[1].heartbeat(t, 1, 1, load("c", 4, 0, 0), load("b", 1, 0, 8)), now)
	mustHeartbeat(t, r, xs[3].heartbeat(t, 1, 1), now)
	mustHeartbeat(t, r, xs[4].heartbeat(t, 1, 1, load("b", 3, 1, 0)), now)

	// b: xs[0] 3 of 4, xs[1] 1 of 8, xs[4] 4 of 16: xs[1] is least loaded.
	a := summary{"a", 1, 1, 0, 0, [3]uint32{0, 0, 4}}
	b := summary{"b", 3, 3, 0, 0, [3]uint32{1, 0, 8}}
	bOllama := summary{"b", 2, 2, 0, 0, [3]uint32{1, 0, 8}}
	bVLLM := summary{"b", 1, 1, 0, 0, [3]uint32{3, 1, 16}}
	c := summary{"c", 1, 0, 1, 0, [3]uint32{4, 0, 4}}
	// A stale executor is counted but is never the best: live ones first.
	cStale := summary{"c", 2, 0, 1, 1, [3]uint32{4, 0, 4}}
	d := summary{"d", 1, 1, 0, 0, [3]uint32{0, 0, 4}}
	tests := []struct {
		name          string
		f             *pb.QueryFilters
		offset, limit uint32
		want          []summary
		wantTotal     uint32
	}{
		{"all", nil, 0, 0, []summary{a, b, c}, 3},
		{"include stale", &pb.QueryFilters{IncludeStale: true}, 0, 0, []summary{a, b, cStale}, 3},
		{"include unavailable", &pb.QueryFilters{IncludeUnavailable: true}, 0, 0, []summary{a, b, c, d}, 4},
		{"filtered", &pb.QueryFilters{RequiredFeatures: []string{"CHAT"}, MaxInputPriceWei: "1000"}, 0, 0, []summary{a, b, c}, 3},
		{"backend counts only its executors", &pb.QueryFilters{BackendType: "OLLAMA"}, 0, 0, []summary{a, bOllama, c}, 3},
		{"backend of one executor", &pb.QueryFilters{BackendType: "vllm"}, 0, 0, []summary{bVLLM}, 1},
		{"filtered out", &pb.QueryFilters{BackendType: "sglang"}, 0, 0, nil, 0},
		{"page", nil, 1, 1, []summary{b}, 3},
		{"last page", nil, 2, 5, []summary{c}, 3},
		{"offset past end", nil, 3, 0, nil, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := listModels(t, r, tt.f, tt.offset, tt.limit, now)
			if resp.GetErrorCode() != 0 || resp.GetModels() == nil {
				t.Fatalf("response %v, want a model list", resp)
			}
			if got := summaries(resp.GetModels().GetModels()); !slices.Equal(got, tt.want) {
				t.Errorf("models = %+v, want %+v", got, tt.want)
			}
			if resp.GetTotalCount() != tt.wantTotal {
				t.Errorf("total_count = %d, want %d", resp.GetTotalCount(), tt.wantTotal)
			}
			if n := len(resp.GetModels().GetExecutors()); n != 0 {
				t.Errorf("%d executor entries in a list, want none: envelopes come with find-model", n)
			}
		})
	}
}

// A summary counts what find-model with the same filters returns, and its
// best load is find-model's first entry's.
func TestListSummaryAgreesWithFindModel(t *testing.T) {
	r := newTestRegistry(t)
	xs := newExecs(t, 12)
	for i, x := range xs {
		mustAnnounce(t, r, x.announce(t, 1, initial, desc("m", func(d *pb.ModelDescriptor) { d.Capacity = uint32(2 + i%3) })), at(0))
		if i%4 != 0 { // every fourth goes stale
			mustHeartbeat(t, r, x.heartbeat(t, 1, 1, load("m", uint32(i%5), uint32(i%2), 0)), at(35*time.Second))
		}
	}
	now := at(40 * time.Second)
	for _, f := range []*pb.QueryFilters{nil, {IncludeStale: true}} {
		sum := listModels(t, r, f, 0, 0, now).GetModels().GetModels()
		found := findModel(t, r, "m", f, 0, 0, now)
		es := found.GetExecutors().GetExecutors()
		if len(sum) != 1 || sum[0].GetExecutorCount() != found.GetTotalCount() || len(es) == 0 {
			t.Fatalf("filters %v: summary %v, find-model total %d", f, sum, found.GetTotalCount())
		}
		var want [4]uint32
		for _, e := range es {
			want[e.GetStatus()]++
		}
		s := sum[0]
		if got := [4]uint32{0, s.GetHealthyCount(), s.GetOverloadedCount(), s.GetStaleCount()}; got != want {
			t.Errorf("filters %v: healthy/overloaded/stale %v, find-model's statuses %v", f, got[1:], want[1:])
		}
		first := es[0].GetLoad().GetModels()[0]
		if b := s.GetBestLoad(); b.GetActive() != first.GetActive() || b.GetQueued() != first.GetQueued() || b.GetCapacity() != first.GetCapacity() {
			t.Errorf("filters %v: best load %v, find-model's first %v", f, b, first)
		}
	}
}

func sameSet(a, b []peer.ID) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func TestExecutorInfo(t *testing.T) {
	r := newTestRegistry(t)
	xs := newExecs(t, 3)
	mustAnnounce(t, r, xs[0].announce(t, 1, initial, desc("a")), at(0))
	mustAnnounce(t, r, xs[1].announce(t, 1, initial, desc("a")), at(35*time.Second))
	info := func(ids ...peer.ID) *pb.QueryResponse {
		q := &pb.ExecutorInfoQuery{}
		for _, id := range ids {
			q.PeerIds = append(q.PeerIds, []byte(id))
		}
		return query(t, r, &pb.QueryRequest{QueryId: 5, Query: &pb.QueryRequest_ExecutorInfo{ExecutorInfo: q}}, at(40*time.Second))
	}

	resp := info(xs[1].id, xs[2].id, xs[0].id, xs[1].id)
	got := resp.GetExecutors().GetExecutors()
	if !slices.Equal(peers(got), idsOf(xs[1], xs[0])) || resp.GetTotalCount() != 2 || resp.GetErrorCode() != 0 {
		t.Fatalf("executor info = %v, want xs[1], xs[0] in request order, unknown and repeated ids skipped", resp)
	}
	if got[0].GetStatus() != healthy || got[1].GetStatus() != stale {
		t.Errorf("statuses %v, %v; want healthy, stale", got[0].GetStatus(), got[1].GetStatus())
	}

	resp = info(xs[2].id)
	if resp.GetErrorCode() != pb.ErrorCode_ERROR_CODE_EXECUTOR_NOT_FOUND || !strings.Contains(resp.GetErrorMessage(), "none of the 1 requested") || resp.GetResult() != nil {
		t.Fatalf("executor info of an unknown executor = %v, want error 2002 with a message", resp)
	}
}
