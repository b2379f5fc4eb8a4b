package registry

import (
	"slices"
	"sync"
	"time"
)

// modelIndex lists the executors serving one model, in no order, each as
// a slot: a hot copy of what a query reads of it, so that a query scans one
// model's executors in memory order instead of following a pointer to each
// (about 8 ns an entry instead of 30 at 10,000 executors; see
// docs/PERFORMANCE.md). The executor's model at e.models[i] has pos i.
type modelIndex struct {
	id    string
	slots []slot
}

// slot is what filters, counts and the load order read of one executor's
// entry for one model, in 32 bytes. The executor's model and lastSeen are
// the truth; syncSlots copies them here whenever they change, under the
// write lock.
type slot struct {
	e      *executor
	seen   int64 // lastSeen as nanoseconds since the registry's epoch
	active uint32
	queued uint32
	cap    uint32 // effective capacity, >= 1
	// pv is the model's profile number (Registry.profNos) shifted left
	// once, the low bit set while the executor is unverified.
	pv uint32
}

func (s *slot) unverified() bool { return s.pv&1 == 1 }

func (s *slot) used() uint64 { return uint64(s.active) + uint64(s.queued) }

func (s *slot) overloaded() bool { return s.used() >= uint64(s.cap) }

// index adds e's models to the model index, sharing the index's copy of
// each model id.
func (r *Registry) index(e *executor) {
	for i := range e.models {
		m := &e.models[i]
		idx := r.models[m.id]
		if idx == nil {
			idx = &modelIndex{id: m.id}
			r.models[m.id] = idx
			r.modelsGen++
		}
		m.id = idx.id
		m.pos = int32(len(idx.slots))
		idx.slots = append(idx.slots, r.slotOf(e, m))
	}
}

// unindex removes e's models from the model index, in O(1) per model, and
// releases their profiles: the models are going away.
func (r *Registry) unindex(e *executor) {
	for i := range e.models {
		m := &e.models[i]
		r.release(m.prof)
		idx := r.models[m.id]
		last := int32(len(idx.slots) - 1)
		if m.pos != last {
			moved := idx.slots[last]
			idx.slots[m.pos] = moved
			for j := range moved.e.models {
				if mm := &moved.e.models[j]; mm.pos == last && mm.id == idx.id {
					mm.pos = m.pos
					break
				}
			}
		}
		idx.slots[last] = slot{}
		idx.slots = idx.slots[:last]
		if last == 0 {
			delete(r.models, m.id)
			r.modelsGen++
		} else if cap(idx.slots) > 64 && len(idx.slots) < cap(idx.slots)/4 {
			idx.slots = slices.Clone(idx.slots)
		}
	}
}

// syncSlots copies e's state into its slots. Every change to an
// executor's lastSeen or to a model's load goes through touch, and every
// change of its verification through setVerified, which call it; anything
// else that changes what a slot holds must call it too. An executor no
// longer indexed (being removed) has no slots to write.
func (r *Registry) syncSlots(e *executor) {
	for i := range e.models {
		m := &e.models[i]
		idx := r.models[m.id]
		if idx == nil || int(m.pos) >= len(idx.slots) || idx.slots[m.pos].e != e {
			continue
		}
		idx.slots[m.pos] = r.slotOf(e, m)
	}
}

func (r *Registry) slotOf(e *executor, m *model) slot {
	s := slot{
		e:      e,
		seen:   r.sinceEpoch(e.lastSeen),
		active: m.active,
		queued: m.queued,
		cap:    m.effCapacity(),
		pv:     m.prof.no << 1,
	}
	if !e.verified {
		s.pv |= 1
	}
	return s
}

// profileNumbers numbers the profiles in use, so that a slot names its
// profile in 4 bytes instead of a pointer's 8; numbers are reused.
type profileNumbers struct {
	byNo []*profile
	free []uint32
}

func (n *profileNumbers) add(p *profile) uint32 {
	if k := len(n.free); k > 0 {
		no := n.free[k-1]
		n.free = n.free[:k-1]
		n.byNo[no] = p
		return no
	}
	n.byNo = append(n.byNo, p)
	return uint32(len(n.byNo) - 1)
}

func (n *profileNumbers) remove(no uint32) {
	n.byNo[no] = nil
	n.free = append(n.free, no)
}

// sinceEpoch turns t into nanoseconds since the registry's epoch, the first
// time it was given (under the write lock). Differences of these equal
// differences of the times themselves, monotonic readings included, so a
// slot is stale exactly when Registry.stale says its executor is.
func (r *Registry) sinceEpoch(t time.Time) int64 {
	if t.IsZero() {
		return minSeen
	}
	if r.epoch.IsZero() {
		r.epoch = t
	}
	return int64(t.Sub(r.epoch))
}

// minSeen is the seen of an executor never seen: stale at any time.
const minSeen = -1 << 63

// staleCut returns the seen below which a slot is stale at now: more than
// StaleAfter before now. It reads the epoch; call it under the lock.
func (r *Registry) staleCut(now time.Time) int64 {
	if r.epoch.IsZero() {
		return minSeen
	}
	return int64(now.Sub(r.epoch) - r.cfg.StaleAfter)
}

// sortedIDs is the model ids of one generation of the model set, sorted.
// It is built by the first list after the set changed, outside the lock,
// and shared by every list until the set changes again.
type sortedIDs struct {
	gen uint64
	ids []string
}

// idCache holds the latest sortedIDs.
type idCache struct {
	mu     sync.Mutex
	sorted *sortedIDs // guarded by mu
}

// sortedModelIDs returns the ids of the models indexed now, sorted, and
// how many it had to collect (0 when the cached order was current). It
// takes the read lock only to collect the ids; the sort runs outside it.
func (r *Registry) sortedModelIDs() ([]string, int) {
	r.mu.RLock()
	gen := r.modelsGen
	r.ids.mu.Lock()
	cached := r.ids.sorted
	r.ids.mu.Unlock()
	if cached != nil && cached.gen == gen {
		r.mu.RUnlock()
		return cached.ids, 0
	}
	ids := make([]string, 0, len(r.models))
	for id := range r.models {
		ids = append(ids, id)
	}
	r.mu.RUnlock()

	slices.Sort(ids)
	r.ids.mu.Lock()
	if r.ids.sorted == nil || r.ids.sorted.gen < gen {
		r.ids.sorted = &sortedIDs{gen: gen, ids: ids}
	}
	r.ids.mu.Unlock()
	return ids, len(ids)
}
