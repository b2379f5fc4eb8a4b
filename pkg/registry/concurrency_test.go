package registry

import (
	"sync"
	"testing"
	"time"

	"github.com/lloom/lloom/protocol/pb"
)

// Messages, queries and sweeps from several goroutines: the race detector
// checks the locking, the end state checks that nothing was lost.
func TestConcurrentUse(t *testing.T) {
	r := newTestRegistry(t)
	xs := newExecs(t, 8)
	const rounds = 50
	anns := make([][]*pb.ModelDescriptor, len(xs))
	for i := range xs {
		anns[i] = []*pb.ModelDescriptor{desc("shared"), desc(string(rune('a' + i)))}
	}
	// Sign everything first: signing is not what is under test.
	work := make([][]func(time.Time) error, len(xs))
	for i, x := range xs {
		for n := 1; n <= rounds; n++ {
			sa := x.announce(t, uint64(n), update, anns[i]...)
			sh := x.heartbeat(t, uint64(n), uint64(n), load("shared", uint32(n%4), 0, 0))
			work[i] = append(work[i],
				func(now time.Time) error { _, err := r.ApplyAnnouncement(sa, now); return err },
				func(now time.Time) error { _, err := r.ApplyHeartbeat(sh, now); return err })
		}
	}
	now := at(time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, len(xs))
	for i := range xs {
		wg.Go(func() {
			for _, w := range work[i] {
				if err := w(now); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	queries := []*pb.QueryRequest{
		{Query: &pb.QueryRequest_ListModels{ListModels: &pb.ListModelsQuery{}}},
		{Query: &pb.QueryRequest_FindModel{FindModel: &pb.FindModelQuery{ModelId: "shared"}}},
		{Query: &pb.QueryRequest_ExecutorInfo{ExecutorInfo: &pb.ExecutorInfoQuery{PeerIds: [][]byte{[]byte(xs[0].id)}}}},
		{Query: &pb.QueryRequest_Statistics{Statistics: &pb.StatisticsQuery{}}},
	}
	wg.Go(func() {
		for n := range rounds * 4 {
			r.Query(queries[n%len(queries)], 100, now)
			r.Sweep(now)
			r.AnnouncementSeq(xs[n%len(xs)].id)
			r.HeartbeatSeq(xs[n%len(xs)].id)
			r.Stats(now)
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, x := range xs { // liveness is not under test
		markVerified(t, r, x.id)
	}
	checkIndex(t, r)
	if got := findModel(t, r, "shared", nil, 0, 0, now).GetTotalCount(); got != uint32(len(xs)) || r.Len() != len(xs) {
		t.Fatalf("after concurrent use: %d executors of shared, Len %d; want %d", got, r.Len(), len(xs))
	}
	for _, x := range xs {
		if seq, _ := r.AnnouncementSeq(x.id); seq != rounds {
			t.Fatalf("announcement seq %d, want %d", seq, rounds)
		}
	}
}
