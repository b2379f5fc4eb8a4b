package nodetest_test

import (
	"context"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/lloom/lloom/node/nodetest"
	"github.com/lloom/lloom/node/validator"
	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// BenchmarkQueryUnderFlood measures an honest client's find-model latency
// with and without two attackers: one publishing invalid announcements as
// fast as it can (forged signatures, each costing a verification until
// peer scoring graylists it), one sending queries as fast as it can (held
// to the per-peer rate limit). It reports p50 and p99 of both, the ratio of
// the p99s, how the flood was answered, and the heap growth.
//
//	go test -run '^$' -bench QueryUnderFlood -benchtime 2000x ./node/nodetest/
func BenchmarkQueryUnderFlood(b *testing.B) {
	v, _ := StartValidator(b, func(c *validator.Config) { c.QueryRate = 500 })
	n := 0
	for _, id := range []string{"a", "b", "c"} {
		_, _ = StartExecutor(b, []*validator.Validator{v}, []*pb.ModelDescriptor{Model("gpt-4", 4), Model(id, 1)}, nil)
		n++
	}
	Eventually(b, "executors registered", func() error {
		if v.Registry().Len() != n {
			return errNotYet
		}
		return nil
	})
	c := NewClient(b, v)
	ctx := context.Background()
	sample := func(k int) []time.Duration {
		out := make([]time.Duration, 0, k)
		for range k {
			start := time.Now()
			res, err := c.FindModel(ctx, "gpt-4", nil)
			if err != nil || len(res.Executors) != n {
				b.Fatalf("honest query failed: %v", err)
			}
			out = append(out, time.Since(start))
			time.Sleep(5 * time.Millisecond) // an honest client, within the rate limit
		}
		return out
	}
	base := sample(max(b.N, 50))
	heapBefore := heapInUse()

	// The flood.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var published, queries, limited atomic.Uint64
	gossiper := NewPeer(b, v)
	// Signed before the clock starts, so that the attacker's signing does
	// not compete with the validator for the CPU.
	forged := make([][]byte, 20000)
	for i := range forged {
		env, _ := gossiper.SealAnnouncement(b, gossiper.Announcement(uint64(i+1), time.Now(), Model("x", 1)))
		env[len(env)-1] ^= 0xff
		forged[i] = wrap(b, env)
	}
	wg.Go(func() {
		for i := 0; ; i = (i + 1) % len(forged) {
			select {
			case <-stop:
				return
			default:
			}
			if gossiper.Topic.Publish(ctx, forged[i]) == nil {
				published.Add(1)
			}
		}
	})
	querier := NewPeer(b, v)
	req := marshal(b, &pb.QueryRequest{Query: &pb.QueryRequest_ListModels{ListModels: &pb.ListModelsQuery{}}})
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if resp, err := queryRaw(querier, v, req); err == nil {
				queries.Add(1)
				if resp.GetErrorCode() == pb.ErrorCode_ERROR_CODE_RATE_LIMITED {
					limited.Add(1)
				}
			}
		}
	})
	time.Sleep(200 * time.Millisecond) // let the flood build up before sampling
	b.ResetTimer()
	flood := sample(b.N)
	b.StopTimer()
	close(stop)
	wg.Wait()

	st := v.Stats()
	p := func(d []time.Duration, q float64) float64 {
		slices.Sort(d)
		return float64(d[min(len(d)-1, int(q*float64(len(d))))].Microseconds())
	}
	b.ReportMetric(p(base, 0.5), "base-p50-µs")
	b.ReportMetric(p(base, 0.99), "base-p99-µs")
	b.ReportMetric(p(flood, 0.5), "flood-p50-µs")
	b.ReportMetric(p(flood, 0.99), "flood-p99-µs")
	b.ReportMetric(p(flood, 0.99)/p(base, 0.99), "p99-ratio")
	b.ReportMetric(float64(published.Load()), "invalid-published")
	b.ReportMetric(float64(st.GetMessagesRejected()), "invalid-rejected")
	b.ReportMetric(float64(queries.Load()), "flood-queries")
	b.ReportMetric(float64(limited.Load()), "flood-queries-4290")
	b.ReportMetric(float64(heapInUse()-min(heapBefore, heapInUse()))/1024, "heap-growth-KiB")
	if st.GetExecutors() != uint64(n) {
		b.Fatalf("registry holds %d executors after the flood, want %d", st.GetExecutors(), n)
	}
}

var errNotYet = lp.Errorf(lp.ErrTimeout.Code, "not yet")

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}
