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
// Every response stays within about 3.5 MiB, under protocol.MaxResponseSize:
// a page of executors or models that would pass it ends early, so a client
// pages by how many items it received (next offset = offset + received),
// not by limit. Executor info ignores offset and limit, sets total_count to
// the number of known executors among the ids and, if cut short, leaves
// the last of them for another query.
//
// The response shares byte slices with the registry: marshal it, do not
// modify it.
func (r *Registry) Query(q *pb.QueryRequest, limit int, now time.Time) *pb.QueryResponse {
	r.mu.RLock()
	defer r.mu.RUnlock()

	var resp *pb.QueryResponse
	switch x := q.GetQuery().(type) {
	case *pb.QueryRequest_ListModels:
		resp = r.listModels(q, limit, now)
	case *pb.QueryRequest_FindModel:
		resp = r.findModel(x.FindModel.GetModelId(), q, limit, now)
	case *pb.QueryRequest_ExecutorInfo:
		resp = r.executorInfo(x.ExecutorInfo.GetPeerIds(), now)
	case *pb.QueryRequest_Statistics:
		s := r.stats(now)
		resp = &pb.QueryResponse{Result: &pb.QueryResponse_Statistics{Statistics: s}}
	default:
		resp = &pb.QueryResponse{
			ErrorCode:    protocol.ErrUnsupportedQuery.Code,
			ErrorMessage: "no query this validator knows was given",
		}
	}
	resp.QueryId = q.GetQueryId()
	return resp
}

// findModel lists the executors of a model that pass the filters, least
// loaded first, each with that model's status and load. An unknown model is
// an empty success.
func (r *Registry) findModel(id string, q *pb.QueryRequest, limit int, now time.Time) *pb.QueryResponse {
	list := &pb.ExecutorList{}
	resp := &pb.QueryResponse{Result: &pb.QueryResponse_Executors{Executors: list}}
	idx := r.models[id]
	if idx == nil {
		return resp
	}
	f := newFilter(q.GetFilters())
	k := r.rank(idx, &f, now, nil)
	resp.TotalCount = uint32(len(k.cs))
	k.sortTop(int(q.GetOffset()) + limit)
	list.Executors = appendEntries(nil, page(k.cs, int(q.GetOffset()), limit), k.modelEntry)
	return resp
}

// executorInfo describes the known executors among ids, in request order,
// each once. None known is EXECUTOR_NOT_FOUND.
func (r *Registry) executorInfo(ids [][]byte, now time.Time) *pb.QueryResponse {
	found := make([]*executor, 0, len(ids))
	seen := make(map[*executor]struct{}, len(ids))
	for _, b := range ids {
		e := r.executors[peer.ID(b)]
		if e == nil {
			continue
		}
		if _, dup := seen[e]; dup {
			continue
		}
		seen[e] = struct{}{}
		found = append(found, e)
	}
	if len(found) == 0 {
		return &pb.QueryResponse{
			ErrorCode:    protocol.ErrExecutorNotFound.Code,
			ErrorMessage: fmt.Sprintf("none of the %d requested executors is registered", len(ids)),
		}
	}
	list := &pb.ExecutorList{}
	list.Executors = appendEntries(nil, found, func(e *executor) *pb.ExecutorEntry {
		return r.executorEntry(e, now)
	})
	return &pb.QueryResponse{
		TotalCount: uint32(len(found)),
		Result:     &pb.QueryResponse_Executors{Executors: list},
	}
}

// anyMatch reports whether some executor of idx passes f.
func (r *Registry) anyMatch(idx *modelIndex, f *filter, now time.Time) bool {
	for _, rf := range idx.refs {
		if f.match(&rf.e.models[rf.i], r.stale(rf.e, now)) {
			return true
		}
	}
	return false
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
