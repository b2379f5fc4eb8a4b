package registry

import (
	"slices"
	"time"

	"github.com/lloom/lloom/protocol/pb"
)

// summaryOverhead bounds a ModelSummary's bytes other than its model id and
// executor ids: four counts and the field's own tag and length.
const summaryOverhead = 4*6 + 6

// listModels lists, sorted by model id, the models with at least one
// executor passing the filters. Each summary counts those executors by
// status and names them least loaded first; ModelList.executors holds each
// named executor once, as a whole. total_count counts every matching model.
//
// A page ends early when the next model would take the response past
// responseBudget. A model too large for a page of its own comes alone, with
// executor_ids cut to the least loaded executors that fit; executor_count
// still counts them all, and find-model pages through the rest.
func (r *Registry) listModels(q *pb.QueryRequest, limit int, now time.Time) *pb.QueryResponse {
	f := newFilter(q.GetFilters())
	ids := make([]string, 0, len(r.models))
	for id := range r.models {
		ids = append(ids, id)
	}
	slices.Sort(ids)

	list := &pb.ModelList{}
	b := listBuilder{r: r, now: now, list: list, seen: make(map[*executor]struct{})}
	offset := int(q.GetOffset())
	matched := 0
	full := false
	var cs []candidate
	for _, id := range ids {
		idx := r.models[id]
		if full || matched < offset || len(list.Models) >= limit {
			if r.anyMatch(idx, &f, now) {
				matched++
			}
			continue
		}
		k := r.rank(idx, &f, now, cs)
		cs = k.cs
		if len(k.cs) == 0 {
			continue
		}
		matched++
		k.sort()
		full = !b.add(id, k)
	}
	return &pb.QueryResponse{
		TotalCount: uint32(matched),
		Result:     &pb.QueryResponse_Models{Models: list},
	}
}

// listBuilder fills a ModelList within responseBudget.
type listBuilder struct {
	r    *Registry
	now  time.Time
	list *pb.ModelList
	seen map[*executor]struct{} // executors already in list.Executors
	size int                    // marshaled bytes so far
}

// add appends the summary of one model, whose passing executors k holds in
// order, and the entries of executors not yet listed. It reports false,
// adding nothing, when the model does not fit after others; the first model
// always goes in, cut if need be.
func (b *listBuilder) add(id string, k ranking) bool {
	first := len(b.list.Models) == 0
	sum := &pb.ModelSummary{
		ModelId:       id,
		ExecutorCount: uint32(len(k.cs)),
		ExecutorIds:   make([][]byte, 0, len(k.cs)),
	}
	var entries []*pb.ExecutorEntry
	var added []*executor
	size := fieldSize(len(id)) + summaryOverhead
	for _, c := range k.cs {
		switch modelStatus(k.model(c), c.stale) {
		case pb.ExecutorStatus_EXECUTOR_STATUS_STALE:
			sum.StaleCount++
		case pb.ExecutorStatus_EXECUTOR_STATUS_OVERLOADED:
			sum.OverloadedCount++
		default:
			sum.HealthyCount++
		}
	}
	for _, c := range k.cs {
		e := k.executor(c)
		n := fieldSize(len(e.id))
		var ent *pb.ExecutorEntry
		if _, ok := b.seen[e]; !ok {
			ent = b.r.executorEntry(e, b.now)
			n += entrySize(ent)
		}
		if b.size+size+n > responseBudget {
			if !first {
				return false
			}
			if len(sum.ExecutorIds) > 0 {
				break
			}
		}
		size += n
		sum.ExecutorIds = append(sum.ExecutorIds, []byte(e.id))
		if ent != nil {
			entries = append(entries, ent)
			added = append(added, e)
		}
	}
	for _, e := range added {
		b.seen[e] = struct{}{}
	}
	b.list.Models = append(b.list.Models, sum)
	b.list.Executors = append(b.list.Executors, entries...)
	b.size += size
	return true
}
