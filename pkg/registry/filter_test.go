package registry

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/lloom/lloom/protocol/pb"
)

func TestFindModelFilters(t *testing.T) {
	big := "1" + strings.Repeat("0", 77) // 10^77, 78 digits
	r := newTestRegistry(t)
	xs := newExecs(t, 5)
	ds := []*pb.ModelDescriptor{
		desc("m"), // ollama, 8192, chat+completion, 1000/2000
		desc("m", func(d *pb.ModelDescriptor) {
			d.BackendType, d.MaxContextLength, d.Features, d.Pricing = "vLLM", 32768, []string{"chat", "embeddings"}, nil
		}),
		desc("m", func(d *pb.ModelDescriptor) {
			d.BackendType, d.MaxContextLength, d.Features = "OLLAMA", 4096, []string{"completion"}
			d.Pricing = &pb.Pricing{InputTokenPriceWei: "000500", OutputTokenPriceWei: big}
		}),
		desc("m", func(d *pb.ModelDescriptor) { d.Available = false }),
		desc("m"), // stale
	}
	now := at(40 * time.Second)
	for i, x := range xs {
		mustAnnounce(t, r, x.announce(t, 1, initial, ds[i]), at(0))
		if i != 4 {
			mustHeartbeat(t, r, x.heartbeat(t, 1, 1), now)
		}
	}

	tests := []struct {
		name string
		f    *pb.QueryFilters
		want []int
	}{
		{"none", nil, []int{0, 1, 2}},
		{"backend ignores case", &pb.QueryFilters{BackendType: "ollama"}, []int{0, 2}},
		{"backend upper", &pb.QueryFilters{BackendType: "VLLM"}, []int{1}},
		{"backend nobody has", &pb.QueryFilters{BackendType: "llamacpp"}, nil},
		{"context at least", &pb.QueryFilters{MinContextLength: 8192}, []int{0, 1}},
		{"context above", &pb.QueryFilters{MinContextLength: 8193}, []int{1}},
		{"one feature", &pb.QueryFilters{RequiredFeatures: []string{"chat"}}, []int{0, 1}},
		{"all features, any case", &pb.QueryFilters{RequiredFeatures: []string{"CHAT", "completion"}}, []int{0}},
		{"features nobody has together", &pb.QueryFilters{RequiredFeatures: []string{"embeddings", "completion"}}, nil},
		{"input price at bound", &pb.QueryFilters{MaxInputPriceWei: "1000"}, []int{0, 1, 2}},
		{"input price below", &pb.QueryFilters{MaxInputPriceWei: "999"}, []int{1, 2}},
		{"input price bound with zeros", &pb.QueryFilters{MaxInputPriceWei: "0500"}, []int{1, 2}},
		{"input price zero: free only", &pb.QueryFilters{MaxInputPriceWei: "0"}, []int{1}},
		{"output price 78 digits", &pb.QueryFilters{MaxOutputPriceWei: big}, []int{0, 1, 2}},
		{"output price 77 nines", &pb.QueryFilters{MaxOutputPriceWei: strings.Repeat("9", 77)}, []int{0, 1}},
		{"include stale", &pb.QueryFilters{IncludeStale: true}, []int{0, 1, 2, 4}},
		{"include unavailable", &pb.QueryFilters{IncludeUnavailable: true}, []int{0, 1, 2, 3}},
		{"include both", &pb.QueryFilters{IncludeStale: true, IncludeUnavailable: true}, []int{0, 1, 2, 3, 4}},
		{"combined", &pb.QueryFilters{BackendType: "Ollama", MinContextLength: 8000, IncludeUnavailable: true}, []int{0, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := findModel(t, r, "m", tt.f, 0, 0, now)
			want := make([]peer.ID, len(tt.want))
			for i, j := range tt.want {
				want[i] = xs[j].id
			}
			// All are idle with equal capacity, stale ones last: the
			// order is by peer id, which is xs's.
			got := peers(resp.GetExecutors().GetExecutors())
			if !slices.Equal(got, want) {
				t.Fatalf("executors = %v, want %v", got, want)
			}
			if resp.GetTotalCount() != uint32(len(want)) {
				t.Fatalf("total_count = %d, want %d", resp.GetTotalCount(), len(want))
			}
		})
	}
}

func TestComparePrice(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"", "0", 0},
		{"000", "", 0},
		{"1", "", 1},
		{"", "1", -1},
		{"10", "9", 1},
		{"0010", "9", 1},
		{"123", "124", -1},
		{"124", "0124", 0},
		{strings.Repeat("9", 78), "1" + strings.Repeat("0", 77), 1},
	}
	for _, tt := range tests {
		if got := comparePrice(normPrice(tt.a), normPrice(tt.b)); got != tt.want {
			t.Errorf("comparePrice(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}
