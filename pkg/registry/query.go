package registry

import (
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// Query answers a request that passed protocol.CheckQuery; limit is the
// effective limit CheckQuery returned. The response echoes the query id.
//
// A list is of summaries, no executors (see listModels). Every response
// stays within about 3.5 MiB, under protocol.MaxResponseSize: a page of
// executors that would pass it ends early, so a client pages by how many
// items it received (next offset = offset + received), not by limit.
// Executor info ignores offset and limit, sets total_count to the number
// of known executors among the ids and, if cut short, leaves the last of
// them for another query.
//
// The read lock is held while entries are chosen and copied, never while
// the response is built: a find-model holds it for one scan of the model's
// executors and a sort of the page, a list for one batch of models at a
// time. The response shares byte slices with the registry: marshal it, do
// not modify it.
func (r *Registry) Query(q *pb.QueryRequest, limit int, now time.Time) *pb.QueryResponse {
	resp, _ := r.QueryWork(q, limit, now)
	return resp
}

// QueryWork is Query, also returning how many registry entries answering
// examined (an executor's entry for one model, a model of a list, an
// executor of statistics or executor info): with the response's size,
// what a validator charges the asking peer (DESIGN §10).
func (r *Registry) QueryWork(q *pb.QueryRequest, limit int, now time.Time) (*pb.QueryResponse, int) {
	var (
		resp    *pb.QueryResponse
		scanned int
	)
	switch x := q.GetQuery().(type) {
	case *pb.QueryRequest_ListModels:
		resp, scanned = r.listModels(q, limit, now)
	case *pb.QueryRequest_FindModel:
		resp, scanned = r.findModel(x.FindModel.GetModelId(), q, limit, now)
	case *pb.QueryRequest_ExecutorInfo:
		resp, scanned = r.executorInfo(x.ExecutorInfo.GetPeerIds(), now)
	case *pb.QueryRequest_Statistics:
		r.mu.RLock()
		s := r.stats(now)
		scanned = len(r.executors)
		r.mu.RUnlock()
		resp = &pb.QueryResponse{Result: &pb.QueryResponse_Statistics{Statistics: s}}
	default:
		resp = &pb.QueryResponse{
			ErrorCode:    protocol.ErrUnsupportedQuery.Code,
			ErrorMessage: "no query this validator knows was given",
		}
	}
	resp.QueryId = q.GetQueryId()
	return resp, scanned
}

// findModel lists the executors of a model that pass the filters, least
// loaded first, each with that model's status and load. An unknown model is
// an empty success.
func (r *Registry) findModel(id string, q *pb.QueryRequest, limit int, now time.Time) (*pb.QueryResponse, int) {
	list := &pb.ExecutorList{}
	resp := &pb.QueryResponse{Result: &pb.QueryResponse_Executors{Executors: list}}
	f := newFilter(q.GetFilters())
	offset := int(q.GetOffset())

	r.mu.RLock()
	idx := r.models[id]
	if idx == nil {
		r.mu.RUnlock()
		return resp, 1
	}
	k := r.rank(idx, &f, r.staleCut(now), nil)
	k.sortTop(offset + limit)
	pg := page(k.cs, offset, limit)
	data := make([]entryData, len(pg))
	loads := make([]loadData, len(pg))
	for i, c := range pg {
		data[i] = k.modelData(idx.id, c, loads[i:i+1])
	}
	scanned := 1 + len(idx.slots)
	r.mu.RUnlock()

	resp.TotalCount = uint32(len(k.cs))
	list.Executors = buildEntries(data)
	return resp, scanned
}

// executorInfo describes the known executors among ids, in request order,
// each once. None known is EXECUTOR_NOT_FOUND.
func (r *Registry) executorInfo(ids [][]byte, now time.Time) (*pb.QueryResponse, int) {
	data := make([]entryData, 0, len(ids))
	seen := make(map[*executor]struct{}, len(ids))
	r.mu.RLock()
	for _, b := range ids {
		e := r.executors[peer.ID(b)]
		if e == nil {
			continue
		}
		if _, dup := seen[e]; dup {
			continue
		}
		seen[e] = struct{}{}
		data = append(data, r.executorData(e, now))
	}
	r.mu.RUnlock()
	if len(data) == 0 {
		return &pb.QueryResponse{
			ErrorCode:    protocol.ErrExecutorNotFound.Code,
			ErrorMessage: fmt.Sprintf("none of the %d requested executors is registered", len(ids)),
		}, len(ids)
	}
	list := &pb.ExecutorList{Executors: buildEntries(data)}
	return &pb.QueryResponse{
		TotalCount: uint32(len(data)),
		Result:     &pb.QueryResponse_Executors{Executors: list},
	}, len(ids)
}

// page returns items[offset : offset+limit], clipped to items.
func page[T any](items []T, offset, limit int) []T {
	if offset >= len(items) {
		return nil
	}
	items = items[offset:]
	if limit < len(items) {
		items = items[:limit]
	}
	return items
}
