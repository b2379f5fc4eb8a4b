package validator

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/lloom/lloom/pkg/registry"
	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

func TestQueryCost(t *testing.T) {
	tests := []struct {
		name           string
		bytes, scanned int
		want           float64
	}{
		{"refused or malformed", 0, 0, 1},
		{"statistics", 200, 10, 1.003},
		{"small page", 24 << 10, 500, 1.39},
		{"list of summaries at 10,000 x 5", 4 << 10, 50_100, 2.59},
		{"full page of envelopes", 3 << 20, 10_000, 49.3},
	}
	for _, tt := range tests {
		if got := queryCost(tt.bytes, tt.scanned); math.Abs(got-tt.want) > 0.01 {
			t.Errorf("%s: cost %.3f units, want %.3f", tt.name, got, tt.want)
		}
	}
}

// A peer is admitted while its bucket holds a unit; what a query cost past
// that unit is charged after it, into debt if need be, and the bucket
// refills at the rate.
func TestLimiterChargesWork(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	tests := []struct {
		name      string
		cost      float64 // of each query
		admitted  int     // before the first refusal, from a full bucket of 20
		waitAfter time.Duration
	}{
		{"cheap queries", 1, 20, 100 * time.Millisecond},
		{"queries of 2.5 units", 2.5, 8, 100 * time.Millisecond},
		{"a query of 50 units", 50, 1, 3100 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLimiter(10) // burst 20
			p := peer.ID("p")
			n := 0
			for l.admit(p, t0) {
				l.charge(p, tt.cost-1, t0)
				n++
			}
			if n != tt.admitted {
				t.Errorf("%d queries admitted, want %d", n, tt.admitted)
			}
			if got := l.retryAfter(p, t0); got != tt.waitAfter {
				t.Errorf("retry after %s, want %s", got, tt.waitAfter)
			}
			if !l.admit(p, t0.Add(tt.waitAfter)) {
				t.Errorf("refused after waiting %s", tt.waitAfter)
			}
			if !l.admit(peer.ID("other"), t0) {
				t.Error("another peer refused: the budget is per peer")
			}
		})
	}
}

func TestLimiterForgetsOnlyFullBuckets(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	l := newLimiter(10)
	l.admit("idle", t0)
	l.admit("debtor", t0)
	l.charge("debtor", 100, t0)
	l.forgetIdle(t0.Add(5 * time.Second)) // idle is full again; debtor owes 49 units more
	if _, ok := l.peers["idle"]; ok {
		t.Error("a full bucket is kept")
	}
	if l.admit("debtor", t0.Add(5*time.Second)) {
		t.Error("a debtor was forgiven by forgetting its bucket")
	}
	if newLimiter(0).admit("p", t0) != true {
		t.Error("rate 0 refused a query")
	}
}

// testValidator answers queries over a registry of n executors serving
// model "m", each announcing 64 models so that an entry is large, with a
// query budget of rate units per second and a clock that stands still.
func testValidator(t *testing.T, n, rate int) *Validator {
	t.Helper()
	reg, err := registry.New(registry.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i := range n {
		var models []*pb.ModelDescriptor
		for k := range lp.MaxModels {
			models = append(models, &pb.ModelDescriptor{ModelId: fmt.Sprintf("model-%d-%02d", i, k), Capacity: 1, Available: true,
				BackendType: "vllm", Features: []string{"chat", "completion", "embeddings"}})
		}
		models[0].ModelId = "m"
		register(t, reg, i, 1, models, now)
	}
	cfg := DefaultConfig()
	cfg.Now = func() time.Time { return now }
	cfg.QueryRate = rate
	return &Validator{cfg: cfg, reg: reg, limits: newLimiter(rate), started: now}
}

// A flood of expensive queries (pages of every executor, envelopes and
// all) is refused sooner than a flood of cheap ones (statistics) from a
// full bucket, and each refusal is a 4290.
func TestExpensiveQueriesAreRefusedSooner(t *testing.T) {
	v := testValidator(t, 40, 10) // burst 20
	cancelled, cancel := context.WithCancel(context.Background())
	cancel() // refusals are answered without waiting
	answered := func(p peer.ID, q *pb.QueryRequest) (int, int) {
		req, err := proto.Marshal(q)
		if err != nil {
			t.Fatal(err)
		}
		bytes := 0
		for n := range 100 {
			b, _ := v.serveQuery(cancelled, p, req, nil)
			var resp pb.QueryResponse
			if err := proto.Unmarshal(b, &resp); err != nil {
				t.Fatal(err)
			}
			if resp.GetErrorCode() == pb.ErrorCode_ERROR_CODE_RATE_LIMITED {
				return n, bytes
			}
			if resp.GetErrorCode() != 0 {
				t.Fatalf("query answered %d: %s", resp.GetErrorCode(), resp.GetErrorMessage())
			}
			bytes = len(b)
		}
		t.Fatalf("peer %s: 100 queries and no 4290", p)
		return 0, 0
	}
	cheap, small := answered("cheap", &pb.QueryRequest{Query: &pb.QueryRequest_Statistics{Statistics: &pb.StatisticsQuery{}}})
	dear, big := answered("dear", &pb.QueryRequest{Query: &pb.QueryRequest_FindModel{FindModel: &pb.FindModelQuery{ModelId: "m"}}, Limit: 1000})
	small1, _ := answered("one", &pb.QueryRequest{Query: &pb.QueryRequest_FindModel{FindModel: &pb.FindModelQuery{ModelId: "m"}}, Limit: 1})
	t.Logf("answered before the first 4290: %d statistics (%d bytes), %d pages of 1 executor, %d pages of 40 (%d bytes)", cheap, small, small1, dear, big)
	// A statistics query costs a unit and a trifle (40 executors counted).
	if cheap < 19 || cheap > 20 {
		t.Errorf("%d statistics queries answered from a burst of 20 units, want 19 or 20", cheap)
	}
	if dear >= small1 || small1 > cheap || float64(dear) > 20/queryCost(big, 41)+1 {
		t.Errorf("pages of 40 executors: %d answered, pages of 1: %d; want the big pages refused sooner, after about %.0f",
			dear, small1, 20/queryCost(big, 41))
	}
}
