package validator

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
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
		key, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			f.Fatal(err)
		}
		id, _ := peer.IDFromPrivateKey(key)
		a := &pb.Announcement{ExecutorId: []byte(id), Seq: uint64(i + 1), Kind: pb.AnnouncementKind_ANNOUNCEMENT_KIND_INITIAL,
			IssuedAtMs: now.UnixMilli(), ProtocolVersion: lp.Version, Models: []*pb.ModelDescriptor{
				{ModelId: "m", BackendType: "vllm", Capacity: 2, Available: true, Features: []string{"chat"}},
				{ModelId: "n", Capacity: 1, Available: i%2 == 0, Pricing: &pb.Pricing{InputTokenPriceWei: "5"}},
			}}
		env, err := lp.SealAnnouncement(a, key)
		if err != nil {
			f.Fatal(err)
		}
		s, err := lp.OpenAnnouncement(env)
		if err != nil {
			f.Fatal(err)
		}
		if _, err := reg.ApplyAnnouncement(s, now); err != nil {
			f.Fatal(err)
		}
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
		b, err := v.serveQuery(context.Background(), "fuzzer", req, nil)
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		if len(b) > lp.MaxResponseSize {
			t.Fatalf("answer of %d bytes exceeds the limit", len(b))
		}
		var resp pb.QueryResponse
		if err := proto.Unmarshal(b, &resp); err != nil {
			t.Fatalf("answer does not decode: %v", err)
		}
		var q pb.QueryRequest
		if proto.Unmarshal(req, &q) == nil && resp.GetErrorCode() == 0 && resp.GetQueryId() != q.GetQueryId() {
			t.Fatalf("answer names query %d, asked %d", resp.GetQueryId(), q.GetQueryId())
		}
	})
}
