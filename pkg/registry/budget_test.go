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
// does not look inside envelopes, which lets the test skip signing.
func bulky(t *testing.T, r *Registry, xs []*execKey, models ...string) {
	t.Helper()
	for _, x := range xs {
		s := &protocol.SignedAnnouncement{
			Raw:          make([]byte, 200<<10),
			Announcement: x.announcement(1, initial, descs(models)...),
			Signer:       x.id,
		}
		mustAnnounce(t, r, s, at(0))
	}
}

func checkSize(t *testing.T, resp *pb.QueryResponse) {
	t.Helper()
	if n := proto.Size(resp); n > protocol.MaxResponseSize {
		t.Fatalf("response of %d bytes exceeds the limit of %d", n, protocol.MaxResponseSize)
	}
}

func TestListModelsEndsPageWithinBudget(t *testing.T) {
	r := newTestRegistry(t)
	xs := newExecs(t, 24)
	bulky(t, r, xs[:12], "a") // 2.4 MB each
	bulky(t, r, xs[12:], "b")

	resp := listModels(t, r, nil, 0, 0, at(0))
	checkSize(t, resp)
	if got := summaries(resp.GetModels().GetModels()); len(got) != 1 || got[0].id != "a" || len(got[0].execs) != 12 {
		t.Fatalf("first page = %+v, want model a alone with its 12 executors", got)
	}
	if resp.GetTotalCount() != 2 || len(resp.GetModels().GetExecutors()) != 12 {
		t.Fatalf("total_count %d, %d executors; want 2 and 12", resp.GetTotalCount(), len(resp.GetModels().GetExecutors()))
	}
	// The client pages by how many models it got.
	resp = listModels(t, r, nil, 1, 0, at(0))
	if got := summaries(resp.GetModels().GetModels()); len(got) != 1 || got[0].id != "b" {
		t.Fatalf("second page = %+v, want model b", got)
	}
}

func TestListModelsCutsModelTooLargeForAPage(t *testing.T) {
	r := newTestRegistry(t)
	xs := newExecs(t, 24) // 4.8 MB in all
	bulky(t, r, xs, "c")
	bulky(t, r, newExecs(t, 1), "d")

	resp := listModels(t, r, nil, 0, 0, at(0))
	checkSize(t, resp)
	ms := resp.GetModels().GetModels()
	if len(ms) != 1 || ms[0].GetModelId() != "c" {
		t.Fatalf("page = %+v, want model c alone", summaries(ms))
	}
	ids := summaries(ms)[0].execs
	if len(ids) == 0 || len(ids) >= 24 || ms[0].GetExecutorCount() != 24 {
		t.Fatalf("%d executor ids of count %d; want a cut list, count 24", len(ids), ms[0].GetExecutorCount())
	}
	if !slices.Equal(ids, idsOf(xs[:len(ids)]...)) {
		t.Error("the cut list is not the least loaded executors")
	}
	if got := peers(resp.GetModels().GetExecutors()); !slices.Equal(got, ids) {
		t.Errorf("executors %d, want exactly the %d named", len(got), len(ids))
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
