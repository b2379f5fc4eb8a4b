package registry

import (
	"bytes"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/lloom/lloom/protocol/pb"
)

// The change log: every change the registry makes to an executor, as it
// makes it, numbered one by one, for the validator's change feed
// (/lloom/watch/1.0.0 and its HTTP event stream). The registry appends under
// its write lock, so a Snapshot (taken under the read lock) and the version
// it names agree exactly; readers take only the log's own lock. The log keeps
// a bounded history, shared by every reader: a reader holds a version, never
// a queue, so a slow reader costs no memory — it falls out of the history
// and must start again from a snapshot (ErrBehind).

// ChangeKind is what a change did to an executor.
type ChangeKind uint8

const (
	// ChangeAdded: the executor was registered (verified or not).
	ChangeAdded ChangeKind = iota + 1
	// ChangeUpdated: a new announcement (models, prices, addresses), or
	// the executor's verification changed.
	ChangeUpdated
	// ChangeLoad: a heartbeat changed the load of a model (active, queued
	// or capacity). A heartbeat that changes nothing is no change.
	ChangeLoad
	// ChangeStale: Sweep reported the executor stale.
	ChangeStale
	// ChangeRecovered: an executor that Sweep reported stale is live again.
	ChangeRecovered
	// ChangeRemoved: a REMOVAL, the removal timeout, or an eviction.
	ChangeRemoved
)

var changeNames = [...]string{ChangeAdded: "added", ChangeUpdated: "updated", ChangeLoad: "load",
	ChangeStale: "stale", ChangeRecovered: "recovered", ChangeRemoved: "removed"}

func (k ChangeKind) String() string {
	if int(k) < len(changeNames) && changeNames[k] != "" {
		return changeNames[k]
	}
	return "unknown"
}

// Change is one change of one executor. Its slices are shared by every
// reader: never modify them.
type Change struct {
	Version uint64
	Kind    ChangeKind
	At      time.Time
	// Executor is the state after the change; for ChangeRemoved, the last
	// state.
	Executor ExecutorState
	// WasVerified is whether the executor was verified before the change
	// (false for ChangeAdded).
	WasVerified bool
	// AddedModels and DroppedModels are what an announcement changed in
	// the model set (ChangeUpdated).
	AddedModels, DroppedModels []string
	size                       int // estimated bytes, for the log's budget
}

// ExecutorState is what the registry holds of an executor at one moment.
// Its slices are shared with the registry, which replaces them and never
// writes into them: never modify them.
type ExecutorState struct {
	ID              peer.ID
	Status          pb.ExecutorStatus // executor-level, as in Get
	Verified        bool
	LastSeen        time.Time
	Registered      time.Time
	AnnouncementSeq uint64
	Addrs           [][]byte
	Models          []ModelState
}

// ModelState is one model of an ExecutorState.
type ModelState struct {
	ID                       string
	Status                   pb.ExecutorStatus
	Active, Queued, Capacity uint32 // Capacity is the effective one
	Available                bool
	Backend                  string
	MaxContextLength         uint32
	Features                 []string
	// Canonical decimal wei, "0" for zero.
	InputPriceWei, OutputPriceWei string
}

// Serves reports whether the executor serves model.
func (s *ExecutorState) Serves(model string) bool {
	for i := range s.Models {
		if s.Models[i].ID == model {
			return true
		}
	}
	return false
}

// Defaults of the change log's bounds (Config.History, Config.HistoryBytes).
const (
	DefaultHistory      = 16384
	DefaultHistoryBytes = 16 << 20
)

// ErrBehind matches a read of the changes after a version the log no
// longer covers: older than its history (the reader was too slow, or away
// too long), from before a restart, or not made yet. The reader starts
// again from a Snapshot.
var ErrBehind = errors.New("registry: the changes after that version are no longer held")

