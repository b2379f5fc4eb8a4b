package registry

import (
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// BenchmarkHeartbeatsUnderListFlood applies heartbeats one after another,
// as the topic validator does, while another goroutine asks for the model
// list back to back (filters that every executor passes, so that each list
// examines all 50,000 entries), and times each heartbeat's apply: the
// write lock's wait is what a list costs validation, apart from the CPU.
// "one-lock" holds the read lock for the whole list, as lists did before
// they were read in batches.
//
//	go test -run '^$' -bench HeartbeatsUnderListFlood -benchtime 20000x ./pkg/registry/
func BenchmarkHeartbeatsUnderListFlood(b *testing.B) {
	f := benchFixtures(b)
	for _, tc := range []struct {
		name  string
		lists bool
		batch int
	}{
		{"no-lists", false, listBatch},
		{"lists-batched", true, listBatch},
		{"lists-batch16k", true, 16384},
		{"lists-one-lock", true, math.MaxInt},
	} {
		b.Run(tc.name, func(b *testing.B) {
			r := filled(b, f)
			defer func(n int) { listBatch = n }(listBatch)
			listBatch = tc.batch
			hs := make([]*pb.Heartbeat, len(f.hbs))
			for i, s := range f.hbs {
				hs[i] = proto.Clone(s.Heartbeat()).(*pb.Heartbeat)
			}
			q := &pb.QueryRequest{
				Query:   &pb.QueryRequest_ListModels{ListModels: &pb.ListModelsQuery{}},
				Filters: &pb.QueryFilters{RequiredFeatures: []string{"chat"}, MaxInputPriceWei: "5000000000"},
			}
			stop := make(chan struct{})
			var lists atomic.Int64
			var wg sync.WaitGroup
			if tc.lists {
				wg.Go(func() {
					for {
						select {
						case <-stop:
							return
						default:
						}
						if resp := r.Query(q, protocol.DefaultQueryLimit, t0.Add(10*time.Second)); len(resp.GetModels().GetModels()) != benchModels {
							b.Error("a list lost models")
							return
						}
						lists.Add(1)
					}
				})
			}
			lat := make([]time.Duration, 0, b.N)
			i := 0
			start := time.Now()
			for b.Loop() {
				k := i % len(hs)
				hs[k].Seq = uint64(i) + 2
				t := time.Now()
				if _, err := r.applyHeartbeat(hs[k], f.hbs[k].Raw(), t0.Add(time.Duration(i)*time.Microsecond)); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t))
				i++
			}
			wall := time.Since(start)
			close(stop)
			wg.Wait()
			slices.Sort(lat)
			q99 := lat[min(len(lat)-1, len(lat)*99/100)]
			b.ReportMetric(float64(i)/wall.Seconds(), "heartbeats/s")
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "apply-p50-µs")
			b.ReportMetric(float64(q99.Nanoseconds())/1e3, "apply-p99-µs")
			b.ReportMetric(float64(lat[len(lat)-1].Nanoseconds())/1e3, "apply-max-µs")
			b.ReportMetric(float64(lists.Load())/wall.Seconds(), "lists/s")
		})
	}
}
