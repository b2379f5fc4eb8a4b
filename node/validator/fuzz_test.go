package validator

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/lloom/lloom/pkg/registry"
	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// FuzzQueryHandler feeds arbitrary request bytes to the query handler, over
// a registry holding a few executors: it must answer every input, with a
// response that decodes and fits the size limit, and never panic.
func FuzzQueryHandler(f *testing.F) {
	reg, err := registry.New(registry.DefaultConfig())
	if err != nil {
		f.Fatal(err)
	}
	now := time.Now()
	for i := range 3 {
		register(f, reg, i, uint64(i+1), []*pb.ModelDescriptor{
			{ModelId: "m", BackendType: "vllm", Capacity: 2, Available: true, Features: []string{"chat"}},
			{ModelId: "n", Capacity: 1, Available: i%2 == 0, Pricing: &pb.Pricing{InputTokenPriceWei: "5"}},
		}, now)
	}
	cfg := DefaultConfig()
	cfg.Now = func() time.Time { return now }
	v := &Validator{cfg: cfg, reg: reg, limits: newLimiter(0), started: now}

	seed := func(q *pb.QueryRequest) {
		b, err := proto.Marshal(q)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	seed(&pb.QueryRequest{Query: &pb.QueryRequest_ListModels{ListModels: &pb.ListModelsQuery{}}})
	seed(&pb.QueryRequest{Query: &pb.QueryRequest_FindModel{FindModel: &pb.FindModelQuery{ModelId: "m"}},
		Filters: &pb.QueryFilters{BackendType: "VLLM", RequiredFeatures: []string{"chat"}, MaxInputPriceWei: "10", IncludeStale: true}, Limit: 1, Offset: 1})
	seed(&pb.QueryRequest{Query: &pb.QueryRequest_ExecutorInfo{ExecutorInfo: &pb.ExecutorInfoQuery{PeerIds: [][]byte{[]byte("x")}}}})
	seed(&pb.QueryRequest{Query: &pb.QueryRequest_Statistics{Statistics: &pb.StatisticsQuery{}}, Limit: 1000, Offset: 1 << 31})
	f.Add([]byte{})
	f.Add([]byte{0xff})

	f.Fuzz(func(t *testing.T, req []byte) {
		b, _ := v.serveQuery(context.Background(), "fuzzer", req, nil)
		var resp pb.QueryResponse
		if err := proto.Unmarshal(b, &resp); err != nil {
			t.Fatalf("answer does not decode: %v", err)
		}
		var q pb.QueryRequest
		if proto.Unmarshal(req, &q) != nil {
			if resp.GetErrorCode() != pb.ErrorCode_ERROR_CODE_MALFORMED_MESSAGE {
				t.Fatalf("undecodable request answered with code %d, want 3002", resp.GetErrorCode())
			}
			return
		}
		if resp.GetQueryId() != q.GetQueryId() {
			t.Fatalf("answer names query %d, asked %d", resp.GetQueryId(), q.GetQueryId())
		}
		limit, checkErr := lp.CheckQuery(&q)
		if code := resp.GetErrorCode(); code != 0 {
			if resp.GetResult() != nil {
				t.Fatalf("error %d answered with a result", code)
			}
			if _, known := pb.ErrorCode_name[int32(code)]; !known {
				t.Fatalf("unknown error code %d", code)
			}
			if checkErr == nil && code != pb.ErrorCode_ERROR_CODE_EXECUTOR_NOT_FOUND {
				t.Fatalf("a valid query got error %d: %s", code, resp.GetErrorMessage())
			}
			return
		}
		if checkErr != nil {
			t.Fatalf("an invalid query (%v) was answered without an error", checkErr)
		}
		switch x := q.GetQuery().(type) {
		case *pb.QueryRequest_ListModels:
			ms := resp.GetModels().GetModels()
			if len(ms) > limit || int(resp.GetTotalCount()) < len(ms) {
				t.Fatalf("list: %d models for limit %d, total %d", len(ms), limit, resp.GetTotalCount())
			}
			for _, m := range ms {
				if m.GetModelId() != "m" && m.GetModelId() != "n" {
					t.Fatalf("list names model %q, which nobody announced", m.GetModelId())
				}
			}
		case *pb.QueryRequest_FindModel:
			es := resp.GetExecutors().GetExecutors()
			if len(es) > limit || int(resp.GetTotalCount()) < len(es) {
				t.Fatalf("find: %d executors for limit %d, total %d", len(es), limit, resp.GetTotalCount())
			}
			for _, e := range es {
				s, err := lp.OpenAnnouncement(e.GetAnnouncementEnvelope())
				if err != nil {
					t.Fatalf("find: an entry's envelope does not verify: %v", err)
				}
				if !servesModel(s.Announcement(), x.FindModel.GetModelId()) {
					t.Fatalf("find %q: an executor that does not announce it", x.FindModel.GetModelId())
				}
			}
		case *pb.QueryRequest_ExecutorInfo:
			asked := map[string]bool{}
			for _, id := range x.ExecutorInfo.GetPeerIds() {
				asked[string(id)] = true
			}
			for _, e := range resp.GetExecutors().GetExecutors() {
				if !asked[string(e.GetPeerId())] {
					t.Fatalf("executor info returned an executor that was not asked for")
				}
			}
		case *pb.QueryRequest_Statistics:
			if st := resp.GetStatistics(); st == nil || st.GetExecutors() != 3 {
				t.Fatalf("statistics %v, want 3 executors", st)
			}
		}
	})
}

func servesModel(a *pb.Announcement, model string) bool {
	for _, m := range a.GetModels() {
		if m.GetModelId() == model {
			return true
		}
	}
	return false
}
