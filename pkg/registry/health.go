package registry

import (
	"bytes"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/lloom/lloom/protocol/pb"
)

// EventKind is a health transition reported by Sweep.
type EventKind int

const (
	// EventStale: the executor has sent nothing valid for StaleAfter. It
	// stays registered, and is reported once per stale spell.
	EventStale EventKind = iota + 1
	// EventRemoved: the executor has sent nothing valid for RemoveAfter and
	// was removed.
	EventRemoved
)

func (k EventKind) String() string {
	switch k {
	case EventStale:
		return "stale"
	case EventRemoved:
		return "removed"
	}
	return "unknown"
}

// Event is one executor's health transition.
type Event struct {
	Peer     peer.ID
	Kind     EventKind
	Models   []string // the executor's model ids
	LastSeen time.Time
}

// Sweep reports executors that became stale since the last Sweep, removes
// those past RemoveAfter and drops expired tombstones. Events come oldest
// last-seen first. An executor not swept while stale is reported removed
// only.
func (r *Registry) Sweep(now time.Time) []Event {
	r.mu.Lock()
	defer r.mu.Unlock()

	var events []Event
	for _, e := range r.executors {
		age := now.Sub(e.lastSeen)
		switch {
		case age > r.cfg.RemoveAfter:
			events = append(events, Event{Peer: e.id, Kind: EventRemoved, Models: e.modelIDs(), LastSeen: e.lastSeen})
			r.record(ChangeRemoved, e, now, e.verified, nil, nil)
			r.remove(e)
		case age > r.cfg.StaleAfter && !e.staleReported:
			e.staleReported = true
			events = append(events, Event{Peer: e.id, Kind: EventStale, Models: e.modelIDs(), LastSeen: e.lastSeen})
			r.record(ChangeStale, e, now, e.verified, nil, nil)
		}
	}
	r.tombs.expire(now)
	slices.SortFunc(events, func(a, b Event) int {
		if c := a.LastSeen.Compare(b.LastSeen); c != 0 {
			return c
		}
		return bytes.Compare([]byte(a.Peer), []byte(b.Peer))
	})
	return events
}

// Stats counts the executors: verified ones by status (executor-level, as
// in Get), unverified ones apart (in executors too, in no status), the
// distinct models, and the executors removed so far, by REMOVAL or by
// timeout, and evicted. The message counters, uptime and queries served
// are the caller's to fill.
func (r *Registry) Stats(now time.Time) *pb.Statistics {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.stats(now)
}

func (r *Registry) stats(now time.Time) *pb.Statistics {
	s := &pb.Statistics{
		Executors:        uint64(len(r.executors)),
		Models:           uint64(len(r.models)),
		ExecutorsRemoved: r.removed,
		MaxExecutors:     uint64(r.cfg.MaxExecutors),
		Unverified:       uint64(r.unverified),
		ExecutorsEvicted: r.evicted,
	}
	for _, e := range r.executors {
		if !e.verified {
			continue
		}
		switch r.executorStatus(e, now) {
		case pb.ExecutorStatus_EXECUTOR_STATUS_STALE:
			s.Stale++
		case pb.ExecutorStatus_EXECUTOR_STATUS_OVERLOADED:
			s.Overloaded++
		default:
			s.Healthy++
		}
	}
	return s
}

// stale reports whether e has sent nothing valid for StaleAfter.
func (r *Registry) stale(e *executor, now time.Time) bool {
	return now.Sub(e.lastSeen) > r.cfg.StaleAfter
}

// executorStatus is STALE, else OVERLOADED if any model is, else HEALTHY.
func (r *Registry) executorStatus(e *executor, now time.Time) pb.ExecutorStatus {
	if r.stale(e, now) {
		return pb.ExecutorStatus_EXECUTOR_STATUS_STALE
	}
	for i := range e.models {
		if e.models[i].overloaded() {
			return pb.ExecutorStatus_EXECUTOR_STATUS_OVERLOADED
		}
	}
	return pb.ExecutorStatus_EXECUTOR_STATUS_HEALTHY
}

// modelStatus is the status of one model of e.
func modelStatus(m *model, stale bool) pb.ExecutorStatus {
	switch {
	case stale:
		return pb.ExecutorStatus_EXECUTOR_STATUS_STALE
	case m.overloaded():
		return pb.ExecutorStatus_EXECUTOR_STATUS_OVERLOADED
	}
	return pb.ExecutorStatus_EXECUTOR_STATUS_HEALTHY
}

// effCapacity is the heartbeat's capacity, else the announced one, else 1.
func (m *model) effCapacity() uint32 {
	switch {
	case m.hbCap > 0:
		return m.hbCap
	case m.prof.capacity > 0:
		return m.prof.capacity
	}
	return 1
}

// used is active plus queued requests; uint64 since their sum can pass
// uint32.
func (m *model) used() uint64 { return uint64(m.active) + uint64(m.queued) }

func (m *model) overloaded() bool { return m.used() >= uint64(m.effCapacity()) }
