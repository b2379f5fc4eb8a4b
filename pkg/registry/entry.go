package registry

import (
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// responseBudget is what a query response may take, leaving half a MiB of
// protocol.MaxResponseSize for the response's own fields and framing.
const responseBudget = protocol.MaxResponseSize - 512<<10

// entryData is what an ExecutorEntry says of one executor, copied under
// the read lock so that the entry (allocations, sizes) is built after it.
// The byte slices are shared with the registry, which replaces them and
// never writes into them.
type entryData struct {
	id         peer.ID
	status     pb.ExecutorStatus
	lastSeen   int64 // unix ms
	registered int64 // unix ms
	addrs      [][]byte
	annRaw     []byte
	hbRaw      []byte
	annSeq     uint64
	verified   bool
	loads      []loadData
}

// loadData is one model's load, with its effective capacity.
type loadData struct {
	model                    string
	active, queued, capacity uint32
}

// executorData describes e as a whole: overloaded when any of its models
// is, with the load of every model. Call it under the lock.
func (r *Registry) executorData(e *executor, now time.Time) entryData {
	loads := make([]loadData, len(e.models))
	for i := range e.models {
		m := &e.models[i]
		loads[i] = loadData{m.id, m.active, m.queued, m.effCapacity()}
	}
	return newEntryData(e, r.executorStatus(e, now), loads)
}

// modelData describes c's executor as a server of the ranked model: that
// model's status and load only, taken from its slot; load, of length 1, is
// where that load goes. Call it under the lock.
func (k ranking) modelData(model string, c candidate, load []loadData) entryData {
	s := k.slot(c)
	load[0] = loadData{model, s.active, s.queued, s.cap}
	status := pb.ExecutorStatus_EXECUTOR_STATUS_HEALTHY
	switch {
	case c.stale:
		status = pb.ExecutorStatus_EXECUTOR_STATUS_STALE
	case s.overloaded():
		status = pb.ExecutorStatus_EXECUTOR_STATUS_OVERLOADED
	}
	return newEntryData(k.executor(c), status, load[:1:1])
}

func newEntryData(e *executor, status pb.ExecutorStatus, loads []loadData) entryData {
	return entryData{
		id:         e.id,
		status:     status,
		lastSeen:   e.lastSeen.UnixMilli(),
		registered: e.registered.UnixMilli(),
		addrs:      e.addrs,
		annRaw:     e.annRaw,
		hbRaw:      e.hbRaw,
		annSeq:     e.annSeq,
		verified:   e.verified,
		loads:      loads,
	}
}

// entry builds the ExecutorEntry; no lock needed.
func (d *entryData) entry() *pb.ExecutorEntry {
	loads := make([]*pb.ModelLoad, len(d.loads))
	for i, l := range d.loads {
		loads[i] = &pb.ModelLoad{ModelId: l.model, Active: l.active, Queued: l.queued, Capacity: l.capacity}
	}
	return &pb.ExecutorEntry{
		PeerId:               []byte(d.id),
		Status:               d.status,
		LastSeenMs:           d.lastSeen,
		Load:                 &pb.Load{Models: loads},
		Addrs:                d.addrs,
		AnnouncementEnvelope: d.annRaw,
		HeartbeatEnvelope:    d.hbRaw,
		AnnouncementSeq:      d.annSeq,
		RegisteredAtMs:       d.registered,
		Verified:             d.verified,
	}
}

// executorEntry describes e as a whole (see executorData). Call it under
// the lock.
func (r *Registry) executorEntry(e *executor, now time.Time) *pb.ExecutorEntry {
	d := r.executorData(e, now)
	return d.entry()
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

// buildEntries makes the entries of ds in order, stopping before the one
// that would take the list past responseBudget; the first always goes in,
// since an envelope alone is far below the budget. It needs no lock.
func buildEntries(ds []entryData) []*pb.ExecutorEntry {
	list := make([]*pb.ExecutorEntry, 0, len(ds))
	size := 0
	for i := range ds {
		ent := ds[i].entry()
		n := entrySize(ent)
		if len(list) > 0 && size+n > responseBudget {
			break
		}
		size += n
		list = append(list, ent)
	}
	return list
}
