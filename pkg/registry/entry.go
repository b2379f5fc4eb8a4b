package registry

import (
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// responseBudget is what a query response may take, leaving half a MiB of
// protocol.MaxResponseSize for the response's own fields and framing.
const responseBudget = protocol.MaxResponseSize - 512<<10

// executorEntry describes e as a whole: overloaded when any of its models
// is, with the load of every model.
func (r *Registry) executorEntry(e *executor, now time.Time) *pb.ExecutorEntry {
	loads := make([]*pb.ModelLoad, len(e.models))
	for i := range e.models {
		loads[i] = modelLoad(&e.models[i])
	}
	return newEntry(e, r.executorStatus(e, now), loads)
}

// modelEntry describes c's executor as a server of the ranked model: that
// model's status and load only.
func (k ranking) modelEntry(c candidate) *pb.ExecutorEntry {
	m := k.model(c)
	return newEntry(k.executor(c), modelStatus(m, c.stale), []*pb.ModelLoad{modelLoad(m)})
}

// newEntry shares the envelope and address bytes with the registry. That is
// safe because the registry replaces them and never writes into them; a
// response is for marshaling, not for editing.
func newEntry(e *executor, status pb.ExecutorStatus, loads []*pb.ModelLoad) *pb.ExecutorEntry {
	return &pb.ExecutorEntry{
		PeerId:               []byte(e.id),
		Status:               status,
		LastSeenMs:           e.lastSeen.UnixMilli(),
		Load:                 &pb.Load{Models: loads},
		Addrs:                e.addrs,
		AnnouncementEnvelope: e.annRaw,
		HeartbeatEnvelope:    e.hbRaw,
		AnnouncementSeq:      e.annSeq,
		RegisteredAtMs:       e.registered.UnixMilli(),
	}
}

// modelLoad reports a model's load with its effective capacity.
func modelLoad(m *model) *pb.ModelLoad {
	return &pb.ModelLoad{
		ModelId:  m.id,
		Active:   m.active,
		Queued:   m.queued,
		Capacity: m.effCapacity(),
	}
}

// fieldSize is the marshaled size of a length-delimited field of n bytes
// with a one-byte tag (every field number below 16).
func fieldSize(n int) int {
	return 1 + protowire.SizeVarint(uint64(n)) + n
}

// entrySize is the marshaled size of an entry as a repeated field.
func entrySize(ent *pb.ExecutorEntry) int {
	return fieldSize(proto.Size(ent))
}

// appendEntries appends to list the entries made by mk from items, stopping
// before the one that would take the list past responseBudget; the first
// always goes in, since an envelope alone is far below the budget.
func appendEntries[T any](list []*pb.ExecutorEntry, items []T, mk func(T) *pb.ExecutorEntry) []*pb.ExecutorEntry {
	size := 0
	for _, it := range items {
		ent := mk(it)
		n := entrySize(ent)
		if len(list) > 0 && size+n > responseBudget {
			break
		}
		size += n
		list = append(list, ent)
	}
	return list
}
