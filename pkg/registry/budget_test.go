package registry

import (
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// bulky registers executors whose envelopes take 200 KiB each, far past
// what the protocol allows, so that a few fill a response. The registry
// does not look inside envelopes, which lets the test skip signing and
// call the internal applyLocked, which takes what ApplyAnnouncement
// unwraps; the registry's byte budget is lifted for it.
func bulky(t *testing.T, r *Registry, xs []*execKey, models ...string) {
	t.Helper()
	r.cfg.MaxEntryBytes = 1 << 30
	for _, x := range xs {
		r.mu.Lock()
		_, err := r.applyLocked(x.id, x.announcement(1, initial, descs(models)...), make([]byte, 200<<10), at(0))
		r.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		markVerified(t, r, x.id)
	}
}

func checkSize(t *testing.T, resp *pb.QueryResponse) {
	t.Helper()
	if n := proto.Size(resp); n > protocol.MaxResponseSize {
		t.Fatalf("response of %d bytes exceeds the limit of %d", n, protocol.MaxResponseSize)
	}
}

// A list page is summaries: however large the executors' envelopes, it
// names every model in a few bytes each and carries no executor.
func TestListModelsCarriesNoEnvelopes(t *testing.T) {
	r := newTestRegistry(t)
	bulky(t, r, newExecs(t, 24), "a") // 4.8 MB of envelopes
	bulky(t, r, newExecs(t, 12), "b")

	resp := listModels(t, r, nil, 0, 0, at(0))
	if n := proto.Size(resp); n > 200 {
		t.Fatalf("list of 2 models takes %d bytes, want a few dozen per model", n)
	}
	got := summaries(resp.GetModels().GetModels())
	if len(got) != 2 || got[0].id != "a" || got[0].count != 24 || got[1].id != "b" || got[1].count != 12 {
		t.Fatalf("page = %+v, want a with 24 executors and b with 12", got)
	}
	if len(resp.GetModels().GetExecutors()) != 0 || len(resp.GetModels().GetModels()[0].GetExecutorIds()) != 0 {
		t.Fatal("a list carries executors; it should carry counts only")
	}
}

func TestFindModelAndInfoWithinBudget(t *testing.T) {
	r := newTestRegistry(t)
	xs := newExecs(t, 24)
	bulky(t, r, xs, "c")

	resp := findModel(t, r, "c", nil, 0, 100, at(0))
	checkSize(t, resp)
	got := peers(resp.GetExecutors().GetExecutors())
	if len(got) == 0 || len(got) >= 24 || resp.GetTotalCount() != 24 {
		t.Fatalf("%d executors of total %d; want a cut page of 24", len(got), resp.GetTotalCount())
	}
	rest := peers(findModel(t, r, "c", nil, uint32(len(got)), 100, at(0)).GetExecutors().GetExecutors())
	if !slices.Equal(append(got, rest...), idsOf(xs...)) {
		t.Fatal("paging by the number received does not yield every executor once")
	}

	q := &pb.ExecutorInfoQuery{}
	for _, x := range xs {
		q.PeerIds = append(q.PeerIds, []byte(x.id))
	}
	resp = query(t, r, &pb.QueryRequest{Query: &pb.QueryRequest_ExecutorInfo{ExecutorInfo: q}}, at(0))
	checkSize(t, resp)
	if n := len(resp.GetExecutors().GetExecutors()); n == 0 || n >= 24 || resp.GetTotalCount() != 24 {
		t.Fatalf("executor info: %d entries of total %d; want a cut list of 24", n, resp.GetTotalCount())
	}
}