// changeLog is the bounded history of changes.
type changeLog struct {
	max, maxBytes int

	mu    sync.Mutex
	ring  []Change      // guarded by mu; ring[head] is the oldest of n
	head  int           // guarded by mu
	n     int           // guarded by mu
	bytes int           // guarded by mu: estimated size of the n changes
	floor uint64        // guarded by mu: every change after floor is held
	last  uint64        // guarded by mu: the newest version
	wake  chan struct{} // guarded by mu: closed by the next append; nil until a reader waits
}

func newChangeLog(max, maxBytes int, first uint64) *changeLog {
	return &changeLog{max: max, maxBytes: maxBytes, floor: first - 1, last: first - 1}
}

// append numbers c and adds it, dropping the oldest changes past the
// bounds, and wakes the readers waiting.
func (l *changeLog) append(c Change) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ring == nil {
		l.ring = make([]Change, l.max)
	}
	for l.n > 0 && (l.n == l.max || l.bytes+c.size > l.maxBytes) {
		old := &l.ring[l.head]
		l.floor = old.Version
		l.bytes -= old.size
		*old = Change{}
		l.head = (l.head + 1) % l.max
		l.n--
	}
	l.last++
	c.Version = l.last
	l.ring[(l.head+l.n)%l.max] = c
	l.n++
	l.bytes += c.size
	if l.wake != nil {
		close(l.wake)
		l.wake = nil
	}
}

// since appends to dst up to max changes after version, oldest first. With
// none to give it returns a channel closed at the next append.
func (l *changeLog) since(version uint64, max int, dst []Change) ([]Change, <-chan struct{}, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if version < l.floor || version > l.last {
		return dst, nil, ErrBehind
	}
	if version == l.last {
		if l.wake == nil {
			l.wake = make(chan struct{})
		}
		return dst, l.wake, nil
	}
	// The change after version sits version-floor-1 places after the
	// oldest, which has version floor+1.
	skip := int(version - l.floor)
	for i := skip; i < l.n && max > 0; i, max = i+1, max-1 {
		dst = append(dst, l.ring[(l.head+i)%l.max])
	}
	return dst, nil, nil
}

func (l *changeLog) version() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last
}

// Changes appends to dst up to max changes after version, oldest first, for
// a reader of the feed that has seen everything up to version. With none
// newer it returns a channel closed when the next change is made. The error
// matches ErrBehind when the log no longer covers version: the reader
// starts again from a Snapshot.
func (r *Registry) Changes(version uint64, max int, dst []Change) ([]Change, <-chan struct{}, error) {
	return r.log.since(version, max, dst)
}

// Version is the version of the newest change.
func (r *Registry) Version() uint64 { return r.log.version() }

// Snapshot returns the state of every executor — of those serving model,
// when it is not empty — sorted by peer id, and the version of the newest
// change it reflects: a reader of the feed continues with the changes after
// it.
func (r *Registry) Snapshot(model string, now time.Time) (uint64, []ExecutorState) {
	r.mu.RLock()
	var states []ExecutorState
	if model == "" {
		states = make([]ExecutorState, 0, len(r.executors))
		for _, e := range r.executors {
			states = append(states, r.state(e, now))
		}
	} else if idx := r.models[model]; idx != nil {
		states = make([]ExecutorState, 0, len(idx.slots))
		for i := range idx.slots {
			states = append(states, r.state(idx.slots[i].e, now))
		}
	}
	version := r.log.version() // appends take the write lock: none since the states
	r.mu.RUnlock()
	slices.SortFunc(states, func(a, b ExecutorState) int { return bytes.Compare([]byte(a.ID), []byte(b.ID)) })
	return version, states
}

// Seen is when an executor last sent a valid message.
type Seen struct {
	ID       peer.ID
	LastSeen time.Time
}

