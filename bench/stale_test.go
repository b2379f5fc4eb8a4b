package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/lloom/lloom/node/client"
	"github.com/lloom/lloom/node/executor"
	"github.com/lloom/lloom/node/nodetest"
	"github.com/lloom/lloom/node/validator"
	"github.com/lloom/lloom/protocol/pb"
)

// BenchmarkCrashStale measures crash → stale as a client sees it, at
// several heartbeat intervals, with the validator's stale timeout at three
// intervals (the default ratio: 30 s for 10 s). Each iteration starts a
// batch of executors, lets them heartbeat, then closes each one's host at
// a random moment within one interval (no REMOVAL leaves: a crash), and
// polls the validator every 10 ms with an executor-info query until each
// is reported stale. The target is 3 intervals + 1 s. -full runs 1, 2, 5
// and 10 s; CI runs 500 ms.
func BenchmarkCrashStale(b *testing.B) {
	for _, iv := range size([]time.Duration{500 * time.Millisecond}, []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second}) {
		b.Run(fmt.Sprintf("interval=%s", iv), func(b *testing.B) { benchCrashStale(b, iv, size(2, 20)) })
	}
}

func benchCrashStale(b *testing.B, interval time.Duration, batch int) {
	v := startValidator(b, nil, func(cfg *validator.Config) {
		cfg.Registry.StaleAfter = 3 * interval
		cfg.Registry.RemoveAfter = 10 * interval
	})
	c := nodetest.NewClient(b, v)
	d := Dist{Name: "stale"}
	over := 0 // samples past the target
	for b.Loop() {
		es := make([]*executor.Executor, batch)
		ids := make([][]byte, batch)
		for i := range es {
			es[i] = startExecutor(b, v, fmt.Sprintf("crash-%d:1b", i), interval)
			ids[i] = []byte(es[i].ID())
		}
		// Registered, and a heartbeat or two sent: the steady state.
		waitStatus(b, c, ids, func(e *pb.ExecutorEntry) bool { return e.GetStatus() == pb.ExecutorStatus_EXECUTOR_STATUS_HEALTHY })
		time.Sleep(interval + interval/2)

		crashed := make(map[peer.ID]time.Time, batch)
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, e := range es {
			wg.Go(func() {
				time.Sleep(rand.N(interval))
				at := time.Now()
				e.Host().Close() // a crash: no REMOVAL
				mu.Lock()
				crashed[e.ID()] = at
				mu.Unlock()
			})
		}
		wg.Wait()
		seen := waitStatus(b, c, ids, func(e *pb.ExecutorEntry) bool { return e.GetStatus() == pb.ExecutorStatus_EXECUTOR_STATUS_STALE })
		for id, at := range seen {
			lat := at.Sub(crashed[id])
			d.Add(lat)
			if lat > 3*interval+time.Second {
				over++
			}
		}
		for _, e := range es {
			e.Close()
		}
	}
	d.Report(b, "ms")
	b.ReportMetric(float64(over), "over-target")
	b.Logf("stale after %s; target %s; %d of %d samples past it", 3*interval, 3*interval+time.Second, over, d.N())
}

// startExecutor starts an executor of one model with a short removal wait
// (a crashed host cannot send its REMOVAL anyway).
func startExecutor(b *testing.B, v *validator.Validator, model string, interval time.Duration) *executor.Executor {
	b.Helper()
	e, _ := nodetest.StartExecutor(b, []*validator.Validator{v}, []*pb.ModelDescriptor{nodetest.Model(model, 4)}, func(cfg *executor.Config) {
		cfg.HeartbeatInterval = interval
		cfg.RemovalTimeout = 100 * time.Millisecond
	})
	return e
}

// waitStatus polls the validator every 10 ms until every executor in ids
// satisfies ok, and returns when each first did.
func waitStatus(b *testing.B, c *client.Client, ids [][]byte, ok func(*pb.ExecutorEntry) bool) map[peer.ID]time.Time {
	b.Helper()
	seen := make(map[peer.ID]time.Time, len(ids))
	deadline := time.Now().Add(pollTimeout)
	q := &pb.QueryRequest{
		Query:   &pb.QueryRequest_ExecutorInfo{ExecutorInfo: &pb.ExecutorInfoQuery{PeerIds: ids}},
		Filters: &pb.QueryFilters{IncludeStale: true, IncludeUnavailable: true},
	}
	for len(seen) < len(ids) {
		q.QueryId = 0
		resp, err := c.Call(context.Background(), 0, q)
		now := time.Now()
		if err == nil {
			for _, e := range resp.GetExecutors().GetExecutors() {
				id := peer.ID(e.GetPeerId())
				if _, done := seen[id]; !done && ok(e) {
					seen[id] = now
				}
			}
		}
		if now.After(deadline) {
			b.Fatalf("%d of %d executors reached the status within %s (last error: %v)", len(seen), len(ids), pollTimeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return seen
}
