package registry

import (
	"time"

	"github.com/lloom/lloom/protocol/pb"
)

// listBatch is about how many entries a list examines per hold of the read
// lock (a model with more comes whole). At ~8 ns an entry, a message
// waiting for the write lock waits tens of microseconds, not a whole list.
// (A variable, so that a benchmark can compare one lock for the whole list.)
var listBatch = 4096

// listHook, if set, runs between two batches of a list, without the lock
// (tests).
var listHook func()

// listModels lists, sorted by model id, the models with at least one
// executor passing the filters, each as a summary: counts by that model's
// status and the best load, no executors (DESIGN §10). total_count counts
// every matching model. It returns the entries it examined.
//
// The read lock is held for one batch of models at a time, so each summary
// is exact when its model was read, a model that appeared after the list
// began is left out, and one that went away meanwhile is skipped.
func (r *Registry) listModels(q *pb.QueryRequest, limit int, now time.Time) (*pb.QueryResponse, int) {
	ids, scanned := r.sortedModelIDs()
	f := newFilter(q.GetFilters())
	offset := int(q.GetOffset())
	list := &pb.ModelList{}
	matched := 0
	for i := 0; i < len(ids); {
		n := 0
		r.mu.RLock()
		cut := r.staleCut(now)
		for ; i < len(ids) && n < listBatch; i++ {
			idx := r.models[ids[i]]
			if idx == nil {
				continue
			}
			if matched < offset || len(list.Models) >= limit {
				ok, k := r.anyMatch(idx, &f, cut)
				n += 1 + k
				if ok {
					matched++
				}
				continue
			}
			s := r.summarize(idx, &f, cut)
			n += 1 + len(idx.slots)
			if s != nil {
				matched++
				list.Models = append(list.Models, s)
			}
		}
		r.mu.RUnlock()
		scanned += n
		if listHook != nil && i < len(ids) {
			listHook()
		}
	}
	return &pb.QueryResponse{
		TotalCount: uint32(matched),
		Result:     &pb.QueryResponse_Models{Models: list},
	}, scanned
}

// summarize counts the executors of idx passing f by status and finds the
// least loaded; nil when none passes.
func (r *Registry) summarize(idx *modelIndex, f *filter, cut int64) *pb.ModelSummary {
	m := newMemo(f, r)
	var healthy, overloaded, stale uint32
	best := -1
	var bc candidate
	for i := range idx.slots {
		s := &idx.slots[i]
		st := s.seen < cut
		if !m.match(s, st) {
			continue
		}
		c := candidate{used: s.used(), cap: uint64(s.cap), stale: st}
		switch {
		case st:
			stale++
		case c.used >= c.cap:
			overloaded++
		default:
			healthy++
		}
		// Most entries lose at the first key: stale after live, or a
		// strictly higher utilization.
		if best >= 0 && (st && !bc.stale || st == bc.stale && CompareProducts(c.used, bc.cap, bc.used, c.cap) > 0) {
			continue
		}
		if best < 0 || compareLoad(c, bc) < 0 {
			best, bc = i, c
		}
	}
	if best < 0 {
		return nil
	}
	b := &idx.slots[best]
	return &pb.ModelSummary{
		ModelId:         idx.id,
		ExecutorCount:   healthy + overloaded + stale,
		HealthyCount:    healthy,
		OverloadedCount: overloaded,
		StaleCount:      stale,
		BestLoad:        &pb.ModelLoad{Active: b.active, Queued: b.queued, Capacity: b.cap},
	}
}

// anyMatch reports whether some executor of idx passes f, and how many
// entries it examined to find out.
func (r *Registry) anyMatch(idx *modelIndex, f *filter, cut int64) (bool, int) {
	m := newMemo(f, r)
	for i := range idx.slots {
		s := &idx.slots[i]
		if m.match(s, s.seen < cut) {
			return true, i + 1
		}
	}
	return false, len(idx.slots)
}