// SeenSince lists, up to max, the executors last seen after t: heartbeats
// that changed nothing make no change in the log, so a view that shows
// "last seen" refreshes it with this.
func (r *Registry) SeenSince(t time.Time, max int) []Seen {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []Seen
	for _, e := range r.executors {
		if len(out) >= max {
			break
		}
		if e.lastSeen.After(t) {
			out = append(out, Seen{e.id, e.lastSeen})
		}
	}
	return out
}

// state describes e at now. Call it under the lock.
func (r *Registry) state(e *executor, now time.Time) ExecutorState {
	stale := r.stale(e, now)
	s := ExecutorState{
		ID:              e.id,
		Status:          r.executorStatus(e, now),
		Verified:        e.verified,
		LastSeen:        e.lastSeen,
		Registered:      e.registered,
		AnnouncementSeq: e.annSeq,
		Addrs:           e.addrs,
		Models:          make([]ModelState, len(e.models)),
	}
	for i := range e.models {
		m := &e.models[i]
		s.Models[i] = ModelState{
			ID:               m.id,
			Status:           modelStatus(m, stale),
			Active:           m.active,
			Queued:           m.queued,
			Capacity:         m.effCapacity(),
			Available:        m.prof.available,
			Backend:          m.prof.backend,
			MaxContextLength: m.prof.maxCtx,
			Features:         m.prof.features,
			InputPriceWei:    canonPrice(m.prof.inPrice),
			OutputPriceWei:   canonPrice(m.prof.outPrice),
		}
	}
	return s
}

// canonPrice turns a normalized price ("" for zero) into canonical decimal.
func canonPrice(s string) string {
	if s == "" {
		return "0"
	}
	return s
}

// record appends a change of e, made at now, to the log. Call it under the
// write lock, after the change (before it, for a removal).
func (r *Registry) record(kind ChangeKind, e *executor, now time.Time, wasVerified bool, added, dropped []string) {
	c := Change{
		Kind:          kind,
		At:            now,
		Executor:      r.state(e, now),
		WasVerified:   wasVerified,
		AddedModels:   added,
		DroppedModels: dropped,
	}
	c.size = changeSize(&c)
	r.log.append(c)
}

// changeSize estimates what c holds, its shared slices included.
func changeSize(c *Change) int {
	n := 256
	for _, a := range c.Executor.Addrs {
		n += 24 + len(a)
	}
	for i := range c.Executor.Models {
		m := &c.Executor.Models[i]
		n += 128 + len(m.ID) + len(m.InputPriceWei) + len(m.OutputPriceWei)
	}
	for _, s := range c.AddedModels {
		n += 16 + len(s)
	}
	for _, s := range c.DroppedModels {
		n += 16 + len(s)
	}
	return n
}

// loadOf is one model's load as queries see it: a heartbeat that only
// repeats the announced capacity changes nothing.
type loadOf struct{ active, queued, capacity uint32 }

// loads copies the load of e's models into buf, for telling whether a
// heartbeat changed it.
func (e *executor) loads(buf []loadOf) []loadOf {
	buf = buf[:0]
	for i := range e.models {
		m := &e.models[i]
		buf = append(buf, loadOf{m.active, m.queued, m.effCapacity()})
	}
	return buf
}

// loadChanged reports whether e's load differs from before.
func (e *executor) loadChanged(before []loadOf) bool {
	for i := range e.models {
		m := &e.models[i]
		if before[i] != (loadOf{m.active, m.queued, m.effCapacity()}) {
			return true
		}
	}
	return false
}

// recordReach records what a liveness check changed besides the
// announcement it may have applied (which recorded itself): the executor's
// verification, or its return from a stale spell.
func (r *Registry) recordReach(e *executor, now time.Time, wasVerified, wasStale, applied bool) {
	switch {
	case e.verified != wasVerified:
		r.record(ChangeUpdated, e, now, wasVerified, nil, nil)
	case wasStale && !applied:
		r.record(ChangeRecovered, e, now, wasVerified, nil, nil)
	}
}
